"""Private FITS helpers shared by the survey readers.

* `open_fits`: open a file, turning every way a FITS file can be broken
  (not FITS, truncated header or data, bad gzip stream, impossible NAXIS/BITPIX
  cards) into a `~astro_cl.exceptions.SurveyError` that names the file;
  `scan_fits` checks the raw header cards before astropy builds anything;
* `load_npy`: load a ``.npy`` array after checking its header against the file size;
* `hdu_data`: read one extension's data with a dimensionality check;
* `parse_unit`: parse the unit strings real pipelines write (CALIFA's
  ``10**(-16)erg s-1 cm-2 A-1``, MaNGA's ``1E-17 erg/s/cm^2/spaxel`` and
  ``(km/s)^{-2}``), with a warned fallback where the survey's convention is known;
* `header_wcs`, `pixel_scale`: WCS extraction without FITSFixedWarning noise.
"""

import contextlib
import gzip
import io
import math
import re
import struct
import tokenize
import warnings
import zlib
from pathlib import Path

import astropy.units as u
import numpy as np
import yaml
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.table.meta import YamlParseError
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError

__all__ = []

#: The 0.5"/1" IFU spatial element, as written in MaNGA and CALIFA unit strings.
SPAXEL = u.def_unit("spaxel", u.pix, doc="IFU spatial pixel")

#: Exceptions that a corrupt or unexpected file can raise inside astropy, numpy, h5py
#: and PyYAML: h5py raises RuntimeError for damaged B-trees, numpy's .npy header
#: parser tokenize.TokenError and SyntaxError, the HDF5 table metadata yaml.YAMLError
#: and astropy's YamlParseError.
READ_ERRORS = (OSError, EOFError, ValueError, TypeError, LookupError, zlib.error,
               gzip.BadGzipFile, u.UnitsError, AttributeError, AstropyUserWarning,
               MemoryError, ArithmeticError, fits.VerifyError, RuntimeError, SyntaxError,
               tokenize.TokenError, struct.error, yaml.YAMLError, YamlParseError)

#: FITS block and card sizes, the FITS standard's limit on NAXIS, and legal BITPIX.
_BLOCK = 2880
_CARD = 80
MAX_NAXIS = 999
_BITPIX = (8, 16, 32, 64, -32, -64)
_INT = re.compile(rb"\s*([+-]?\d+)\s*(?:/.*)?$", re.S)

_ANGSTROM = re.compile(r"(?<![A-Za-z])(A|AA|Ang|ang|ANG|Angstroms|angstrom|ANGSTROM)(?![A-Za-z])")
_WORD_ALIASES = {"degrees": "deg", "degree": "deg", "arcsecs": "arcsec", "pixels": "pix",
                 "nanomaggies": "nmgy", "nanomaggy": "nmgy"}
_WORD = re.compile(r"[A-Za-z]+")
_BRACE_POWER = re.compile(r"\^\{?\s*([+-]?\d+)\s*\}?")
_TEN_POWER = re.compile(r"10\*\*\(?\s*([+-]?\d+)\s*\)?")


def _card_text(card):
    """Return the value of a raw header card as text (quotes stripped), or None."""
    if card is None or card[8:10] != b"= ":
        return None
    value = card[10:].decode("ascii", "replace").strip()
    if value.startswith("'"):
        end = value.find("'", 1)
        return value[1:end if end > 0 else None].strip()
    return value.split("/", 1)[0].strip()


def _read_raw_header(fh, offset, size, index, path):
    """Read the cards of one header from ``offset``: (first keyword, cards, data offset).

    ``cards`` maps each keyword to its first card, as astropy's lookups do.
    """
    cards, first = {}, None
    pos = offset
    fh.seek(offset)
    while True:
        block = fh.read(_BLOCK)
        for start in range(0, len(block) - _CARD + 1, _CARD):
            card = block[start:start + _CARD]
            key = card[:8].rstrip(b" ").upper()
            if first is None:
                first = key
            if key == b"END":
                return first, cards, pos + _BLOCK
            cards.setdefault(key, card)
        if len(block) < _BLOCK:
            missing = _BLOCK - len(block)
            msg = (f"{path}: not a readable FITS file (truncated or corrupt: the file ends after "
                   f"{size} bytes, inside the header of HDU {index} that starts at byte "
                   f"{offset}, before its END card; at least {missing} bytes missing)")
            raise SurveyError(msg)
        pos += _BLOCK


def _structural_int(cards, key, label, path, *, default=None, low=None, high=None):
    """Return an integer structural keyword, checked against [low, high]."""
    card = cards.get(key.encode())
    if card is None:
        if default is None:
            msg = f"{path}: not a readable FITS file ({label}: no {key} card)"
            raise SurveyError(msg)
        return default
    match = _INT.fullmatch(card[10:]) if card[8:10] == b"= " else None
    value = int(match.group(1)) if match else None
    if value is None or (low is not None and value < low) or (high is not None and value > high):
        shown = card[8:].split(b"/", 1)[0].decode("ascii", "replace").strip(" =")
        if low is not None and high is not None:
            want = f"an integer from {low} to {high}"
        elif low is not None:
            want = f"an integer >= {low}"
        else:
            want = "an integer"
        msg = f"{path}: not a readable FITS file ({label}: {key} = {shown!r}, expected {want})"
        raise SurveyError(msg)
    return value


def scan_fits(fh, size, path):
    """Check a FITS stream's structure from its raw header cards, before astropy parses it.

    astropy trusts the structural keywords: it loops ``NAXIS`` times building
    the shape (minutes for ``NAXIS = 99999999``), steps backwards through the
    file on a negative ``NAXISn`` (for ever), and stops silently at a damaged
    extension header or reads a truncated file as fewer HDUs. This walks every
    header and checks ``BITPIX``, ``NAXIS`` (0-999), every ``NAXISn`` (>= 0),
    ``PCOUNT``/``GCOUNT``, that each HDU's data (padded to 2880 bytes) fits in
    the file, that whatever follows an HDU is another extension or padding, and
    that the file holds at least the ``NEXTEND`` extensions its primary header
    announces.

    Parameters
    ----------
    fh : file-like
        Binary, seekable; left at an arbitrary position.
    size : int
        Length of the stream in bytes.
    path : path-like
        The file, for messages.

    Returns
    -------
    hdus : list of tuple
        ``(header_offset, data_offset, data_bytes)`` per HDU.

    Raises
    ------
    astro_cl.exceptions.SurveyError
        Naming the file, the HDU, the keyword and its value, or how many bytes
        are missing.
    """
    hdus, offset, nextend = [], 0, None
    while True:
        index = len(hdus)
        first, cards, data_offset = _read_raw_header(fh, offset, size, index, path)
        if index == 0 and first != b"SIMPLE":
            shown = (first or b"").decode("ascii", "replace")
            msg = (f"{path}: not a readable FITS file (its first card is {shown!r}, "
                   "expected SIMPLE)")
            raise SurveyError(msg)
        name = _card_text(cards.get(b"EXTNAME"))
        label = f"HDU {index}" + (f" ({name!r})" if name else "")
        bitpix = _structural_int(cards, "BITPIX", label, path)
        if bitpix not in _BITPIX:
            msg = (f"{path}: not a readable FITS file ({label}: BITPIX = {bitpix}, expected one "
                   f"of {list(_BITPIX)})")
            raise SurveyError(msg)
        naxis = _structural_int(cards, "NAXIS", label, path, low=0, high=MAX_NAXIS)
        axes = [_structural_int(cards, f"NAXIS{i}", label, path, low=0)
                for i in range(1, naxis + 1)]
        pcount = _structural_int(cards, "PCOUNT", label, path, default=0, low=0)
        gcount = _structural_int(cards, "GCOUNT", label, path, default=1, low=0)
        nbytes = 0
        if naxis:
            groups = (index == 0 and axes[0] == 0
                      and _card_text(cards.get(b"GROUPS")) == "T")
            nbytes = abs(bitpix) // 8 * gcount * (pcount + math.prod(axes[1:] if groups
                                                                    else axes))
        end = data_offset + -(-nbytes // _BLOCK) * _BLOCK
        if end > size:
            shape = " x ".join(str(n) for n in axes)
            msg = (f"{path}: not a readable FITS file (truncated or corrupt: {label} declares "
                   f"{nbytes} data bytes (BITPIX = {bitpix}, shape {shape or '()'}, "
                   f"PCOUNT = {pcount}, GCOUNT = {gcount}) from byte {data_offset}, so the file "
                   f"needs {end} bytes but has {size}: {end - size} bytes missing)")
            raise SurveyError(msg)
        if index == 0 and b"NEXTEND" in cards:
            nextend = _structural_int(cards, "NEXTEND", label, path, low=0)
        hdus.append((offset, data_offset, nbytes))
        offset = end
        if offset >= size:
            break
        fh.seek(offset)
        if fh.read(8) == b"XTENSION":
            continue
        fh.seek(offset)
        while chunk := fh.read(1 << 20):
            if chunk.strip(b"\0 "):
                msg = (f"{path}: not a readable FITS file (corrupt: the {size - offset} bytes "
                       f"after {label}, from byte {offset}, are neither an extension header "
                       "(XTENSION card) nor padding; a damaged header, or wrong "
                       "BITPIX/NAXISn/PCOUNT cards before it)")
                raise SurveyError(msg)
        break
    if nextend is not None and len(hdus) - 1 < nextend:
        msg = (f"{path}: not a readable FITS file (truncated: the primary header says NEXTEND = "
               f"{nextend} extensions, the file has {len(hdus) - 1})")
        raise SurveyError(msg)
    return hdus


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
        # Validate the structural cards before astropy trusts them (see scan_fits).
        scan_fits(fh, fh.seek(0, io.SEEK_END), path)
        fh.seek(0)
    except SurveyError:
        fh.close()
        raise
    except OSError as exc:
        fh.close()
        msg = f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc
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


def load_npy(path, *, mmap=False, error=SurveyError, what=".npy array"):
    """Load a ``.npy`` array, checking its header against the file first.

    numpy's header parser raises tokenize, syntax and overflow errors on a
    damaged header, and a shape edited smaller reads as a valid, shorter
    array. Here the header must parse, the shape must be non-negative, the
    dtype must not hold Python objects, and header plus data must be exactly
    the file's length.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    mmap : bool, optional
        Memory-map the array read-only.
    error : type, optional
        The `SurveyError` subclass to raise (`CatalogueError` for labels).
    what : str, optional
        What the file holds, for messages.

    Returns
    -------
    array : `numpy.ndarray`
    """
    from numpy.lib import format as npy_format

    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such file (expected a {what})"
        raise error(msg)
    size = path.stat().st_size
    headers = {(1, 0): npy_format.read_array_header_1_0,
               (2, 0): npy_format.read_array_header_2_0,
               (3, 0): npy_format.read_array_header_2_0}  # 3.0 differs only in encoding
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            # numpy's fallback parser for Python-2 headers warns; we only need its result
            warnings.filterwarnings("ignore", message=".*additional header parsing",
                                    category=UserWarning)
            version = npy_format.read_magic(fh)
            if version not in headers:
                msg = f"{path}: .npy format version {version}, expected 1.0, 2.0 or 3.0"
                raise error(msg)
            shape, _, dtype = headers[version](fh)
            offset = fh.tell()
    except READ_ERRORS as exc:
        msg = f"{path}: not a readable {what} (bad .npy header; {type(exc).__name__}: {exc})"
        raise error(msg) from exc
    if any(n < 0 for n in shape):
        msg = f"{path}: not a readable {what} (.npy header shape {shape} has a negative size)"
        raise error(msg)
    if dtype.hasobject:
        msg = f"{path}: {what} holds Python objects ({dtype}); expected numbers (not unpickled)"
        raise error(msg)
    need = math.prod(shape) * dtype.itemsize
    have = size - offset
    if have != need:
        problem = (f"truncated, {need - have} bytes missing" if have < need
                   else f"{have - need} bytes more than that: a damaged header?")
        msg = (f"{path}: not a readable {what} (its header declares shape {shape} of {dtype}, "
               f"{need} data bytes after the {offset}-byte header; the file has {have}: "
               f"{problem})")
        raise error(msg)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except READ_ERRORS as exc:
        msg = f"{path}: not a readable {what} ({type(exc).__name__}: {exc})"
        raise error(msg) from exc


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
    if len(table) == 0:
        msg = (f"{source}: catalogue has columns {table.colnames[:20]} but no rows "
               "(expected one row per galaxy)")
        raise CatalogueError(msg)
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
    if not ids:  # no galaxy left (none has a labelled row): astropy's join refuses it
        from astropy.table import hstack

        joined = hstack([out, right[:0]])
    else:
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


def row_redshift(row, source, names=("z",)):
    """Return the first finite redshift among ``names`` in a catalogue row, or None.

    Parameters
    ----------
    row : `~astropy.table.Row`
    source : path-like or None
        The catalogue file, for messages.
    names : sequence of str, optional
        Columns to try, in order.

    Returns
    -------
    z : float or None

    Raises
    ------
    astro_cl.exceptions.CatalogueError
        Naming the catalogue when the value is below -0.01 (the record would
        reject it, and the error would name the data file instead).
    """
    for name in names:
        z = row_value(row, name)
        if z is None:
            continue
        if z < -0.01:
            gid = str(row["id"]) if "id" in row.colnames else "?"
            msg = (f"{source}: column {name!r} = {z!r} for galaxy {gid!r}, expected a redshift "
                   ">= -0.01")
            raise CatalogueError(msg)
        return z
    return None


def build_record(files, **fields):
    """Return ``GalaxyRecord(**fields)``; a validation failure names the files it came from.

    Parameters
    ----------
    files : sequence of path-like or None
        The files the fields were read from (None entries are skipped).
    **fields
        Passed to `~astro_cl.data.GalaxyRecord`.

    Returns
    -------
    record : `~astro_cl.data.GalaxyRecord`
    """
    from astro_cl.data.record import GalaxyRecord
    from astro_cl.exceptions import ValidationError

    try:
        return GalaxyRecord(**fields)
    except ValidationError as exc:
        names = " and ".join(str(f) for f in files if f)
        msg = f"{names}: do not make a valid record: {exc}"
        raise SurveyError(msg) from exc


def maps_beside(data_path, stem):
    """Read ``<stem>.maps.fits[.gz]`` next to a data file.

    Returns
    -------
    maps : dict of str to `~astropy.nddata.NDData`
        Empty when there is no such file.
    path : `~pathlib.Path` or None
        The maps file read.
    """
    from astro_cl.data.fits_maps import read_maps

    folder = Path(data_path).parent
    for suffix in (".maps.fits", ".maps.fits.gz"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return read_maps(candidate), candidate
    return {}, None


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
