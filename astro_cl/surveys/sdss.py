"""SDSS ugriz cutouts: FITS files with a catalogue, or 5-band numpy arrays.

FITS layout (see CONTRACTS): ``<id>.fits[.gz]`` with one ImageHDU per band
(``EXTNAME`` = band, ``BUNIT`` nanomaggy, celestial WCS) and optional
``<band>_IVAR`` inverse-variance HDUs, **or** a single 3-D HDU with a
``BANDS = 'u,g,r,i,z'`` card. ``PSF_FWHM`` (arcsec) and ``Z`` header cards are
read when present. ``catalogue.ecsv`` (an ``id`` column) is joined on ``id``;
``<id>.maps.fits`` next to a cutout is attached as the record's maps.

Numpy layout: one ``(N, 5, H, W)`` ``.npy`` array (memory-mapped), with an
optional aligned ``.npy`` of labels (``*_images.npy`` finds ``*_labels.npy``).
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError
from astro_cl.surveys import _fits
from astro_cl.surveys.base import Survey

__all__ = ["SDSS_PIXEL_SCALE", "SDSSSurvey"]

#: SDSS imaging pixel scale.
SDSS_PIXEL_SCALE = 0.396 * u.arcsec / u.pix
_NANOMAGGY = u.nanomaggy
_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")


def _strip_suffix(name):
    for suffix in sorted(_FITS_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


class SDSSSurvey(Survey):
    """SDSS ugriz cutouts from FITS files or a numpy array.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A directory of ``<id>.fits`` cutouts, or an ``(N, 5, H, W)`` ``.npy`` file.
    catalogue_file : str or `~pathlib.Path`, optional
        Catalogue with an ``id`` column (default: ``catalogue.ecsv`` in the directory).
    labels : str or `~pathlib.Path`, optional
        For ``.npy`` input: an ``(N,)`` array added as catalogue column ``label``
        (default: ``<stem>_labels.npy`` beside ``<stem>_images.npy`` if present).
    bands : sequence of str, optional
        Band names in stack order (``"ugriz"``).
    unit : str or `~astropy.units.Unit`, optional
        Unit of ``.npy`` images (numpy files carry none; default dimensionless,
        with a warning). FITS cutouts use their ``BUNIT`` (nanomaggy if missing).
    psf_fwhm : `~astropy.units.Quantity`, optional
        PSF FWHM when no ``PSF_FWHM`` card is present.
    catalogue : str or `~pathlib.Path`, optional
        Deprecated former name of ``catalogue_file`` (warns with
        `~astro_cl.exceptions.AstroCLDeprecationWarning`; ``catalogue`` is the
        opened table).
    """

    name = "sdss"
    description = "SDSS ugriz cutouts: per-band or 3-D FITS with a catalogue, or (N,5,H,W) .npy."
    default_kind = "images"
    renamed_params = {"catalogue": "catalogue_file"}

    def __init__(self, *, path=None, catalogue_file=None, labels=None, bands="ugriz", unit=None,
                 psf_fwhm=None, catalogue=None):
        self.path = path
        self.catalogue_file = self._renamed_param("catalogue", catalogue, catalogue_file)
        self.labels = labels
        self.bands = bands
        self.unit = unit
        self.psf_fwhm = psf_fwhm

    @property
    def _bands(self):
        return tuple(self.bands)

    # -- opening ---------------------------------------------------------------
    def _open(self):
        root = _fits.check_directory(self.path, self.name)
        if root.is_file() and root.suffix == ".npy":
            return self._open_numpy(root)
        if not root.is_dir():
            msg = f"{root}: expected a directory of <id>.fits cutouts or an (N, 5, H, W) .npy"
            raise SurveyError(msg)
        self._mode = "fits"
        files = {}
        for entry in sorted(root.iterdir()):
            stem = _strip_suffix(entry.name)
            if stem is None or stem.endswith(".maps") or not entry.is_file():
                continue
            if stem in files:
                msg = f"{root}: two cutouts for id {stem!r}: {files[stem].name}, {entry.name}"
                raise SurveyError(msg)
            files[stem] = entry
        if not files:
            msg = f"{root}: no <id>.fits cutouts"
            raise SurveyError(msg)
        cat_path = self.catalogue_file
        if cat_path is None and (root / "catalogue.ecsv").is_file():
            cat_path = root / "catalogue.ecsv"
        table = None if cat_path is None else _fits.read_table(cat_path)
        ids = list(files)
        cat, self.files_without_row_, self.rows_without_file_ = _fits.join_catalogue(
            ids, {"file": np.array([files[i].name for i in ids])}, table, "id",
            source=cat_path, survey_name=self.name)
        cat.meta.update({"survey": self.name, "path": str(root), "bands": self._bands})
        self._root = root
        self._catalogue_source = cat_path
        return cat

    def _open_numpy(self, path):
        self._mode = "numpy"
        arr = _fits.load_npy(path, mmap=True, what="(N, 5, H, W) .npy image array")
        if arr.ndim != 4 or arr.shape[1] != len(self._bands) or 0 in arr.shape:
            msg = (f"{path}: array of shape {arr.shape}, expected (N, {len(self._bands)}, H, W) "
                   f"with N, H, W >= 1 for bands {self._bands}")
            raise SurveyError(msg)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            msg = f"{path}: array of dtype {arr.dtype}, expected numbers"
            raise SurveyError(msg)
        self._array = arr
        width = len(str(max(len(arr) - 1, 0)))
        cat = QTable({"id": np.array([f"{i:0{width}d}" for i in range(len(arr))]),
                       "index": np.arange(len(arr))})
        labels = self.labels
        if labels is None and path.name.endswith("_images.npy"):
            guess = path.with_name(path.name[: -len("_images.npy")] + "_labels.npy")
            labels = guess if guess.is_file() else None
        if labels is not None:
            lab = _fits.load_npy(labels, error=CatalogueError, what=".npy array of labels")
            if lab.shape[:1] != (len(arr),):
                msg = (f"{labels}: {lab.shape[0] if lab.ndim else 0} labels for the {len(arr)} "
                       f"images of {path} (expected one per image)")
                raise CatalogueError(msg)
            cat["label"] = lab
        if self.unit is None:
            warnings.warn(f"{path}: numpy images carry no unit and unit= was not given; "
                          "treating them as dimensionless", AstroCLWarning, stacklevel=4)
        cat.meta.update({"survey": self.name, "path": str(path), "bands": self._bands})
        return cat

    # -- reading ---------------------------------------------------------------
    def _read_record(self, index):
        row = self.catalogue[index]
        gid = str(row["id"])
        if self._mode == "numpy":
            data = np.array(self._array[index], dtype=np.float32)
            unit = u.dimensionless_unscaled if self.unit is None else u.Unit(self.unit)
            images = NDData(data, unit=unit, mask=~np.isfinite(data),
                            meta={"bands": self._bands, "index": int(index)})
            obs = ObservingMeta(pixel_scale=SDSS_PIXEL_SCALE, psf_fwhm=self.psf_fwhm,
                                bands=self._bands, instrument="SDSS imaging")
            return GalaxyRecord(id=gid, survey=self.name, images=images, properties=row,
                                observing=obs, meta={"file": str(self.path)})
        path = self._root / str(row["file"])
        with _fits.reading(path, "SDSS cutout"):
            return self._read_cutout(gid, path, row)

    def _read_cutout(self, gid, path, row):
        images, header = self._read_fits(path)
        scale = _fits.pixel_scale(images.wcs)
        if scale is None:
            warnings.warn(f"{path}: no celestial WCS; assuming the SDSS pixel scale "
                          f"{SDSS_PIXEL_SCALE}", AstroCLWarning, stacklevel=3)
            scale = SDSS_PIXEL_SCALE
        psf = header.get("PSF_FWHM")
        z = header.get("Z")
        if z is None:
            z = _fits.row_redshift(row, self._catalogue_source)
        obs = ObservingMeta(pixel_scale=scale, bands=self._bands, instrument="SDSS imaging",
                            psf_fwhm=self.psf_fwhm if psf is None else float(psf) * u.arcsec,
                            redshift=None if z is None else float(z))
        maps, maps_path = _fits.maps_beside(path, gid)
        return _fits.build_record([path, maps_path], id=gid, survey=self.name, images=images,
                                  maps=maps, properties=row, observing=obs,
                                  meta={"file": str(path)})

    def _read_fits(self, path):
        bands = self._bands
        with _fits.open_fits(path) as hdul:
            try:
                names = [h.name.strip() for h in hdul]
            except _fits.READ_ERRORS as exc:
                msg = f"{path}: cannot list extensions ({type(exc).__name__}: {exc})"
                raise SurveyError(msg) from exc
            upper = [n.upper() for n in names]
            if any(b.upper() in upper for b in bands):
                missing = [b for b in bands if b.upper() not in upper]
                if missing:
                    msg = f"{path}: missing band extension(s) {missing} (has {names})"
                    raise SurveyError(msg)
                hdus = [_fits.get_hdu(hdul, b.upper(), path) for b in bands]
                planes = [_fits.hdu_data(h, path, ndim=2, dtype=np.float32) for h in hdus]
                if len({p.shape for p in planes}) > 1:
                    msg = f"{path}: bands differ in shape {[p.shape for p in planes]}"
                    raise SurveyError(msg)
                data = np.stack(planes)
                header = hdus[0].header
                units = {str(h.header.get("BUNIT", "")).strip() for h in hdus}
                if len(units) > 1:
                    msg = (f"{path}: the band extensions {list(bands)} differ in BUNIT "
                           f"{sorted(units)}, expected one unit")
                    raise SurveyError(msg)
                ivars = [_fits.get_hdu(hdul, f"{b.upper()}_IVAR", path, required=False)
                         for b in bands]
                ivar = None
                if any(h is not None for h in ivars) and not all(h is not None for h in ivars):
                    missing = [f"{b.upper()}_IVAR" for b, h in zip(bands, ivars, strict=True)
                               if h is None]
                    msg = (f"{path}: inverse-variance extensions for some bands only "
                           f"(missing {missing}); expected all or none")
                    raise SurveyError(msg)
                if all(h is not None for h in ivars):
                    ivar = np.stack([_fits.hdu_data(h, path, ndim=2, dtype=np.float32)
                                     for h in ivars])
                    if ivar.shape != data.shape:
                        msg = (f"{path}: IVAR shape {ivar.shape} differs from the images "
                               f"{data.shape}")
                        raise SurveyError(msg)
            else:
                hdu = next((h for h in hdul if h.header.get("NAXIS", 0) == 3), None)
                if hdu is None:
                    msg = (f"{path}: neither band extensions {list(bands)} nor a 3-D HDU with a "
                           f"BANDS card (has {names})")
                    raise SurveyError(msg)
                header = hdu.header
                data = _fits.hdu_data(hdu, path, ndim=3, dtype=np.float32)
                file_bands = tuple(b.strip() for b in str(header.get("BANDS", "")).split(",")
                                   if b.strip())
                if not file_bands:
                    msg = f"{path}: 3-D HDU {hdu.name!r} has no BANDS card naming its planes"
                    raise SurveyError(msg)
                if file_bands != bands:
                    try:
                        order = [file_bands.index(b) for b in bands]
                    except ValueError:
                        msg = f"{path}: BANDS = {file_bands} lacks some of {bands}"
                        raise SurveyError(msg) from None
                    data = data[order]
                ivar = None
            primary = hdul[0].header
        merged = primary.copy()
        merged.update(header)
        unit = _fits.parse_unit(header.get("BUNIT"), path=path, default=_NANOMAGGY,
                                convention="SDSS nanomaggy")
        if not np.isfinite(data).any():
            msg = f"{path}: the images are all NaN/inf"
            raise SurveyError(msg)
        wcs = _fits.header_wcs(header, path, naxis=[1, 2]) if "CTYPE1" in header else None
        unc = None
        if ivar is not None:
            with np.errstate(divide="ignore"):
                unc = StdDevUncertainty(np.where(ivar > 0, 1 / np.sqrt(np.abs(ivar)), np.inf))
        mask = ~np.isfinite(data) | (ivar <= 0 if ivar is not None else False)
        images = NDData(data, unit=unit, mask=mask, uncertainty=unc, wcs=wcs,
                        meta={"bands": bands})
        return images, merged

