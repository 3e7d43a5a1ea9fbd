"""Private FITS helpers shared by the survey readers.

* `open_fits`: open a file, turning every way a FITS file can be broken
  (not FITS, truncated header or data, bad gzip stream) into a
  `~astro_cl.exceptions.SurveyError` that names the file;
* `hdu_data`: read one extension's data with a dimensionality check;
* `parse_unit`: parse the unit strings real pipelines write (CALIFA's
  ``10**(-16)erg s-1 cm-2 A-1``, MaNGA's ``1E-17 erg/s/cm^2/spaxel`` and
  ``(km/s)^{-2}``), with a warned fallback where the survey's convention is known;
* `header_wcs`, `pixel_scale`: WCS extraction without FITSFixedWarning noise.
"""

import contextlib
import gzip
import io
import re
import warnings
import zlib
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError

__all__ = []

#: The 0.5"/1" IFU spatial element, as written in MaNGA and CALIFA unit strings.
SPAXEL = u.def_unit("spaxel", u.pix, doc="IFU spatial pixel")

#: Exceptions that a corrupt or unexpected file can raise inside astropy/numpy.
READ_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError,
               zlib.error, gzip.BadGzipFile, u.UnitsError, AttributeError,
               AstropyUserWarning, MemoryError, OverflowError, fits.VerifyError)

_ANGSTROM = re.compile(r"(?<![A-Za-z])(A|AA|Ang|ang|ANG|Angstroms|angstrom|ANGSTROM)(?![A-Za-z])")
_WORD_ALIASES = {"degrees": "deg", "degree": "deg", "arcsecs": "arcsec", "pixels": "pix",
                 "nanomaggies": "nmgy", "nanomaggy": "nmgy"}
_WORD = re.compile(r"[A-Za-z]+")
_BRACE_POWER = re.compile(r"\^\{?\s*([+-]?\d+)\s*\}?")
_TEN_POWER = re.compile(r"10\*\*\(?\s*([+-]?\d+)\s*\)?")


@contextlib.contextmanager
def open_fits(path, *, memmap=True):
    """Open a FITS file, raising `SurveyError` naming the file if it is unreadable.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    memmap : bool, optional
        Memory-map the data of uncompressed files.

    Yields
    ------
    hdul : `~astropy.io.fits.HDUList`
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise SurveyError(msg)
    if path.stat().st_size == 0:
        msg = f"{path}: empty file (expected FITS)"
        raise SurveyError(msg)
    # We own the file handle: astropy leaks it when fits.open fails half-way.
    fh = open(path, "rb")  # closed below on every path
    if path.name.endswith(".gz"):
        # Decompress once into memory: astropy's lazy HDU access seeks backwards in the
        # gzip stream, and every backward seek restarts decompression from the start.
        try:
            raw = gzip.decompress(fh.read())
        except READ_ERRORS as exc:
            msg = f"{path}: not a readable gzip-compressed FITS file ({type(exc).__name__}: {exc})"
            raise SurveyError(msg) from exc
        finally:
            fh.close()
        fh = io.BytesIO(raw)
        del raw
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated.*", category=AstropyUserWarning)
            hdul = fits.open(fh, memmap=memmap and not path.name.endswith((".gz", ".fz")),
                             lazy_load_hdus=True)
    except READ_ERRORS as exc:
        fh.close()
        msg = f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc
    try:
        yield hdul
    finally:
        try:
            hdul.close()
        finally:
            fh.close()


@contextlib.contextmanager
def reading(path, what="file"):
    """Turn any low-level failure while reading ``path`` into a `SurveyError` naming it.

    `SurveyError` (and subclasses) and astro_cl's own warnings pass through.
    """
    try:
        yield
    except (SurveyError, AstroCLWarning):
        raise
    except READ_ERRORS as exc:
        msg = f"{path}: cannot read the {what} ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc


def get_hdu(hdul, key, path, *, required=True):
    """Return an extension by name or index, or raise `SurveyError` naming it.

    Parameters
    ----------
    hdul : `~astropy.io.fits.HDUList`
    key : str or int
    path : path-like
        The file, for messages.
    required : bool, optional
        If False, return None when the extension is missing.

    Returns
    -------
    hdu : `~astropy.io.fits.hdu.base.ExtensionHDU` or None
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated.*", category=AstropyUserWarning)
            return hdul[key]
    except KeyError:
        if not required:
            return None
        names = []
        with contextlib.suppress(*READ_ERRORS):
            names = [h.name for h in hdul]
        msg = f"{path}: missing extension {key!r} (has {names})"
        raise SurveyError(msg) from None
    except IndexError:
        if not required:
            return None
        msg = f"{path}: missing extension {key!r}"
        raise SurveyError(msg) from None
    except READ_ERRORS as exc:
        msg = f"{path}: cannot read extension {key!r} ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc


def hdu_data(hdu, path, *, ndim=None, dtype=None):
    """Return an extension's data, checking that it exists and its dimensionality.

    Parameters
    ----------
    hdu : `~astropy.io.fits.ImageHDU` or `~astropy.io.fits.PrimaryHDU`
    path : path-like
        The file, for messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype : dtype, optional
        Convert to this type (no copy when it already is).

    Returns
    -------
    data : `numpy.ndarray`
        Memory-mapped when the file is uncompressed and unscaled.
    """
    name = hdu.name or "PRIMARY"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated.*", category=AstropyUserWarning)
            data = hdu.data
    except READ_ERRORS as exc:
        msg = f"{path}: cannot read the data of extension {name!r} ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc
    if data is None:
        msg = f"{path}: extension {name!r} has no data"
        raise SurveyError(msg)
    if not isinstance(data, np.ndarray) or data.dtype.fields is not None:
        msg = f"{path}: extension {name!r} holds a table, expected an image array"
        raise SurveyError(msg)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and data.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        msg = f"{path}: extension {name!r} has shape {data.shape}, expected {want} data"
        raise SurveyError(msg)
    if dtype is not None:
        data = np.asarray(data, dtype=dtype)
    return data


def _normalise_unit_string(text):
    s = text.strip()
    s = _TEN_POWER.sub(lambda m: f"1e{m.group(1)} ", s)
    s = _BRACE_POWER.sub(lambda m: f"**({m.group(1)})", s)
    s = _ANGSTROM.sub("Angstrom", s)
    s = _WORD.sub(lambda m: _WORD_ALIASES.get(m.group(0), m.group(0)), s)
    return s


def parse_unit(text, *, path, keyword="BUNIT", default=None, convention=None):
    """Parse a unit string as written by survey pipelines.

    Understands FITS and generic astropy syntax, ``10**(-16)`` and ``1E-17``
    scale factors, ``^{-2}`` powers, ``A``/``ang`` for Angstrom (no survey
    writes ampere) and ``spaxel``.

    Parameters
    ----------
    text : str or None
        The header value (None or blank when the keyword is missing).
    path : path-like
        The file, for messages.
    keyword : str, optional
        The header keyword (for messages).
    default : `~astropy.units.Unit`, optional
        Unit the survey's convention implies; used (with an `AstroCLWarning`)
        when the keyword is missing or unparseable. Without it, those cases
        raise `SurveyError`.
    convention : str, optional
        Name of the convention, for the warning.

    Returns
    -------
    unit : `~astropy.units.UnitBase`
    """
    if text is None or not str(text).strip():
        if default is None:
            msg = f"{path}: missing unit keyword {keyword}"
            raise SurveyError(msg)
        warnings.warn(f"{path}: no {keyword} keyword; assuming {default} "
                      f"({convention or 'survey'} convention)", AstroCLWarning, stacklevel=3)
        return u.Unit(default)
    raw = str(text)
    s = _normalise_unit_string(raw)
    with u.add_enabled_units([SPAXEL]), warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        for fmt in ("fits", "generic"):
            try:
                unit = u.Unit(s, format=fmt, parse_strict="raise")
            except (ValueError, TypeError):
                continue
            if isinstance(unit, u.UnitBase):
                return unit
    if default is None:
        msg = f"{path}: cannot parse {keyword} = {raw!r} as a unit"
        raise SurveyError(msg)
    warnings.warn(f"{path}: cannot parse {keyword} = {raw!r} as a unit; assuming {default} "
                  f"({convention or 'survey'} convention)", AstroCLWarning, stacklevel=3)
    return u.Unit(default)


def header_wcs(header, path, *, naxis=None):
    """Return the WCS of a header, or None if it has no usable one.

    Parameters
    ----------
    header : `~astropy.io.fits.Header`
    path : path-like
        The file, for messages.
    naxis : list of int, optional
        Keep only these (1-based FITS) axes, e.g. ``[1, 2]`` for the celestial part.

    Returns
    -------
    wcs : `~astropy.wcs.WCS` or None
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=naxis, fix=True)
    except (ValueError, KeyError, TypeError, MemoryError) as exc:
        msg = f"{path}: invalid WCS keywords ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc
    if not any(str(c).strip() for c in wcs.wcs.ctype):
        return None
    return wcs


def pixel_scale(wcs):
    """Return the mean celestial pixel scale of a WCS in arcsec/pixel, or None."""
    if wcs is None or not wcs.has_celestial:
        return None
    scales = proj_plane_pixel_scales(wcs.celestial)
    value = float(np.mean(scales)) * u.Unit(wcs.celestial.wcs.cunit[0] or "deg")
    if not np.isfinite(value.value) or value.value <= 0:
        return None
    return value.to(u.arcsec) / u.pix


# -- catalogue and directory helpers -------------------------------------------
def read_table(path):
    """Read an ECSV/CSV/FITS/VOTable catalogue into a QTable, or raise `CatalogueError`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    table : `~astropy.table.QTable`
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: catalogue file not found"
        raise CatalogueError(msg)
    name = path.name.lower()
    formats = [None]
    if name.endswith((".ecsv", ".csv", ".csv.gz", ".ecsv.gz")):
        formats = ["ascii.ecsv", "ascii.csv"]
    errors = []
    for fmt in formats:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown units etc. are kept as strings
                return QTable(Table.read(path, format=fmt) if fmt else Table.read(path))
        except Exception as exc:  # astropy raises many types for bad tables
            errors.append(f"{fmt or 'auto'}: {type(exc).__name__}: {exc}")
    msg = f"{path}: cannot read as a catalogue ({'; '.join(errors)})"
    raise CatalogueError(msg)


def require_column(table, column, path):
    """Raise `CatalogueError` if ``column`` is not in ``table``."""
    if column not in table.colnames:
        msg = (f"{path}: catalogue has no join column {column!r}; columns are "
               f"{table.colnames[:20]}{' ...' if len(table.colnames) > 20 else ''}")
        raise CatalogueError(msg)


def join_catalogue(ids, extra, table, key, *, source, survey_name):
    """Left-join a catalogue onto the galaxies found on disk, reporting mismatches.

    Parameters
    ----------
    ids : sequence of str
        Galaxies with data files (the survey's rows, in order).
    extra : dict of str to sequence
        Columns to put after ``id`` (e.g. file names), aligned with ``ids``.
    table : `~astropy.table.QTable` or None
        Catalogue; its rows are matched on ``str(table[key])``.
    key : str
        Join column of ``table``.
    source : path-like
        Catalogue file, for messages.
    survey_name : str
        For messages.

    Returns
    -------
    catalogue : `~astropy.table.QTable`
        ``id``, the ``extra`` columns, then the catalogue's columns (masked
        where a galaxy has no row), in the order of ``ids``.
    without_row : list of str
        Galaxies with data but no catalogue row.
    without_data : list of str
        Catalogue rows without data files.
    """
    from astropy.table import join

    ids = [str(i) for i in ids]
    out = QTable({"id": np.asarray(ids, dtype=str), **dict(extra)})
    if table is None:
        return out, [], []
    require_column(table, key, source)
    right = QTable(table, copy=False)
    keys = np.char.strip(np.asarray(right[key]).astype(str))
    uniq, counts = np.unique(keys, return_counts=True)
    if np.any(counts > 1):
        msg = (f"{source}: join column {key!r} has duplicate values, e.g. "
               f"{uniq[counts > 1][:5].tolist()}")
        raise CatalogueError(msg)
    clash = [c for c in right.colnames if c in out.colnames or c == "_order"]
    if clash:
        right.rename_columns(clash, [f"{c}_catalogue" for c in clash])
    key = f"{key}_catalogue" if key in clash else key
    right[key] = keys
    left = out.copy()
    left["_order"] = np.arange(len(left))
    joined = join(left, right, keys_left="id", keys_right=key, join_type="left")
    joined.sort("_order")
    joined.remove_column("_order")
    idset = set(ids)
    present = set(keys.tolist())
    without_row = [i for i in ids if i not in present]
    without_data = [k for k in keys.tolist() if k not in idset]
    if without_row:
        warnings.warn(
            f"survey {survey_name!r}: {len(without_row)} galaxies with data have no row in "
            f"{source} (kept, with masked catalogue values): {without_row[:20]}",
            AstroCLWarning, stacklevel=3)
    if without_data:
        warnings.warn(
            f"survey {survey_name!r}: {len(without_data)} rows of {source} have no data file "
            f"(left out): {without_data[:20]}", AstroCLWarning, stacklevel=3)
    return QTable(joined), without_row, without_data


def row_value(row, name):
    """Return a finite float from a catalogue row, or None if absent/masked/non-finite."""
    if name not in row.colnames:
        return None
    value = row[name]
    if np.ma.is_masked(value) or getattr(value, "mask", False) is True:
        return None
    value = getattr(value, "unmasked", value)
    try:
        value = float(getattr(value, "value", value))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def maps_beside(data_path, stem):
    """Read ``<stem>.maps.fits[.gz]`` next to a data file, or return {}."""
    from astro_cl.data.fits_maps import read_maps

    folder = Path(data_path).parent
    for suffix in (".maps.fits", ".maps.fits.gz"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return read_maps(candidate)
    return {}


def check_directory(path, survey_name):
    """Return ``path`` as a Path, raising `SurveyError` if it does not exist."""
    if path is None:
        msg = f"survey {survey_name!r}: give path= (a directory or file of the survey's data)"
        raise SurveyError(msg)
    path = Path(path).expanduser()
    if not path.exists():
        msg = f"survey {survey_name!r}: {path}: no such file or directory"
        raise SurveyError(msg)
    return path


def params_with_catalogue(survey):
    """``get_params`` of a survey whose ``catalogue=`` argument is stored as ``catalogue_path``.

    (`Survey.catalogue` is the opened table, so the argument cannot live under that name.)
    """
    params = {k: getattr(survey, k) for k in survey._param_names() if k != "catalogue"}
    params["catalogue"] = survey.catalogue_path
    return dict(sorted(params.items()))


def set_params_with_catalogue(survey, params):
    """``set_params`` counterpart of `params_with_catalogue`; forgets the opened catalogue."""
    params = dict(params)
    if "catalogue" in params:
        survey.catalogue_path = params.pop("catalogue")
    from astro_cl.base import Component

    Component.set_params(survey, **params)
    survey.__dict__.pop("_catalogue_cache", None)
    return survey
