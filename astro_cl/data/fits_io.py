"""Guarded reading of FITS and ``.npy`` files: validate before astropy or numpy build anything.

Used by every survey reader and by `astro_cl.data.fits_maps`:

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
from astropy.table.meta import YamlParseError
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from astro_cl.exceptions import AstroCLWarning, SurveyError

__all__ = ["MAX_NAXIS", "READ_ERRORS", "SPAXEL", "get_hdu", "hdu_data", "header_wcs",
           "load_npy", "open_fits", "parse_unit", "pixel_scale", "reading", "scan_fits"]

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
