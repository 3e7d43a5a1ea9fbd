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
        Resample every image to this ``(ny, nx)`` (after ``crop``); default:
        native size.
    crop : int or (int, int), optional
        Centre crop, in native pixels, applied before resampling (e.g. the
        central 96 px of 423 px Galaxy Zoo cutouts).
    resample : {"bilinear", "block"}, optional
        How images are brought to ``size``: bilinear interpolation, or block
        averaging (the mean of each ``f x f`` block, which conserves the mean
        surface brightness; needs the cropped shape to be ``f`` times
        ``size``).
    bands : sequence of str, optional
        Names of the colour channels of raster images, in R, G, B order
        (default ``("i", "r", "g")``: SDSS gri composites put i in red, r in
        green and g in blue).
    pixel_scale : `~astropy.units.Quantity`, optional
        Angular pixel size of raster images (they carry no WCS).
    aperture : float, optional
        Mask (flag as bad) the pixels outside a centred circle of this radius,
        as a fraction of half the smaller side of the (cropped, resampled)
        image; e.g. 0.7 keeps the galaxy of a centred cutout and drops the
        neighbours in the corners. Networks zero masked pixels and pool over
        the rest. Default: no mask.
    require_labels : bool, optional
        Leave out images without a label row (reported either way).

    Attributes
    ----------
    images_without_label_, labels_without_image_ : list of str
    """

    name = "image-folder"
    description = "A folder of JPEG/PNG/FITS cutouts with a CSV of labels."
    default_kind = "images"

    def __init__(self, *, path=None, labels=None, id_column=None, size=None, crop=None,
                 resample="bilinear", bands=("i", "r", "g"), pixel_scale=None, aperture=None,
                 require_labels=False):
        self.path = path
        self.labels = labels
        self.id_column = id_column
        self.size = size
        self.crop = crop
        self.resample = resample
        self.bands = bands
        self.pixel_scale = pixel_scale
        self.aperture = aperture
        self.require_labels = require_labels

    @staticmethod
    def _pair(value, name):
        if value is None:
            return None
        pair = (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)
        if len(pair) != 2 or min(pair) < 1:
            msg = f"{name}: expected a positive int or (ny, nx), got {value!r}"
            raise ValueError(msg)
        return pair

    @property
    def _size(self):
        return self._pair(self.size, "size")

    def _geometry(self, data, path, wcs, scale):
        """Centre-crop and resample one ``(C, H, W)`` image; return it, its WCS and pixel scale."""
        crop = self._pair(self.crop, "crop")
        if crop is not None:
            _, ny, nx = data.shape
            if crop[0] > ny or crop[1] > nx:
                msg = f"{path}: crop {crop} is larger than the image ({ny}, {nx})"
                raise SurveyError(msg)
            y0, x0 = (ny - crop[0]) // 2, (nx - crop[1]) // 2
            data = data[:, y0:y0 + crop[0], x0:x0 + crop[1]]
            if wcs is not None:
                wcs = wcs.slice((slice(y0, y0 + crop[0]), slice(x0, x0 + crop[1])))
        size = self._size
        if size is None or data.shape[1:] == size:
            return data, wcs, scale
        if self.resample == "block":
            fy, fx = data.shape[1] / size[0], data.shape[2] / size[1]
            if fy != int(fy) or fx != int(fx) or fy != fx:
                msg = (f"{path}: resample='block' needs the (cropped) image {data.shape[1:]} to "
                       f"be a whole multiple of size {size}, the same on both axes")
                raise SurveyError(msg)
            f = int(fy)
            c = data.shape[0]
            data = data.reshape(c, size[0], f, size[1], f).mean(axis=(2, 4))
            scale = None if scale is None else scale * f
            wcs = None if wcs is None else wcs[::f, ::f]
            return data.astype(np.float32), wcs, scale
        if self.resample != "bilinear":
            msg = f"resample: expected 'bilinear' or 'block', got {self.resample!r}"
            raise ValueError(msg)
        if scale is not None:  # pixels grow by the (mean) zoom factor
            scale = scale * 0.5 * (data.shape[1] / size[0] + data.shape[2] / size[1])
        # the resampled grid no longer matches the header WCS
        return _resize(data, size).astype(np.float32), None, scale

    def _outside_aperture(self, shape):
        """Return the ``(H, W)`` mask of the pixels outside the ``aperture`` circle."""
        aperture = self.aperture
        if isinstance(aperture, bool) or not isinstance(aperture, (int, float)) or not (
                0 < aperture <= 1):
            msg = (f"survey {self.name!r}: aperture = {aperture!r}: expected a number in "
                   "(0, 1], the radius as a fraction of half the image's smaller side")
            raise SurveyError(msg)
        ny, nx = shape
        yy, xx = np.ogrid[:ny, :nx]
        radius = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
        return radius > float(aperture) * min(ny, nx) / 2

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
        data, wcs, scale = self._geometry(data, path, wcs,
                                          _fits.pixel_scale(wcs) or self.pixel_scale)
        mask = ~np.isfinite(data)
        if self.aperture is not None:
            mask |= self._outside_aperture(data.shape[1:])
        images = NDData(data, unit=unit, mask=mask, wcs=wcs, meta={"bands": bands})
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
