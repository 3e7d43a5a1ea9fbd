"""Batches of tensors: what flows from a survey into augmenters and models.

Imports torch lazily, so that ``import astro_cl.data`` stays torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

from astro_cl.exceptions import SurveyError, ValidationError

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike, NDArray

    from astro_cl.data.record import GalaxyRecord

__all__ = ["CUBE_META", "PER_IMAGE_META", "TENSOR_FIELDS", "BatchSource", "TensorBatch",
           "cube_axis", "cube_meta", "per_image_meta", "without_cube_meta"]

#: The per-galaxy tensor fields of a `TensorBatch`, in a fixed order.
TENSOR_FIELDS = ("data", "mask", "uncertainty", "targets", "target_mask", "star_mask")

#: ``meta`` keys that may hold one value per galaxy (a sequence as long as the
#: batch) rather than one value for all: the PSF FWHM that
#: `~astro_cl.augment.photometric.PSFDegradation` updates and the redshift that
#: `~astro_cl.augment.photometric.SurfaceBrightnessDimming` reads. Selecting,
#: chunking and repeating a batch select their values with its galaxies. The
#: values are the defaults the augmenters assume when the key is absent.
PER_IMAGE_META = {"psf_fwhm": 0.0, "redshift": 0.0}

#: ``meta`` keys that describe the spectral (channel) axis of a cube batch:
#: ``wavelength`` (one value per channel, Angstrom, increasing), ``rest_frame``
#: (whether ``wavelength`` is rest-frame; survey cubes are observed-frame) and
#: ``flux_unit`` (the unit of ``data``, a string). A step that changes the
#: channel axis (a preprocessor) drops them with `without_cube_meta`.
CUBE_META = ("wavelength", "rest_frame", "flux_unit")


@dataclass
class TensorBatch:
    """A batch of galaxies as tensors.

    Parameters
    ----------
    data : `torch.Tensor`
        ``(B, C, H, W)`` floating-point values.
    mask : `torch.Tensor`
        Boolean, broadcastable to ``data``: ``(B, C, H, W)`` or ``(B, 1, H, W)``;
        True marks a bad pixel (astropy convention).
    ids : list of str
        Galaxy identifiers, one per batch element.
    uncertainty : `torch.Tensor`, optional
        One-sigma uncertainty with the shape of ``data``.
    targets : `torch.Tensor`, optional
        ``(B, K, H, W)`` regression targets (e.g. property maps).
    target_mask : `torch.Tensor`, optional
        Boolean mask of the targets, True where a target pixel is unusable.
    star_mask : `torch.Tensor`, optional
        ``(B, 1, H, W)`` boolean foreground-star masks (True on a star).
    meta : dict, optional
        Plain metadata (channel names, units, survey name); the keys in
        `PER_IMAGE_META` may hold one value per galaxy. A cube batch (from
        ``Survey.to_tensors(kind="cube")``) carries its spectral axis in the
        `CUBE_META` keys, ``meta["wavelength"]`` with one value per channel,
        and ``meta["redshift"]`` per galaxy when every record has one.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If a field has the wrong type or shape, or ``meta["wavelength"]`` does
        not hold one value per channel.
    """

    data: torch.Tensor
    mask: torch.Tensor
    ids: list[str]
    uncertainty: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    target_mask: torch.Tensor | None = None
    star_mask: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import torch

        if not isinstance(self.data, torch.Tensor) or self.data.ndim != 4:
            msg = ("TensorBatch.data: expected a 4-D torch.Tensor (B, C, H, W), "
                   f"got {_desc(self.data)}")
            raise ValidationError(msg)
        if not self.data.is_floating_point():
            msg = f"TensorBatch.data: expected a floating-point dtype, got {self.data.dtype}"
            raise ValidationError(msg)
        b, _, h, w = self.data.shape
        if not isinstance(self.mask, torch.Tensor) or self.mask.dtype != torch.bool:
            msg = f"TensorBatch.mask: expected a boolean torch.Tensor, got {_desc(self.mask)}"
            raise ValidationError(msg)
        if self.mask.ndim != 4 or self.mask.shape[0] != b or self.mask.shape[2:] != (h, w) \
                or self.mask.shape[1] not in (1, self.data.shape[1]):
            msg = (f"TensorBatch.mask: shape {tuple(self.mask.shape)} does not broadcast to "
                   f"data shape {tuple(self.data.shape)}")
            raise ValidationError(msg)
        self.ids = [str(i) for i in self.ids]
        if len(self.ids) != b:
            msg = f"TensorBatch.ids: expected {b} ids, got {len(self.ids)}"
            raise ValidationError(msg)
        for name in ("uncertainty",):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != tuple(self.data.shape):
                msg = (f"TensorBatch.{name}: shape {tuple(value.shape)} differs from data "
                       f"shape {tuple(self.data.shape)}")
                raise ValidationError(msg)
        wave = self.meta.get("wavelength")
        # a stale axis (a step changed the channels but kept the meta) would
        # silently mislabel every channel: refuse it where it is made
        if wave is not None and tuple(np.shape(wave)) != (self.data.shape[1],):
            msg = (f"TensorBatch.meta['wavelength']: expected one wavelength per channel, "
                   f"shape ({self.data.shape[1]},), got shape {tuple(np.shape(wave))}; a step "
                   "that changes the channel axis must drop the cube meta (without_cube_meta)")
            raise ValidationError(msg)
        rest = self.meta.get("rest_frame")
        if rest is not None and not isinstance(rest, bool | np.bool_):
            msg = f"TensorBatch.meta['rest_frame']: expected a bool, got {rest!r}"
            raise ValidationError(msg)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __repr__(self) -> str:
        fields = [f"data={tuple(self.data.shape)} {self.data.dtype}",
                  f"mask={tuple(self.mask.shape)}"]
        fields += [f"{name}={tuple(getattr(self, name).shape)}"
                   for name in ("uncertainty", "targets", "target_mask", "star_mask")
                   if getattr(self, name) is not None]
        ids = ", ".join(self.ids[:3]) + (", ..." if len(self.ids) > 3 else "")
        return f"<TensorBatch of {len(self)} on {self.device}: {', '.join(fields)}; ids [{ids}]>"

    @property
    def wavelength(self) -> NDArray[np.float64] | None:
        """`numpy.ndarray` or None: the channel wavelengths (Angstrom) of a cube batch."""
        wave = self.meta.get("wavelength")
        if wave is None:
            return None
        if hasattr(wave, "detach"):  # a tensor
            wave = wave.detach().cpu().numpy()
        return np.asarray(wave, dtype=float)

    @property
    def device(self) -> torch.device:
        """`torch.device`: where the data live."""
        return self.data.device

    def replace(self, **changes: Any) -> Self:
        """Return a copy with some fields replaced (no validation shortcut).

        Parameters
        ----------
        **changes : dict
            Field names and new values.

        Returns
        -------
        batch : `TensorBatch`
        """
        return replace(self, **changes)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Return the tensor fields that are set, by name (see `TENSOR_FIELDS`).

        Returns
        -------
        tensors : dict of str to `torch.Tensor`
        """
        return {name: getattr(self, name) for name in TENSOR_FIELDS
                if getattr(self, name) is not None}

    def to(self, device: str | torch.device) -> Self:
        """Return the batch on another device.

        Parameters
        ----------
        device : str or `torch.device`

        Returns
        -------
        batch : `TensorBatch`
        """
        moved = {name: value.to(device) for name, value in self.tensors().items()}
        return self.replace(**moved)

    def chunk(self, start: int, stop: int) -> Self:
        """Return the galaxies ``start:stop`` as views of this batch's tensors (no copy).

        Parameters
        ----------
        start, stop : int

        Returns
        -------
        batch : `TensorBatch`
            Shares memory with this batch: do not modify it in place.
        """
        picked = {name: value[start:stop] for name, value in self.tensors().items()}
        return self.replace(ids=self.ids[start:stop], meta=self._meta_rows(slice(start, stop)),
                            **picked)

    def index(self, idx: slice | Sequence[int] | torch.Tensor) -> Self:
        """Return the sub-batch at integer positions ``idx``.

        Parameters
        ----------
        idx : slice, sequence of int or `torch.Tensor`

        Returns
        -------
        batch : `TensorBatch`
        """
        import torch

        if isinstance(idx, slice):
            idx = range(len(self))[idx]
        idx = torch.as_tensor(idx, dtype=torch.long)
        picked = {name: value[idx] for name, value in self.tensors().items()}
        ids = [self.ids[i] for i in idx.tolist()]
        return self.replace(ids=ids, meta=self._meta_rows(idx.numpy()), **picked)

    def repeat(self, n: int | np.integer) -> Self:
        """Return the batch repeated ``n`` times along the galaxy axis (a copy).

        Galaxy ``i`` of repetition ``r`` is at position ``r * len(self) + i``:
        one call of an augmenter on ``batch.repeat(2)`` gives two independent
        views of every galaxy, the first views in the first half.

        Parameters
        ----------
        n : int
            Number of copies (>= 1).

        Returns
        -------
        batch : `TensorBatch`
        """
        import torch

        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            msg = f"TensorBatch.repeat: expected a positive int, got {n!r}"
            raise ValidationError(msg)
        n = int(n)
        if n == 1:
            return self
        stacked = {name: torch.cat([value] * n) for name, value in self.tensors().items()}
        rows = np.tile(np.arange(len(self)), n)
        return self.replace(ids=self.ids * n, meta=self._meta_rows(rows), **stacked)

    def _meta_rows(self, rows: slice | np.ndarray) -> dict[str, Any]:
        """``meta`` with the per-galaxy values of `PER_IMAGE_META` keys taken at ``rows``."""
        meta = dict(self.meta)
        for key in PER_IMAGE_META:
            values = per_image_meta(meta.get(key), len(self))
            if values is not None:
                meta[key] = values[rows].tolist()
        return meta

    @classmethod
    def from_arrays(cls, data: ArrayLike, mask: ArrayLike | None = None,
                    ids: Sequence[str] | None = None, uncertainty: ArrayLike | None = None,
                    **kwargs: Any) -> Self:
        """Build a batch from numpy arrays.

        Parameters
        ----------
        data : array-like
            ``(B, C, H, W)`` values.
        mask : array-like of bool, optional
            True where bad; default: non-finite data.
        ids : sequence of str, optional
            Default ``"0" ... "B-1"``.
        uncertainty : array-like, optional
        **kwargs
            Other `TensorBatch` fields (tensors or arrays).

        Returns
        -------
        batch : `TensorBatch`
        """
        import torch

        data = np.asarray(data, dtype=np.float32)
        if mask is None:
            mask = ~np.isfinite(data)
        tensors: dict[str, Any] = {
            k: (torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v)
            for k, v in kwargs.items()}
        return cls(
            data=torch.from_numpy(np.ascontiguousarray(data)),
            mask=torch.from_numpy(np.ascontiguousarray(np.asarray(mask, bool))),
            ids=[str(i) for i in range(len(data))] if ids is None else list(ids),
            uncertainty=None if uncertainty is None
            else torch.from_numpy(np.ascontiguousarray(uncertainty, dtype=np.float32)),
            **tensors,
        )


class BatchSource(Protocol):
    """What training and embedding read galaxies from: a *batch source* (a static type).

    Any object with ``len()``, ``ids`` and ``batch(indices)`` is one, without
    subclassing this: the on-disk cache
    (`~astro_cl.preprocess.cache.CachedArrays`), the sources of
    `astro_cl.training.data`, a `~astro_cl.studies.SourceView`.
    """

    @property
    def ids(self) -> Sequence[str]:
        """Sequence of str: the galaxy ids, one per row."""
        ...

    def __len__(self) -> int:
        ...

    def batch(self, indices: ArrayLike) -> TensorBatch:
        """Return the rows ``indices`` as a `TensorBatch`.

        Parameters
        ----------
        indices : array-like of int
            Row numbers.

        Returns
        -------
        batch : `TensorBatch`
        """
        ...


def _desc(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def per_image_meta(value: ArrayLike | None, n: int) -> np.ndarray | None:
    """Return ``value`` as a length-``n`` numpy array if it holds one value per galaxy.

    Parameters
    ----------
    value : object
        A ``meta`` value.
    n : int
        Number of galaxies.

    Returns
    -------
    values : `numpy.ndarray` or None
        None when ``value`` is a single value (or absent) and applies to all.
    """
    if value is None or np.ndim(value) == 0:
        return None
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != n:
        msg = f"TensorBatch.meta: a per-galaxy value needs {n} entries, got shape {arr.shape}"
        raise ValidationError(msg)
    return arr


def without_cube_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``meta`` without the spectral-axis keys (`CUBE_META`).

    Parameters
    ----------
    meta : dict
        A batch's metadata.

    Returns
    -------
    meta : dict
        For the output of a step that replaces the spectral channels (a
        preprocessor turning cubes into images).
    """
    return {k: v for k, v in meta.items() if k not in CUBE_META}


def _record_redshift(record: GalaxyRecord) -> float | None:
    """Redshift of a record: ``observing.redshift``, else a ``z`` property, else None."""
    z = record.observing.redshift
    if z is None:
        z = record.properties.get("z")
        z = None if z is None else float(getattr(z, "value", z))
    return None if z is None or not np.isfinite(z) else float(z)


def cube_axis(record: GalaxyRecord) -> dict[str, Any]:
    """Return what a batch needs to know of one record's cube: its spectral axis and redshift.

    Parameters
    ----------
    record : `~astro_cl.data.GalaxyRecord`
        A record with a cube.

    Returns
    -------
    axis : dict
        ``id``, ``wavelength`` (float64 array, Angstrom), ``flux_unit`` (str),
        ``rest_frame`` (the record's ``meta["rest_frame"]``, default False:
        survey cubes are observed-frame) and ``redshift`` (float or None:
        ``observing.redshift``, else a ``z`` property).
    """
    import astropy.units as u

    if record.cube is None:
        msg = f"record {record.id!r}: cube: the record has no cube"
        raise ValidationError(msg)
    wave = record.cube.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    return {"id": record.id, "wavelength": np.asarray(wave, dtype=float),
            "flux_unit": record.cube.flux.unit.to_string(),
            "rest_frame": bool(record.meta.get("rest_frame", False)),
            "redshift": _record_redshift(record)}


def cube_meta(records: Sequence[GalaxyRecord | dict[str, Any]]) -> dict[str, Any]:
    """Return the `CUBE_META` (and per-galaxy redshift) of a batch of cube records.

    Parameters
    ----------
    records : sequence of `~astro_cl.data.GalaxyRecord` or of dict
        Records with cubes in batch order, or their `cube_axis` summaries
        (which do not keep the cubes in memory).

    Returns
    -------
    meta : dict
        ``wavelength`` (float64 array, Angstrom, shared by every cube),
        ``rest_frame`` (bool), ``flux_unit`` (str) and, when every record has
        one, ``redshift`` (list, one per galaxy).

    Raises
    ------
    astro_cl.exceptions.SurveyError
        If the cubes have different wavelength grids, flux units or
        rest-frame flags: they cannot share one channel axis.
    """
    axes = [a if isinstance(a, dict) else cube_axis(a) for a in records]
    if not axes:
        return {}
    first = axes[0]
    wave = first["wavelength"]
    # grids written from the same WCS agree to rounding; 1e-6 of the wavelength
    # is far below any survey's channel width
    tol = 1e-6 * float(np.max(np.abs(wave), initial=0.0))
    for ax in axes[1:]:
        other = ax["wavelength"]
        if other.shape != wave.shape or np.max(np.abs(other - wave), initial=0.0) > tol:
            msg = (f"cube batch: galaxy {ax['id']!r} has another wavelength grid "
                   f"({_span(other)}) than galaxy {first['id']!r} ({_span(wave)}); "
                   "resample the cubes to a common grid first")
            raise SurveyError(msg)
        for key, what in (("flux_unit", "flux unit"), ("rest_frame", "meta['rest_frame']")):
            if ax[key] != first[key]:
                msg = (f"cube batch: galaxy {ax['id']!r} has {what} {ax[key]!r}, galaxy "
                       f"{first['id']!r} has {first[key]!r}; a batch shares one spectral axis")
                raise SurveyError(msg)
    meta = {"wavelength": wave, "rest_frame": first["rest_frame"],
            "flux_unit": first["flux_unit"]}
    z = [ax["redshift"] for ax in axes]
    if all(v is not None for v in z):
        meta["redshift"] = z
    return meta


def _span(wave: np.ndarray) -> str:
    if wave.size == 0:
        return "no channels"
    return f"{wave[0]:.2f}-{wave[-1]:.2f} A, {wave.size} channels"
