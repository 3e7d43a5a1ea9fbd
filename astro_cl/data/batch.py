"""Batches of tensors: what flows from a survey into augmenters and models.

Imports torch lazily, so that ``import astro_cl.data`` stays torch-free.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from astro_cl.exceptions import ValidationError

__all__ = ["PER_IMAGE_META", "TENSOR_FIELDS", "TensorBatch", "per_image_meta"]

#: The per-galaxy tensor fields of a `TensorBatch`, in a fixed order.
TENSOR_FIELDS = ("data", "mask", "uncertainty", "targets", "target_mask", "star_mask")

#: ``meta`` keys that may hold one value per galaxy (a sequence as long as the
#: batch) rather than one value for all: the PSF FWHM that
#: `~astro_cl.augment.photometric.PSFDegradation` updates and the redshift that
#: `~astro_cl.augment.photometric.SurfaceBrightnessDimming` reads. Selecting,
#: chunking and repeating a batch select their values with its galaxies. The
#: values are the defaults the augmenters assume when the key is absent.
PER_IMAGE_META = {"psf_fwhm": 0.0, "redshift": 0.0}


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
        `PER_IMAGE_META` may hold one value per galaxy.
    """

    data: object
    mask: object
    ids: list
    uncertainty: object = None
    targets: object = None
    target_mask: object = None
    star_mask: object = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
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

    def __len__(self):
        return int(self.data.shape[0])

    def __repr__(self):
        fields = [f"data={tuple(self.data.shape)} {self.data.dtype}",
                  f"mask={tuple(self.mask.shape)}"]
        fields += [f"{name}={tuple(getattr(self, name).shape)}"
                   for name in ("uncertainty", "targets", "target_mask", "star_mask")
                   if getattr(self, name) is not None]
        ids = ", ".join(self.ids[:3]) + (", ..." if len(self.ids) > 3 else "")
        return f"<TensorBatch of {len(self)} on {self.device}: {', '.join(fields)}; ids [{ids}]>"

    @property
    def device(self):
        """`torch.device`: where the data live."""
        return self.data.device

    def replace(self, **changes):
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

    def tensors(self):
        """Return the tensor fields that are set, by name (see `TENSOR_FIELDS`).

        Returns
        -------
        tensors : dict of str to `torch.Tensor`
        """
        return {name: getattr(self, name) for name in TENSOR_FIELDS
                if getattr(self, name) is not None}

    def to(self, device):
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

    def chunk(self, start, stop):
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

    def index(self, idx):
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

    def repeat(self, n):
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

    def _meta_rows(self, rows):
        """``meta`` with the per-galaxy values of `PER_IMAGE_META` keys taken at ``rows``."""
        meta = dict(self.meta)
        for key in PER_IMAGE_META:
            values = per_image_meta(meta.get(key), len(self))
            if values is not None:
                meta[key] = values[rows].tolist()
        return meta

    @classmethod
    def from_arrays(cls, data, mask=None, ids=None, uncertainty=None, **kwargs):
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
        tensors = {k: (torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v)
                   for k, v in kwargs.items()}
        return cls(
            data=torch.from_numpy(np.ascontiguousarray(data)),
            mask=torch.from_numpy(np.ascontiguousarray(np.asarray(mask, bool))),
            ids=list(range(len(data))) if ids is None else list(ids),
            uncertainty=None if uncertainty is None
            else torch.from_numpy(np.ascontiguousarray(uncertainty, dtype=np.float32)),
            **tensors,
        )


def _desc(value):
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def per_image_meta(value, n):
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
