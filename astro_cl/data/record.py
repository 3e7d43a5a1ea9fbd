"""The galaxy record: what a survey knows about one galaxy, as astropy objects.

A record holds any of

* an IFU cube as a `specutils.Spectrum` (flux with units, spectral axis,
  uncertainty, boolean mask, WCS);
* images as one `~astropy.nddata.NDData` band stack of shape ``(n_band, ny, nx)``
  whose ``meta["bands"]`` names the bands (or a mapping band name -> 2-D NDData,
  which is stacked);
* property maps as a mapping name -> 2-D `~astropy.nddata.NDData` with units;
* integrated properties (a catalogue row) as a mapping name -> value or Quantity;
* observing metadata (`ObservingMeta`) as Quantities.

Masks follow the astropy convention: ``True`` marks a bad (masked) pixel.
Everything is validated when the record is built, and errors name the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, overload

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, NDData, StdDevUncertainty

from astro_cl.exceptions import ValidationError

if TYPE_CHECKING:
    from astropy.nddata import NDUncertainty
    from numpy.typing import NDArray
    from specutils import Spectrum

__all__ = ["GalaxyRecord", "ObservingMeta", "cube_to_array", "uncertainty_as_std"]

_PIXEL_SCALE_UNIT = u.arcsec / u.pixel


def _fail(record_id: str | None, field_name: str, problem: str) -> NoReturn:
    where = f"record {record_id!r}: " if record_id is not None else ""
    msg = f"{where}{field_name}: {problem}"
    raise ValidationError(msg)


@overload
def _as_quantity(value: None, unit: u.UnitBase, field_name: str, *,
                 equivalencies: list[Any] | None = None) -> None: ...


@overload
def _as_quantity(value: u.Quantity, unit: u.UnitBase, field_name: str, *,
                 equivalencies: list[Any] | None = None) -> u.Quantity: ...


def _as_quantity(value: u.Quantity | None, unit: u.UnitBase, field_name: str, *,
                 equivalencies: list[Any] | None = None) -> u.Quantity | None:
    if value is None:
        return None
    if not isinstance(value, u.Quantity):
        msg = f"{field_name}: expected a Quantity with units of {unit}, got {value!r} (no unit)"
        raise ValidationError(msg)
    try:
        return value.to(unit, equivalencies=equivalencies or [])
    except u.UnitConversionError:
        msg = f"{field_name}: expected units convertible to {unit}, got {value.unit}"
        raise ValidationError(msg) from None


@dataclass(frozen=True)
class ObservingMeta:
    """Observing metadata of a record, as Quantities.

    Parameters
    ----------
    pixel_scale : `~astropy.units.Quantity`, optional
        Angular size of a pixel (spaxel), in arcsec/pixel (an angle is taken
        per pixel).
    psf_fwhm : `~astropy.units.Quantity`, optional
        FWHM of the point-spread function, an angle.
    redshift : float, optional
        Redshift of the galaxy (dimensionless, >= -0.01).
    wavelength_range : `~astropy.units.Quantity`, optional
        ``[min, max]`` observed wavelength coverage, a length.
    bands : tuple of str, optional
        Photometric band names, in the order of the image stack.
    instrument : str, optional
        Instrument or survey configuration (e.g. ``"PMAS/PPak V500"``).
    """

    pixel_scale: u.Quantity | None = None
    psf_fwhm: u.Quantity | None = None
    redshift: float | None = None
    wavelength_range: u.Quantity | None = None
    bands: tuple[str, ...] | None = None
    instrument: str | None = None

    def __post_init__(self) -> None:
        scale = self.pixel_scale
        if scale is not None:
            if isinstance(scale, u.Quantity) and scale.unit.physical_type == "angle":
                scale = scale / u.pixel
            scale = _as_quantity(scale, _PIXEL_SCALE_UNIT, "pixel_scale")
            if not np.isfinite(scale.value) or scale.value <= 0:
                _fail(None, "pixel_scale", f"expected a positive finite value, got {scale}")
            object.__setattr__(self, "pixel_scale", scale)
        psf = _as_quantity(self.psf_fwhm, u.arcsec, "psf_fwhm")
        if psf is not None and (not np.all(np.isfinite(psf.value)) or np.any(psf.value < 0)):
            _fail(None, "psf_fwhm", f"expected a non-negative finite angle, got {psf}")
        object.__setattr__(self, "psf_fwhm", psf)
        if self.redshift is not None:
            z = float(self.redshift)
            if not np.isfinite(z) or z < -0.01:
                _fail(None, "redshift", f"expected a finite value >= -0.01, got {self.redshift!r}")
            object.__setattr__(self, "redshift", z)
        wr = _as_quantity(self.wavelength_range, u.AA, "wavelength_range",
                          equivalencies=u.spectral())
        if wr is not None:
            if wr.shape != (2,) or not wr[0] < wr[1]:
                _fail(None, "wavelength_range", f"expected [min, max] with min < max, got {wr}")
        object.__setattr__(self, "wavelength_range", wr)
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))


def uncertainty_as_std(uncertainty: NDUncertainty | None,
                       data_unit: u.UnitBase | None = None) -> NDArray[np.float64] | None:
    """Return an NDData uncertainty as a standard-deviation array.

    Parameters
    ----------
    uncertainty : `~astropy.nddata.NDUncertainty` or None
        A `~astropy.nddata.StdDevUncertainty`, `~astropy.nddata.VarianceUncertainty`
        or `~astropy.nddata.InverseVariance`.
    data_unit : `~astropy.units.Unit`, optional
        Unused; kept for symmetry with astropy's API.

    Returns
    -------
    std : `numpy.ndarray` or None
        One-sigma uncertainty in the data's unit; infinite where the inverse
        variance is zero.
    """
    if uncertainty is None:
        return None
    if isinstance(uncertainty, StdDevUncertainty):
        return np.asarray(uncertainty.array, dtype=float)
    with np.errstate(divide="ignore"):  # ivar == 0 means "no information": inf sigma
        std = uncertainty.represent_as(StdDevUncertainty)
    return np.asarray(std.array, dtype=float)


def cube_to_array(cube: Spectrum) -> tuple[np.ndarray, NDArray[np.bool_], np.ndarray | None]:
    """Return the flux, mask and 1-sigma uncertainty of a cube in ``(n_spec, ny, nx)`` order.

    Parameters
    ----------
    cube : `specutils.Spectrum`
        A 3-D spectrum (any spectral axis position).

    Returns
    -------
    flux : `numpy.ndarray`
        Flux values in the cube's unit, spectral axis first.
    mask : `numpy.ndarray` of bool
        True where the pixel is bad.
    std : `numpy.ndarray` or None
        One-sigma uncertainty, or None if the cube has none.
    """
    axis = cube.spectral_axis_index
    flux = np.moveaxis(np.asarray(cube.flux.value), axis, 0)
    mask = cube.mask
    mask = (np.zeros(flux.shape, bool) if mask is None
            else np.moveaxis(np.asarray(mask, bool), axis, 0))
    std = uncertainty_as_std(cube.uncertainty)
    if std is not None:
        std = np.moveaxis(std, axis, 0)
    return flux, mask, std


def _check_nddata(record_id: str, field_name: str, value: object, ndim: int) -> np.ndarray:
    if not isinstance(value, NDData):
        _fail(record_id, field_name, f"expected an astropy NDData, got {type(value).__name__}")
    data = np.asarray(value.data)
    if data.ndim != ndim:
        _fail(record_id, field_name, f"expected {ndim}-D data, got shape {data.shape}")
    if value.unit is None:
        _fail(record_id, field_name,
              "has no unit; give one (u.dimensionless_unscaled for unitless data)")
    if value.mask is not None and np.shape(value.mask) != data.shape:
        _fail(record_id, field_name,
              f"mask shape {np.shape(value.mask)} does not match data shape {data.shape}")
    if value.uncertainty is not None and np.shape(value.uncertainty.array) != data.shape:
        _fail(record_id, field_name, f"uncertainty shape {np.shape(value.uncertainty.array)} "
              f"does not match data shape {data.shape}")
    return data


@dataclass(eq=False)
class GalaxyRecord:
    """Everything a survey knows about one galaxy.

    Parameters
    ----------
    id : str
        Identifier, unique within its survey (catalogue ``id`` column).
    survey : str, optional
        Name of the survey the record comes from.
    cube : `specutils.Spectrum`, optional
        3-D IFU cube with flux units and a spectral axis.
    images : `~astropy.nddata.NDData` or mapping of str to `~astropy.nddata.NDData`, optional
        Band stack ``(n_band, ny, nx)`` with ``meta["bands"]``, or band name ->
        2-D image (stacked on construction).
    maps : mapping of str to `~astropy.nddata.NDData`, optional
        2-D property maps with units, on the same spatial grid.
    properties : mapping, optional
        Integrated properties (a catalogue row): name -> value or Quantity.
        An `~astropy.table.Row` is accepted.
    observing : `ObservingMeta`, optional
        Pixel scale, PSF, redshift, wavelength coverage.
    star_mask : `numpy.ndarray` of bool, optional
        2-D foreground-star mask (True on stars), kept apart from the data
        masks because augmentations use it.
    meta : dict, optional
        Anything else (file names, header cards).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If a field has the wrong type, dimensionality, unit or shape.
    """

    id: str
    survey: str | None = None
    cube: Spectrum | None = None
    # a mapping band name -> NDData is accepted too, and stacked by __post_init__
    images: NDData | None = None
    maps: dict[str, NDData] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    observing: ObservingMeta = field(default_factory=ObservingMeta)
    star_mask: NDArray[np.bool_] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            _fail(None, "id", f"expected a non-empty string, got {self.id!r}")
        rid = self.id
        shapes = {}
        if self.cube is not None:
            from specutils import Spectrum

            if not isinstance(self.cube, Spectrum):
                _fail(rid, "cube", f"expected a specutils.Spectrum, got {type(self.cube).__name__}")
            if self.cube.flux.ndim != 3:
                _fail(rid, "cube", f"expected a 3-D cube, got flux of shape {self.cube.flux.shape}")
            if self.cube.flux.unit in (None, u.dimensionless_unscaled):
                _fail(rid, "cube", "flux has no physical unit")
            spatial = tuple(s for i, s in enumerate(self.cube.flux.shape)
                            if i != self.cube.spectral_axis_index)
            shapes["cube"] = spatial
        if self.images is not None:
            self.images = self._stack_images(self.images)
            shapes["images"] = np.shape(self.images.data)[1:]
        if not isinstance(self.maps, Mapping):
            _fail(rid, "maps", f"expected a mapping name -> NDData, got {type(self.maps).__name__}")
        self.maps = dict(self.maps)
        for key, value in self.maps.items():
            shapes[f"maps[{key!r}]"] = _check_nddata(rid, f"maps[{key!r}]", value, 2).shape
        if self.star_mask is not None:
            self.star_mask = np.asarray(self.star_mask)
            if self.star_mask.dtype != bool:
                _fail(rid, "star_mask",
                      f"expected a boolean array, got dtype {self.star_mask.dtype}")
            if self.star_mask.ndim != 2:
                _fail(rid, "star_mask", f"expected 2-D, got shape {self.star_mask.shape}")
            shapes["star_mask"] = self.star_mask.shape
        if len(set(shapes.values())) > 1:
            _fail(rid, "spatial shape", f"fields disagree: {shapes}")
        if not isinstance(self.observing, ObservingMeta):
            _fail(rid, "observing", f"expected ObservingMeta, got {type(self.observing).__name__}")
        if hasattr(self.properties, "colnames"):  # an astropy Row
            row = self.properties
            self.properties = {name: row[name] for name in row.colnames}
        if not isinstance(self.properties, Mapping):
            _fail(rid, "properties", f"expected a mapping, got {type(self.properties).__name__}")
        self.properties = dict(self.properties)

    def _stack_images(self, images: NDData | Mapping[str, NDData]) -> NDData:
        rid = self.id
        if isinstance(images, Mapping):
            if not images:
                _fail(rid, "images", "empty mapping")
            bands = tuple(images)
            planes = [_check_nddata(rid, f"images[{b!r}]", images[b], 2) for b in bands]
            if len({p.shape for p in planes}) > 1:
                _fail(rid, "images", f"bands differ in shape: {[p.shape for p in planes]}")
            units = {images[b].unit for b in bands}
            if len(units) > 1:
                _fail(rid, "images", f"bands differ in unit: {sorted(map(str, units))}")
            first = images[bands[0]]
            mask = np.stack([np.zeros(p.shape, bool) if images[b].mask is None
                             else np.asarray(images[b].mask, bool)
                             for b, p in zip(bands, planes, strict=True)])
            stds = [uncertainty_as_std(images[b].uncertainty) for b in bands]
            unc = (None if any(s is None for s in stds)
                   else StdDevUncertainty(np.stack([s for s in stds if s is not None])))
            return NDData(np.stack(planes), unit=first.unit, mask=mask, uncertainty=unc,
                          wcs=first.wcs, meta={"bands": bands})
        data = _check_nddata(rid, "images", images, 3)
        bands = tuple(images.meta.get("bands", ()))
        if len(bands) != data.shape[0]:
            _fail(rid, "images.meta['bands']",
                  f"expected {data.shape[0]} band names for a stack of shape {data.shape}, "
                  f"got {bands!r}")
        return images

    # -- convenient views ---------------------------------------------------
    @property
    def bands(self) -> tuple[str, ...]:
        """Tuple of str: band names of the image stack (empty without images)."""
        return tuple(self.images.meta["bands"]) if self.images is not None else ()

    @property
    def spatial_shape(self) -> tuple[int, ...] | None:
        """Tuple of int or None: ``(ny, nx)`` shared by cube, images and maps."""
        if self.images is not None:
            return tuple(np.shape(self.images.data)[1:])
        if self.cube is not None:
            return cube_to_array(self.cube)[0].shape[1:]
        for value in self.maps.values():
            return tuple(np.shape(value.data))
        return None

    def band(self, name: str) -> CCDData:
        """Return one band of the image stack as `~astropy.nddata.CCDData`.

        Parameters
        ----------
        name : str
            Band name, one of `bands`.

        Returns
        -------
        image : `~astropy.nddata.CCDData`
            The band's data with unit, mask, uncertainty and WCS.
        """
        img = self.images
        if img is None or name not in self.bands:  # no images: no bands
            msg = f"record {self.id!r} has no band {name!r}; bands are {self.bands}"
            raise KeyError(msg)
        i = self.bands.index(name)
        unc = uncertainty_as_std(img.uncertainty)
        return CCDData(np.asarray(img.data[i], dtype=float), unit=img.unit,
                       mask=None if img.mask is None else np.asarray(img.mask)[i],
                       uncertainty=None if unc is None else StdDevUncertainty(unc[i]),
                       wcs=img.wcs, meta={"band": name})

    def as_arrays(self, kind: str = "images", *, map_names: Sequence[str] | None = None,
                  ) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.float32] | None]:
        """Return ``(data, mask, std)`` arrays of shape ``(C, ny, nx)`` for training.

        Parameters
        ----------
        kind : {"images", "cube", "maps"}
            Which field to turn into channels.
        map_names : sequence of str, optional
            For ``kind="maps"``, which maps (default: all, in insertion order).

        Returns
        -------
        data : `numpy.ndarray` of float32
        mask : `numpy.ndarray` of bool
            True where bad; non-finite data are masked too.
        std : `numpy.ndarray` of float32 or None
            One-sigma uncertainty, if every channel has one.
        """
        if kind == "images":
            if self.images is None:
                _fail(self.id, "images", "the record has no images")
            data = np.asarray(self.images.data, dtype=np.float32)
            mask = (np.zeros(data.shape, bool) if self.images.mask is None
                    else np.asarray(self.images.mask, bool).copy())
            std = uncertainty_as_std(self.images.uncertainty)
        elif kind == "cube":
            if self.cube is None:
                _fail(self.id, "cube", "the record has no cube")
            data, mask, std = cube_to_array(self.cube)
            data = data.astype(np.float32)
            mask = mask.copy()
        elif kind == "maps":
            names = list(self.maps) if map_names is None else list(map_names)
            missing = [n for n in names if n not in self.maps]
            if missing or not names:
                _fail(self.id, "maps", f"missing {missing or 'all maps'}; has {list(self.maps)}")
            data = np.stack([np.asarray(self.maps[n].data, dtype=np.float32) for n in names])
            mask = np.stack([np.zeros(self.maps[n].data.shape, bool) if self.maps[n].mask is None
                             else np.asarray(self.maps[n].mask, bool) for n in names])
            stds = [uncertainty_as_std(self.maps[n].uncertainty) for n in names]
            std = (None if any(s is None for s in stds)
                   else np.stack([s for s in stds if s is not None]))
        else:
            msg = f"kind: expected 'images', 'cube' or 'maps', got {kind!r}"
            raise ValueError(msg)
        mask |= ~np.isfinite(data)
        return data, mask, None if std is None else std.astype(np.float32)
