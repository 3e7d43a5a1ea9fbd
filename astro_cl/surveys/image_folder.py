"""Any folder of JPEG/PNG/FITS cutouts plus an optional CSV of labels.

Opening lists the folder and reads the labels; images are decoded only when a
record is read. Colour images become a float ``(3, H, W)`` band stack scaled to
0-1 (channels named by ``bands``, e.g. SDSS gri composites); greyscale images a
``(1, H, W)`` stack; FITS files their 2-D or 3-D primary (or first image) HDU
with their ``BUNIT``. ``size=`` resamples every image to a common shape
(bilinear interpolation; the WCS of a resampled FITS image is dropped).
"""

import csv
import os
import re
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import NDData

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError
from astro_cl.surveys import _fits
from astro_cl.surveys.base import Survey

__all__ = ["ImageFolderSurvey"]

_RASTER = (".jpg", ".jpeg", ".png")
_FITS = (".fits", ".fits.gz", ".fit", ".fit.gz", ".fts")
_ID_COLUMNS = ("id", "objid", "objID", "filename", "file", "name")


def _stem(name):
    low = name.lower()
    for suffix in sorted(_RASTER + _FITS, key=len, reverse=True):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _resize(data, size):
    """Resize a (C, H, W) float array to (C, *size) with bilinear interpolation."""
    from scipy.ndimage import zoom

    ny, nx = data.shape[1:]
    factors = (1, size[0] / ny, size[1] / nx)
    out = zoom(data, factors, order=1, grid_mode=True, mode="nearest")
    return out[:, : size[0], : size[1]]


class ImageFolderSurvey(Survey):
    """A folder of image cutouts (JPEG, PNG or FITS) with labels from a CSV.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Folder of images (searched non-recursively), or a folder with an
        ``images/`` sub-folder.
    labels : str or `~pathlib.Path`, optional
        CSV/ECSV of labels (default: ``labels.csv`` in ``path`` if present).
    id_column : str, optional
        Labels column holding the image stem (default: the first of ``id``,
        ``objid``, ``filename``, ``name`` present).
    size : int or (int, int), optional
        Resample every image to this ``(ny, nx)``; default: native size.
    bands : sequence of str, optional
        Names of the colour channels of raster images, in R, G, B order
        (default ``("i", "r", "g")``: SDSS gri composites put i in red, r in
        green and g in blue).
    pixel_scale : `~astropy.units.Quantity`, optional
        Angular pixel size of raster images (they carry no WCS).
    require_labels : bool, optional
        Leave out images without a label row (reported either way).

    Attributes
    ----------
    images_without_label_, labels_without_image_ : list of str
    """

    name = "image-folder"
    description = "A folder of JPEG/PNG/FITS cutouts with a CSV of labels."
    default_kind = "images"

    def __init__(self, *, path=None, labels=None, id_column=None, size=None,
                 bands=("i", "r", "g"), pixel_scale=None, require_labels=False):
        self.path = path
        self.labels = labels
        self.id_column = id_column
        self.size = size
        self.bands = bands
        self.pixel_scale = pixel_scale
        self.require_labels = require_labels

    @property
    def _size(self):
        if self.size is None:
            return None
        size = (int(self.size), int(self.size)) if np.isscalar(self.size) else tuple(
            int(s) for s in self.size)
        if len(size) != 2 or min(size) < 1:
            msg = f"size: expected a positive int or (ny, nx), got {self.size!r}"
            raise ValueError(msg)
        return size

    def _open(self):
        root = _fits.check_directory(self.path, self.name)
        folder = root / "images" if (root / "images").is_dir() else root
        files = {}
        with os.scandir(folder) as it:
            for entry in it:
                stem = _stem(entry.name)
                if stem is None or stem.endswith(".maps") or not entry.is_file():
                    continue
                if stem in files:
                    msg = f"{folder}: two images for id {stem!r}: {files[stem]}, {entry.name}"
                    raise SurveyError(msg)
                files[stem] = entry.name
        if not files:
            msg = f"{folder}: no JPEG/PNG/FITS images"
            raise SurveyError(msg)
        ids = sorted(files)
        labels = self.labels
        if labels is None and (root / "labels.csv").is_file():
            labels = root / "labels.csv"
        table, key = None, None
        if labels is not None:
            table = self._read_labels(labels)
            key = self.id_column or next((c for c in _ID_COLUMNS if c in table.colnames), None)
            if key is None:
                msg = (f"{labels}: no id column (looked for {list(_ID_COLUMNS)}; pass "
                       f"id_column=); columns are {table.colnames}")
                raise CatalogueError(msg)
            _fits.require_column(table, key, labels)
            table[key] = np.array([_stem(v) or v for v in np.asarray(table[key]).astype(str)])
            if self.require_labels:
                have = set(table[key].tolist())
                ids = [i for i in ids if i in have]
        cat, self.images_without_label_, self.labels_without_image_ = _fits.join_catalogue(
            ids, {"file": np.array([files[i] for i in ids])}, table, key,
            source=labels, survey_name=self.name)
        if self.require_labels:
            self.images_without_label_ = sorted(set(files) - set(ids))
        cat.meta.update({"survey": self.name, "path": str(folder)})
        self._folder = folder
        self._labels_source = labels
        return cat

    @staticmethod
    def _read_labels(path):
        path = Path(path)
        if path.suffix.lower() == ".csv":
            from astropy.io import ascii

            try:
                # ids such as SDSS objids overflow float; read every column as text first
                raw = ascii.read(path, format="csv", converters={"*": [ascii.convert_numpy(str)]})
            except (*_fits.READ_ERRORS, csv.Error) as exc:
                msg = f"{path}: cannot read the labels CSV ({type(exc).__name__}: {exc})"
                raise CatalogueError(msg) from exc
            from astropy.table import QTable

            out = QTable()
            for name in raw.colnames:
                col = np.asarray(raw[name]).astype(str)
                for kind in (np.int64, np.float64):
                    try:
                        conv = col.astype(kind)
                    except (ValueError, OverflowError):
                        continue
                    if re.search(r"id$", name, re.I) and kind is not np.int64:
                        conv = col  # never turn ids into floats
                    break
                else:
                    conv = col
                out[name] = conv
            return out
        return _fits.read_table(path)

    def _read_record(self, index):
        row = self.catalogue[index]
        gid = str(row["id"])
        path = self._folder / str(row["file"])
        with _fits.reading(path, "image"):
            return self._read_image(gid, path, row)

    def _read_image(self, gid, path, row):
        if path.name.lower().endswith(_FITS):
            data, unit, wcs, bands = self._read_fits(path)
        else:
            data, unit, wcs, bands = self._read_raster(path)
        size = self._size
        if size is not None and data.shape[1:] != size:
            data = _resize(data, size).astype(np.float32)
            wcs = None  # the resampled grid no longer matches the header WCS
        scale = _fits.pixel_scale(wcs) or self.pixel_scale
        images = NDData(data, unit=unit, mask=~np.isfinite(data), wcs=wcs,
                        meta={"bands": bands})
        obs = ObservingMeta(pixel_scale=scale, bands=bands,
                            redshift=_fits.row_redshift(row, self._labels_source))
        return GalaxyRecord(id=gid, survey=self.name, images=images, properties=row,
                            observing=obs, meta={"file": str(path)})

    def _read_raster(self, path):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode not in ("L", "RGB"):
                    img = img.convert("RGB" if mode in ("RGBA", "P", "CMYK", "YCbCr") else "L")
                arr = np.asarray(img)
        except (UnidentifiedImageError, Image.DecompressionBombError, *_fits.READ_ERRORS) as exc:
            msg = f"{path}: not a readable JPEG/PNG image ({type(exc).__name__}: {exc})"
            raise SurveyError(msg) from exc
        scale = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
        data = np.asarray(arr, dtype=np.float32) / scale
        if data.ndim == 2:
            return data[None], u.dimensionless_unscaled, None, ("grey",)
        data = np.moveaxis(data, -1, 0)
        bands = tuple(self.bands)
        if len(bands) != data.shape[0]:
            msg = f"bands: {bands!r} names {len(bands)} channels, {path} has {data.shape[0]}"
            raise SurveyError(msg)
        return data, u.dimensionless_unscaled, None, bands

    def _read_fits(self, path):
        with _fits.open_fits(path) as hdul:
            hdu = next((h for h in hdul if h.header.get("NAXIS", 0) in (2, 3)), None)
            if hdu is None:
                msg = f"{path}: no 2-D or 3-D image HDU"
                raise SurveyError(msg)
            data = _fits.hdu_data(hdu, path, ndim=(2, 3), dtype=np.float32)
            header = hdu.header.copy()
        data = data[None] if data.ndim == 2 else data
        if not np.isfinite(data).any():
            msg = f"{path}: the image is all NaN/inf"
            raise SurveyError(msg)
        if "BUNIT" in header:
            unit = _fits.parse_unit(header["BUNIT"], path=path)
        else:
            warnings.warn(f"{path}: no BUNIT; the image is treated as dimensionless",
                          AstroCLWarning, stacklevel=4)
            unit = u.dimensionless_unscaled
        names = [b.strip() for b in str(header.get("BANDS", "")).split(",") if b.strip()]
        if len(names) != data.shape[0]:
            names = [str(header.get("FILTER", "band")).strip()] if data.shape[0] == 1 else [
                f"band{i}" for i in range(data.shape[0])]
        wcs = _fits.header_wcs(header, path, naxis=[1, 2]) if "CTYPE1" in header else None
        return data, unit, wcs, tuple(names)
