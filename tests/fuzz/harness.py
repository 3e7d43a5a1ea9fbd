"""Seeded corruption fuzzing of the survey readers, shared by the tests and the campaign.

A *target* is one reader, a small set of input files it reads (written once
into memory as a template), and the one file of that set that every case
corrupts (the *fault* file). A case picks a corruption with its own
`numpy.random.Generator` (seeded by ``[seed, crc32(target name), case]``),
writes the inputs with the fault file corrupted into a fresh folder, opens the
survey and reads every record under a deadline, and classifies what happened:

``valid``
    every record was read, validated and turned into arrays;
``error``
    an `~astro_cl.exceptions.AstroCLError` whose message names the corrupted file;
``misattributed``
    an `~astro_cl.exceptions.AstroCLError` that does not name it;
``partial``
    records read from a truncated FITS, gzip, ``.npy`` or HDF5 file (silent data loss);
``foreign``
    any other exception;
``hang``
    the deadline passed;
``crash``
    the interpreter died (only seen when cases run in a worker process).

Only ``valid`` and ``error`` are acceptable. Corruptions: byte flips, truncations
(anywhere and at 2880-byte block boundaries), zeroed blocks, random runs,
header-card edits and deletions (``NAXIS``, ``NAXISn``, ``BITPIX``, ``CRVAL3``,
``BUNIT``, ``EXTNAME`` and friends), ``.npy`` header edits, HDF5 structure
edits (through h5py) and CSV/ECSV row and header damage; gzip files get
stream-level damage and re-compressed inner FITS damage.
"""

import contextlib
import gzip
import io
import math
import multiprocessing
import re
import shutil
import signal
import struct
import threading
import time
import warnings
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["OUTCOMES", "Outcome", "Target", "format_table", "run_campaign", "run_case",
           "targets"]

#: Outcome kinds, in table order; the first two are the acceptable ones.
OUTCOMES = ("valid", "error", "misattributed", "partial", "foreign", "hang", "crash")
_BLOCK = 2880
_CARD = 80
#: Formats where any truncation loses data, so a record read from one is "partial".
_STRICT = {"fits", "fits.gz", "npy", "hdf5"}
MANGA_MAPS = "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"
PIPE3D_FILE = "NGC4047_allpix.pipe3d.hdf5"


class CaseTimeout(BaseException):
    """Raised by the deadline; a BaseException so that no reader's handler swallows it."""


@contextlib.contextmanager
def deadline(seconds):
    """Raise `CaseTimeout` in the main thread after ``seconds`` (no-op elsewhere)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum, frame):
        raise CaseTimeout(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- corruptions: each takes (data, rng, info) and returns (data, description, lossy) ----
def _flip(data, rng, info):
    out = bytearray(data)
    n = int(rng.integers(1, 40))
    for i in rng.integers(0, len(out), size=n):
        out[int(i)] ^= int(rng.integers(1, 256))
    return bytes(out), f"flip {n} bytes", False


def _truncate(data, rng, info):
    cut = int(rng.integers(1, len(data)))
    return data[:cut], f"truncate to {cut}/{len(data)} bytes", True


def _truncate_block(data, rng, info):
    blocks = len(data) // _BLOCK
    if blocks < 2:
        return _truncate(data, rng, info)
    cut = _BLOCK * int(rng.integers(1, blocks))
    return data[:cut], f"truncate at block boundary {cut}/{len(data)}", True


def _zero_block(data, rng, info):
    out = bytearray(data)
    size = int(rng.choice([512, _BLOCK, 4096]))
    start = size * int(rng.integers(0, max(1, len(out) // size)))
    out[start:start + size] = bytes(len(out[start:start + size]))
    return bytes(out), f"zero {size} bytes at {start}", False


def _overwrite_run(data, rng, info):
    out = bytearray(data)
    start = int(rng.integers(0, len(out)))
    stop = min(len(out), start + int(rng.integers(1, 3000)))
    out[start:stop] = rng.integers(0, 256, size=stop - start, dtype=np.uint8).tobytes()
    return bytes(out), f"overwrite bytes {start}-{stop}", False


def fits_cards(data):
    """List ``(hdu, offset, keyword)`` for every header card of a valid FITS byte string."""
    cards, offset, hdu = [], 0, 0
    while offset + _BLOCK <= len(data):
        naxes, bitpix, pcount, gcount, pos, done = {}, 8, 0, 1, offset, False
        while not done:
            for start in range(pos, pos + _BLOCK, _CARD):
                key = data[start:start + 8].decode("ascii").strip()
                if key == "END":
                    done = True
                    break
                cards.append((hdu, start, key))
                value = data[start + 10:start + _CARD].split(b"/")[0].strip()
                if key == "BITPIX":
                    bitpix = int(value)
                elif re.fullmatch(r"NAXIS\d+", key):
                    naxes[key] = int(value)
                elif key == "PCOUNT":
                    pcount = int(value)
                elif key == "GCOUNT":
                    gcount = int(value)
            pos += _BLOCK
        nbytes = 0
        if naxes:
            nbytes = abs(bitpix) // 8 * gcount * (pcount + math.prod(naxes.values()))
        offset = pos + -(-nbytes // _BLOCK) * _BLOCK
        hdu += 1
    return cards


#: Values a header-card edit writes; ``{n}`` is the card's own integer value.
CARD_VALUES = {
    "NAXIS": ["-1", "0", "1", "2", "3", "4", "999", "1000", "99999999", "2147483648", "2.5",
              "'3'", "X"],
    "NAXISn": ["-32", "-1", "0", "1", "{n-1}", "{n+1}", "{2n}", "2147483648", "99999999",
               "1E3", "T"],
    "BITPIX": ["8", "16", "32", "64", "-32", "-64", "0", "7", "-16", "24", "'X'"],
    "CRVAL3": ["0", "-1", "1E300", "-1E300", "NAN", "'abc'", "1E-300", "T", "3749.0"],
    "CDELT3": ["0", "-2", "1E300", "NAN", "1E-300"],
    "BUNIT": ["''", "'furlongs per fortnight'", "'erg/s/cm^2/A'", "'10**(-16)erg s-1'", "'1/0'",
              "'km/s'", "'nanomaggy'", "42", "'%%%'", "'dex(Msun)'", "'log(Msun)'", "'Gyr'"],
    "EXTNAME": ["'PRIMARY'", "''", "'U'", "'G'", "'U_IVAR'", "'ERROR'", "'BADPIX'",
                "'GAIA_MASK'", "'AGE_LW'", "'AGE_LW_ERR'", "'STELLAR_VEL'", "'FLUX'", "42",
                "'" + "X" * 60 + "'"],
    "PCOUNT": ["-1", "1", "2880", "99999999"],
    "GCOUNT": ["-1", "0", "2", "99999999"],
    "MAPNAME": ["'age_lw'", "''", "'sfr'", "'x y'"],
    "ERRDATA": ["'NOPE'", "'STELLAR_VEL'", "''", "'STELLAR_VEL_MASK'"],
    "QUALDATA": ["'NOPE'", "'STELLAR_VEL'", "''", "'STELLAR_VEL_IVAR'"],
    "HDUCLAS2": ["'DATA'", "'ERROR'", "''"],
    "Z": ["-5", "NAN", "'abc'", "1E300", "T"],
    "PSF_FWHM": ["-1", "NAN", "'x'", "1E300"],
    "CTYPE1": ["'RA---XYZ'", "''", "'WAVE'", "'DEC--TAN'"],
    "CTYPE3": ["'RA---TAN'", "''", "'FREQ'", "'WAVE-LOG'"],
    "BANDS": ["'u,g,r'", "'z,i,r,g,u'", "''", "'a,b,c,d,e'"],
    "NEXTEND": ["0", "1", "99", "-1"],
}
#: Header-card edits favour the keywords the issue names.
_EDIT_WEIGHTS = {"NAXIS": 3, "NAXISn": 3, "BITPIX": 3, "CRVAL3": 2, "BUNIT": 3, "EXTNAME": 3}


def _card_family(key):
    return "NAXISn" if re.fullmatch(r"NAXIS\d+", key) else key


def _make_card(key, value):
    return f"{key:<8}= {value:>20} / fuzz"[:_CARD].ljust(_CARD).encode("ascii")


def _edit_card(data, rng, info):
    cards = [c for c in info["cards"] if _card_family(c[2]) in CARD_VALUES]
    weights = np.array([_EDIT_WEIGHTS.get(_card_family(c[2]), 1) for c in cards], float)
    hdu, offset, key = cards[int(rng.choice(len(cards), p=weights / weights.sum()))]
    value = str(rng.choice(CARD_VALUES[_card_family(key)]))
    if "{" in value:
        n = int(data[offset + 10:offset + _CARD].split(b"/")[0])
        value = str({"{n-1}": n - 1, "{n+1}": n + 1, "{2n}": 2 * n}[value])
    out = bytearray(data)
    out[offset:offset + _CARD] = _make_card(key, value)
    return bytes(out), f"HDU {hdu}: {key} = {value}", False


def _delete_card(data, rng, info):
    cards = [c for c in info["cards"] if _card_family(c[2]) in CARD_VALUES]
    hdu, offset, key = cards[int(rng.integers(len(cards)))]
    out = bytearray(data)
    out[offset:offset + _CARD] = b" " * _CARD
    return bytes(out), f"HDU {hdu}: blank the {key} card", False


def _scramble_card(data, rng, info):
    hdu, offset, key = info["cards"][int(rng.integers(len(info["cards"])))]
    out = bytearray(data)
    out[offset:offset + _CARD] = rng.integers(32, 127, size=_CARD, dtype=np.uint8).tobytes()
    return bytes(out), f"HDU {hdu}: scramble the {key} card", False


FITS_OPS = {"flip": _flip, "truncate": _truncate, "truncate_block": _truncate_block,
            "zero_block": _zero_block, "overwrite_run": _overwrite_run,
            "edit_card": _edit_card, "delete_card": _delete_card,
            "scramble_card": _scramble_card}
#: Relative frequency of each FITS corruption (header-card edits are the richest).
FITS_WEIGHTS = {"flip": 2, "truncate": 2, "truncate_block": 1, "zero_block": 1,
                "overwrite_run": 1, "edit_card": 4, "delete_card": 1, "scramble_card": 1}


def _gzip(data):
    return gzip.compress(data, compresslevel=1, mtime=0)


def _gz_inner(data, rng, info):
    name = _weighted(rng, FITS_WEIGHTS)
    inner, desc, lossy = FITS_OPS[name](info["raw"], rng, info)
    return _gzip(inner), f"inside the gzip stream: {desc}", lossy


GZ_OPS = {"flip": _flip, "truncate": _truncate, "gz_inner": _gz_inner}
GZ_WEIGHTS = {"flip": 1, "truncate": 1, "gz_inner": 4}


# -- .npy ------------------------------------------------------------------------------
def _npy_parts(data):
    major = data[6]
    width = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8:8 + width], "little")
    start = 8 + width
    return data[:8], width, data[start:start + hlen].decode("latin1"), data[start + hlen:]


def _npy_join(prefix, width, header, body, *, pad=True):
    text = header.rstrip(" \n")
    if pad:
        total = 8 + width + len(text) + 1
        text += " " * (-total % 64)
    text += "\n"
    return prefix + len(text).to_bytes(width, "little") + text.encode("latin1") + body


def _npy_shape(data, rng, info):
    prefix, width, header, body = _npy_parts(data)
    shape = re.search(r"'shape': (\([^)]*\))", header).group(1)
    dims = [int(d) for d in re.findall(r"-?\d+", shape)]
    kind = int(rng.integers(6))
    pool = [-1, 0, 1, 2, 7, 2**31, 2**63 - 1, 2**64, 10**20]
    if kind == 0:
        dims[int(rng.integers(len(dims)))] = int(rng.choice(pool))
        new = "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"
    elif kind == 1:
        new = "(" + ", ".join(map(str, dims[:-1])) + ")" if len(dims) > 1 else "()"
    elif kind == 2:
        new = "(" + ", ".join(map(str, [*dims, 1])) + ")"
    elif kind == 3:  # the unbalanced tuple
        new = "(" + ", ".join(map(str, dims)) + " , }"
    elif kind == 4:
        new = str(rng.choice(["None", "'abc'", "(3.0, 5)", "[3, 5]", "(-1, 5, 8, 8)", "(", ""]))
    else:
        new = "(" + ", ".join(str(d * 2) for d in dims) + ")"
    header = header.replace(f"'shape': {shape}", f"'shape': {new}")
    return _npy_join(prefix, width, header, body), f"npy shape {shape} -> {new}", False


def _npy_descr(data, rng, info):
    prefix, width, header, body = _npy_parts(data)
    new = str(rng.choice(["'<f8'", "'>f4'", "'<i4'", "'|u1'", "'|O'", "'<U4'", "'garbage'",
                          "[('a', '<f4')]", "'|b1'", "'<c8'", "'<f2'", "None", "'<M8[s]'"]))
    header = re.sub(r"'descr': ('[^']*'|\[[^\]]*\])", f"'descr': {new}", header)
    return _npy_join(prefix, width, header, body), f"npy descr -> {new}", False


def _npy_text(data, rng, info):
    prefix, width, header, body = _npy_parts(data)
    kind = int(rng.integers(5))
    if kind == 0:
        new = header.replace("'fortran_order': False",
                             f"'fortran_order': {rng.choice(['True', 'None', '1', 'x'])}")
    elif kind == 1:  # drop a key
        key = str(rng.choice(["descr", "fortran_order", "shape"]))
        new = re.sub(rf"'{key}': [^,]*(\([^)]*\))?, ?", "", header, count=1)
    elif kind == 2:
        new = header.replace("{", "{'extra': 1, ")
    elif kind == 3:  # one random character replaced
        pos = int(rng.integers(len(header.rstrip())))
        new = header[:pos] + chr(int(rng.integers(32, 127))) + header[pos + 1:]
    else:
        new = header.replace("}", "")
    return _npy_join(prefix, width, new, body), f"npy header text ({kind})", False


def _npy_prefix(data, rng, info):
    out = bytearray(data)
    kind = int(rng.integers(3))
    if kind == 0:
        out[8:10] = int(rng.integers(0, 65536)).to_bytes(2, "little")
        desc = "npy header length"
    elif kind == 1:
        out[6:8] = bytes([int(rng.choice([0, 2, 3, 9])), int(rng.integers(0, 3))])
        desc = f"npy version {out[6]}.{out[7]}"
    else:
        out[int(rng.integers(0, 6))] ^= 0xFF
        desc = "npy magic"
    return bytes(out), desc, False


NPY_OPS = {"flip": _flip, "truncate": _truncate, "zero_block": _zero_block,
           "npy_shape": _npy_shape, "npy_descr": _npy_descr, "npy_text": _npy_text,
           "npy_prefix": _npy_prefix}
NPY_WEIGHTS = {"flip": 1, "truncate": 1, "zero_block": 1, "npy_shape": 4, "npy_descr": 2,
               "npy_text": 2, "npy_prefix": 1}


# -- HDF5 ------------------------------------------------------------------------------
def _h5_edit(data, edit):
    """Apply ``edit(h5py.File)`` to an in-memory copy of an HDF5 file."""
    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as fh:
        desc = edit(fh)
    return buf.getvalue(), desc


def _h5_structure(data, rng, info):
    kind = int(rng.integers(10))
    tables = info["tables"]
    tab = str(rng.choice(tables))

    def rewrite(fh, arr):
        del fh[tab]
        fh.create_dataset(tab, data=arr)

    def edit(fh):
        arr = fh[tab][:]
        if kind == 0:
            del fh[tab]
            return f"delete table {tab}"
        if kind == 1:
            del fh[f"{tab}.__table_column_meta__"]
            return f"delete {tab} metadata"
        if kind == 2:
            del fh[f"{tab}.__table_column_meta__"]
            junk = [b"datatype:", b"- {name: ix, datatype: [", b"  - : : ::"]
            choice = int(rng.integers(3))
            lines = ([bytes(rng.integers(32, 127, size=40, dtype=np.uint8))]
                     if choice == 0 else junk if choice == 1 else [b"datatype: 3"])
            fh.create_dataset(f"{tab}.__table_column_meta__", data=np.array(lines))
            return f"garbage {tab} metadata ({choice})"
        if kind == 3:  # ix as floats with a NaN
            names = [n for n in arr.dtype.names]
            dtype = [(n, "f8" if n == "ix" else arr.dtype[n]) for n in names]
            new = np.zeros(arr.shape, dtype)
            for n in names:
                new[n] = arr[n]
            new["ix"][int(rng.integers(len(new)))] = np.nan
            rewrite(fh, new)
            return f"{tab}.ix as float with a NaN"
        if kind == 4:
            value = int(rng.choice([-1, 10**6, 2**31 - 1, 5000]))
            arr[str(rng.choice(["ix", "iy"]))][int(rng.integers(len(arr)))] = value
            rewrite(fh, arr)
            return f"{tab}: a pixel index = {value}"
        if kind == 5:
            arr["ix"][1], arr["iy"][1] = arr["ix"][0], arr["iy"][0]
            rewrite(fh, arr)
            return f"{tab}: a duplicate pixel"
        if kind == 6:
            rewrite(fh, arr[:0])
            return f"{tab}: no rows"
        if kind == 7:
            fh.move(tab, f"{tab}_renamed")
            return f"rename table {tab}"
        if kind == 8:
            del fh[tab]
            fh.create_group(tab)
            return f"table {tab} replaced by a group"
        col = str(rng.choice([n for n in arr.dtype.names if n not in ("ix", "iy", "Name")]))
        dtype = [(n, "S8" if n == col else arr.dtype[n]) for n in arr.dtype.names]
        new = np.zeros(arr.shape, dtype)
        for n in arr.dtype.names:
            new[n] = arr[n] if n != col else b"oops"
        rewrite(fh, new)
        return f"{tab}.{col} as strings"

    try:
        out, desc = _h5_edit(data, edit)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        return _flip(data, rng, info)  # the edit itself failed; fall back to byte damage
    return out, desc, False


HDF5_OPS = {"flip": _flip, "truncate": _truncate, "zero_block": _zero_block,
            "overwrite_run": _overwrite_run, "h5_structure": _h5_structure}
HDF5_WEIGHTS = {"flip": 2, "truncate": 1, "zero_block": 2, "overwrite_run": 1,
                "h5_structure": 4}


# -- CSV and ECSV ----------------------------------------------------------------------
def _text_lines(data):
    lines = data.decode("utf-8").splitlines(keepends=True)
    meta = [i for i, ln in enumerate(lines) if ln.startswith("#")]
    body = [i for i, ln in enumerate(lines) if not ln.startswith("#") and ln.strip()]
    return lines, meta, body[0], body[1:]


def _rows(data, rng, info):
    lines, meta, head, rows = _text_lines(data)
    sep = "," if "," in lines[head] else " "
    kind = int(rng.integers(12))
    i = int(rng.choice(rows)) if rows else head
    fields = lines[i].rstrip("\n").split(sep)
    if kind == 0:
        del lines[i]
        desc = "delete a row"
    elif kind == 1:
        lines.insert(i, lines[i])
        desc = "duplicate a row"
    elif kind == 2:
        lines[i] = sep.join(fields[:-1]) + "\n"
        desc = "drop a field"
    elif kind == 3:
        lines[i] = sep.join([*fields, "99"]) + "\n"
        desc = "add a field"
    elif kind == 4:
        lines.insert(i, "<<garbage line>>\n")
        desc = "insert a garbage line"
    elif kind == 5:
        lines = [ln for j, ln in enumerate(lines) if j not in rows]
        desc = "header but no rows"
    elif kind == 6:
        lines[head] = "\n"
        desc = "blank the column names"
    elif kind == 7:
        j = int(rng.integers(len(fields)))
        fields[j] = str(rng.choice(["abc", "", "nan", "inf", "1e999", "-5", '"']))
        lines[i] = sep.join(fields) + "\n"
        desc = f"field {j} -> {fields[j]!r}"
    elif kind == 8:
        lines[i] = lines[i].replace(sep, "\x00", 1)
        desc = "a NUL byte"
    elif kind == 9:
        lines[0] = "\ufeff" + lines[0]
        desc = "a byte-order mark"
    elif kind == 10 and meta:
        j = int(rng.choice(meta))
        choice = int(rng.integers(3))
        lines[j] = ["", "# - {name: z, datatype: 'foo'}\n", "# %ECSV 9.9\n"][choice]
        desc = f"damage ECSV header line {j} ({choice})"
    else:
        lines[head] = lines[head].replace(fields[0] if kind == 11 else sep, "id2", 1)
        desc = "rename a column"
    return "".join(lines).encode("utf-8"), desc, False


TEXT_OPS = {"rows": _rows, "truncate": _truncate, "flip": _flip}
TEXT_WEIGHTS = {"rows": 6, "truncate": 1, "flip": 1}


# -- raster images ---------------------------------------------------------------------
def _raster_size(data, rng, info):
    out = bytearray(data)
    big = int(rng.choice([0, 1, 30000, 65535]))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        out[16:24] = struct.pack(">II", big, big)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
        return bytes(out), f"PNG size {big} x {big} (valid CRC)", False
    sof = data.find(b"\xff\xc0")
    if sof < 0:
        return _flip(data, rng, info)
    out[sof + 5:sof + 9] = struct.pack(">HH", big, big)
    return bytes(out), f"JPEG size {big} x {big}", False


RASTER_OPS = {"flip": _flip, "truncate": _truncate, "zero_block": _zero_block,
              "overwrite_run": _overwrite_run, "raster_size": _raster_size}
RASTER_WEIGHTS = {"flip": 2, "truncate": 2, "zero_block": 1, "overwrite_run": 1,
                  "raster_size": 1}

_FORMAT_OPS = {"fits": (FITS_OPS, FITS_WEIGHTS), "fits.gz": (GZ_OPS, GZ_WEIGHTS),
               "npy": (NPY_OPS, NPY_WEIGHTS), "hdf5": (HDF5_OPS, HDF5_WEIGHTS),
               "csv": (TEXT_OPS, TEXT_WEIGHTS), "ecsv": (TEXT_OPS, TEXT_WEIGHTS),
               "raster": (RASTER_OPS, RASTER_WEIGHTS)}


def _weighted(rng, weights):
    names = list(weights)
    p = np.array([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# -- the inputs ------------------------------------------------------------------------
def _celestial(shape, scale=0.396):
    from astro_cl.surveys.mock.io import celestial_wcs

    return celestial_wcs(150.0, 2.0, shape, scale)


def _maps(shape, wcs, rng):
    import astropy.units as u
    from astropy.nddata import NDData, StdDevUncertainty

    mass = rng.lognormal(size=shape)
    return {"stellar_mass": NDData(mass, unit=u.Msun / u.kpc**2, wcs=wcs,
                                   uncertainty=StdDevUncertainty(0.1 * mass),
                                   mask=rng.random(shape) < 0.1),
            "age_lw": NDData(rng.uniform(1, 10, shape), unit=u.Gyr, wcs=wcs),
            "metallicity": NDData(rng.normal(0, 0.1, shape), unit=u.dex, wcs=wcs)}


def _catalogue(path, key, ids, rng):
    from astropy.table import QTable

    QTable({key: list(ids), "z": rng.uniform(0.01, 0.1, len(ids)),
            "log_Mass": rng.uniform(9, 11, len(ids))}).write(path, format="ascii.ecsv")


def build_sdss(folder, shared, rng, *, gz=False):
    """A 5-band 12x12 cutout with inverse variances, its maps file and a catalogue."""
    from astro_cl.data.fits_maps import write_maps
    from astro_cl.surveys.mock.io import write_image

    n = 12
    out = {"data": rng.lognormal(size=(5, n, n)).astype(np.float32),
           "std": np.full((5, n, n), 0.1, np.float32), "star_mask": np.zeros((n, n), bool)}
    wcs = _celestial((n, n))
    name = "g.fits.gz" if gz else "g.fits"
    write_image(folder / name, out, wcs, "ugriz", redshift=0.05,
                psf_fwhm=dict.fromkeys("ugriz", 1.4), name="g")
    if not gz:
        write_maps(folder / "g.maps.fits", _maps((n, n), wcs, rng), header={"OBJECT": "g"})
        _catalogue(folder / "catalogue.ecsv", "id", ["g", "h"], rng)


def build_npy(folder, shared, rng):
    """Three 5-band 8x8 images and their labels, as ``x_images.npy``/``x_labels.npy``."""
    np.save(folder / "x_images.npy", rng.lognormal(size=(3, 5, 8, 8)).astype(np.float32))
    np.save(folder / "x_labels.npy", np.array([1, -1, 1]))


def build_ecalifa(folder, shared, rng):
    """A 16 x 6 x 5 V500 cube (all six extensions), its maps file and a catalogue."""
    from astro_cl.data.fits_maps import write_maps
    from astro_cl.surveys.mock.io import cube_wcs, write_cube

    shape = (16, 6, 5)
    flux = rng.lognormal(size=shape).astype(np.float32)
    badpix = np.zeros(shape, bool)
    badpix[:, 0, 0] = True
    gaia = np.zeros(shape[1:], np.uint8)
    gaia[1, 1] = 1
    out = {"flux": flux, "error": np.full(shape, 0.1, np.float32),
           "errweight": np.ones(shape, np.float32), "badpix": badpix,
           "flat": np.ones(shape, np.float32), "gaia_mask": gaia}
    wcs = cube_wcs(10.0, 20.0, shape, 1.0, 3749.0, 2.0)
    write_cube(folder / "G1.V500.drscube.fits", out, wcs, name="G1", redshift=0.02,
               psf_fwhm=2.5)
    write_maps(folder / "G1.maps.fits", _maps(shape[1:], wcs.celestial, rng),
               header={"OBJECT": "G1"})
    _catalogue(folder / "catalogue.ecsv", "Name", ["G1", "G2"], rng)


def _real(shared, *parts):
    path = Path(shared).joinpath(*parts)
    if not path.is_file():
        msg = f"real test file not found: {path}"
        raise FileNotFoundError(msg)
    return path


def build_manga(folder, shared, rng, *, gz=False, cube=False):
    """The real MaNGA DAP MAPS file of 7815-3702 (decompressed unless ``gz``), optionally
    with a tiny 12-channel 42x42 LOGCUBE beside it."""
    from astropy.io import fits

    real = _real(shared, "manga", MANGA_MAPS).read_bytes()
    name = MANGA_MAPS if gz else MANGA_MAPS[: -len(".gz")]
    (folder / name).write_bytes(real if gz else gzip.decompress(real))
    if not cube:
        return
    n, n_wave = 42, 12
    flux = rng.lognormal(size=(n_wave, n, n)).astype(np.float32)
    hdr = fits.Header()
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "WAVE-LOG",
                       "CRVAL1": 317.9032, "CRVAL2": 11.496943, "CRVAL3": 3.6e-7,
                       "CD1_1": -0.5 / 3600, "CD2_2": 0.5 / 3600, "CD3_3": 8.3e-11,
                       "CRPIX1": 22.0, "CRPIX2": 22.0, "CRPIX3": 1.0, "CUNIT1": "deg",
                       "CUNIT2": "deg", "CUNIT3": "m", "BUNIT": "1E-17 erg/s/cm^2/Ang/spaxel",
                       "INSTRUME": "MaNGA"}.items():
        hdr[key] = value
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(flux, hdr, name="FLUX"),
                  fits.ImageHDU(np.full_like(flux, 4.0), hdr, name="IVAR"),
                  fits.ImageHDU(np.zeros(flux.shape, np.int32), hdr, name="MASK")]).writeto(
        folder / "manga-7815-3702-LOGCUBE.fits")


def build_pipe3d(folder, shared, rng):
    """A Pipe3D-layout HDF5 file of a 5 x 6 spaxel galaxy (SSP and ELINES tables), and a
    CSV catalogue."""
    import astropy.units as u
    from astropy.table import QTable

    iy, ix = np.mgrid[:5, :6]
    ix, iy = ix.ravel().astype(np.int32), iy.ravel().astype(np.int32)
    n = ix.size
    ra = 180.7 - ix / 3600 / np.cos(np.deg2rad(48.6))
    dec = 48.6 + iy / 3600
    ssp = QTable({"Name": ["MOCK1"] * n, "ix": ix, "iy": iy, "ra_abs": ra * u.deg,
                  "dec_abs": dec * u.deg,
                  "age_lwt": rng.uniform(8, 10, n).astype(np.float32) * u.dex(u.yr),
                  "e_age_lwt": rng.uniform(0, 0.1, n).astype(np.float32),
                  "Av_ssp": rng.uniform(0, 1, n).astype(np.float32) * u.mag,
                  "e_Av_ssp": rng.uniform(0, 0.1, n).astype(np.float32) * u.mag})
    flux = u.Unit("1e-16 erg / (s cm2)")
    elines = QTable({"ix": ix, "iy": iy,
                     "Halpha": rng.lognormal(size=n).astype(np.float32) * flux,
                     "e_Halpha": rng.uniform(0, 0.1, n).astype(np.float32) * flux})
    path = folder / "MOCK1_allpix.pipe3d.hdf5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ssp.write(path, path="SSP", serialize_meta=True, format="hdf5")
        elines.write(path, path="ELINES", serialize_meta=True, format="hdf5", append=True)
    (folder / "cat.csv").write_text("Name,z,log_Mass\nMOCK1,0.02,10.2\nOTHER,0.03,9.1\n")


def build_pipe3d_real(folder, shared, rng):
    """The real Pipe3D file of NGC 4047."""
    shutil.copyfile(_real(shared, "pipe3d", PIPE3D_FILE), folder / PIPE3D_FILE)


def build_image_folder(folder, shared, rng):
    """A PNG, a JPEG and a 3-band FITS cutout with a labels CSV."""
    from astropy.io import fits
    from PIL import Image

    pixels = rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "a.png")
    Image.fromarray(pixels).save(folder / "b.jpg", quality=90)
    hdu = fits.PrimaryHDU(rng.lognormal(size=(3, 10, 12)).astype(np.float32))
    hdu.header["BUNIT"] = "nanomaggy"
    hdu.header["BANDS"] = "g,r,i"
    hdu.writeto(folder / "c.fits")
    (folder / "labels.csv").write_text("id,class,z\na,1,0.05\nb,2,0.06\nc,0,0.07\n")


# -- the readers -----------------------------------------------------------------------
def _read_all(survey):
    """Open a survey, read and validate every record, and turn each into arrays."""
    survey.open()
    records = []
    for i in range(len(survey)):
        rec = survey[i]
        rec.as_arrays(survey.default_kind)
        records.append(rec)
    return records


def read_sdss(folder):
    from astro_cl.surveys.sdss import SDSSSurvey

    return _read_all(SDSSSurvey(path=folder))


def read_npy(folder):
    from astro_cl.surveys.sdss import SDSSSurvey

    return _read_all(SDSSSurvey(path=folder / "x_images.npy", unit="nanomaggy"))


def read_ecalifa(folder):
    from astro_cl.surveys.ecalifa import ECALIFASurvey

    return _read_all(ECALIFASurvey(path=folder))


def read_manga(folder):
    from astro_cl.surveys.manga import MaNGASurvey

    return _read_all(MaNGASurvey(path=folder))


def read_manga_subset(folder):
    from astro_cl.surveys.manga import MaNGASurvey

    return _read_all(MaNGASurvey(path=folder, extensions=["STELLAR_VEL", "EMLINE_GFLUX"]))


def read_pipe3d(folder):
    from astro_cl.surveys.pipe3d import Pipe3DSurvey

    return _read_all(Pipe3DSurvey(path=folder, catalogue_file=folder / "cat.csv"))


def read_pipe3d_real(folder):
    from astro_cl.surveys.pipe3d import Pipe3DSurvey

    return _read_all(Pipe3DSurvey(path=folder, tables=["SSP"]))


def read_image_folder(folder):
    from astro_cl.surveys.image_folder import ImageFolderSurvey

    return _read_all(ImageFolderSurvey(path=folder))


@dataclass
class Target:
    """One reader, its inputs, and the file that the cases corrupt.

    Parameters
    ----------
    name : str
        ``<reader>/<role>``.
    build : callable
        ``build(folder, shared, rng)`` writes the clean inputs.
    read : callable
        ``read(folder)`` returns the records (raising on failure).
    fault : str
        Name of the file to corrupt.
    fmt : str
        Its format: a key of the corruption tables.
    shared : bool
        Whether the inputs include real files from the shared data folder.
    default_cases : int
        Cases in the default (fast) test run.
    """

    name: str
    build: object
    read: object
    fault: str
    fmt: str
    shared: bool = False
    default_cases: int = 12
    files: dict = field(default_factory=dict, repr=False)
    info: dict = field(default_factory=dict, repr=False)

    def prepare(self, shared, scratch):
        """Write the clean inputs once (into ``scratch``) and keep their bytes."""
        if self.files:
            return self
        folder = Path(scratch) / f"template-{self.name.replace('/', '-')}"
        folder.mkdir(parents=True, exist_ok=True)
        self.build(folder, shared, np.random.default_rng(0))
        self.files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        shutil.rmtree(folder)
        data = self.files[self.fault]
        if self.fmt == "fits":
            self.info["cards"] = fits_cards(data)
        elif self.fmt == "fits.gz":
            self.info["raw"] = gzip.decompress(data)
            self.info["cards"] = fits_cards(self.info["raw"])
        elif self.fmt == "hdf5":
            import h5py

            with h5py.File(io.BytesIO(data), "r") as fh:
                self.info["tables"] = sorted(k for k in fh if "__table_column_meta__" not in k)
        return self


def targets():
    """Return every fuzz target (a fresh list: targets cache their inputs once prepared)."""
    from functools import partial

    sdss_gz = partial(build_sdss, gz=True)
    manga_gz = partial(build_manga, gz=True)
    manga_pair = partial(build_manga, cube=True)
    return [
        Target("sdss/cutout", build_sdss, read_sdss, "g.fits", "fits", default_cases=20),
        Target("sdss/maps", build_sdss, read_sdss, "g.maps.fits", "fits", default_cases=20),
        Target("sdss/catalogue", build_sdss, read_sdss, "catalogue.ecsv", "ecsv",
               default_cases=12),
        Target("sdss/cutout-gz", sdss_gz, read_sdss, "g.fits.gz", "fits.gz", default_cases=12),
        Target("sdss-npy/images", build_npy, read_npy, "x_images.npy", "npy",
               default_cases=20),
        Target("sdss-npy/labels", build_npy, read_npy, "x_labels.npy", "npy",
               default_cases=16),
        Target("ecalifa/cube", build_ecalifa, read_ecalifa, "G1.V500.drscube.fits", "fits",
               default_cases=20),
        Target("ecalifa/maps", build_ecalifa, read_ecalifa, "G1.maps.fits", "fits",
               default_cases=16),
        Target("ecalifa/catalogue", build_ecalifa, read_ecalifa, "catalogue.ecsv", "ecsv",
               default_cases=10),
        Target("manga/maps", build_manga, read_manga, MANGA_MAPS[: -len(".gz")], "fits",
               shared=True, default_cases=6),
        Target("manga/maps-gz", manga_gz, read_manga_subset, MANGA_MAPS, "fits.gz",
               shared=True, default_cases=6),
        Target("manga/logcube", manga_pair, read_manga_subset, "manga-7815-3702-LOGCUBE.fits",
               "fits", shared=True, default_cases=10),
        Target("manga/maps-with-cube", manga_pair, read_manga_subset,
               MANGA_MAPS[: -len(".gz")], "fits", shared=True, default_cases=6),
        Target("pipe3d/file", build_pipe3d, read_pipe3d, "MOCK1_allpix.pipe3d.hdf5", "hdf5",
               default_cases=20),
        Target("pipe3d/catalogue", build_pipe3d, read_pipe3d, "cat.csv", "csv",
               default_cases=8),
        Target("pipe3d-real/file", build_pipe3d_real, read_pipe3d_real, PIPE3D_FILE, "hdf5",
               shared=True, default_cases=0),
        Target("image-folder/png", build_image_folder, read_image_folder, "a.png", "raster",
               default_cases=8),
        Target("image-folder/jpeg", build_image_folder, read_image_folder, "b.jpg", "raster",
               default_cases=8),
        Target("image-folder/fits", build_image_folder, read_image_folder, "c.fits", "fits",
               default_cases=12),
        Target("image-folder/labels", build_image_folder, read_image_folder, "labels.csv",
               "csv", default_cases=10),
    ]


# -- running ---------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one case did."""

    target: str
    case: int
    op: str
    kind: str
    seconds: float
    message: str = ""
    stray_warnings: tuple = ()


def names_file(message, name):
    """Whether ``message`` names the file ``name`` (as a whole path component)."""
    return re.search(rf"(?:^|[\\/\s'\"(\[]){re.escape(name)}(?=$|[\s:'\",)\]])",
                     message) is not None


def make_case(target, case, seed):
    """Return ``(corrupted bytes, description, lossy)`` of one case of a prepared target."""
    # crc32 of the name: a target's cases do not change when targets are added or reordered
    rng = np.random.default_rng([seed, zlib.crc32(target.name.encode()), case])
    ops, weights = _FORMAT_OPS[target.fmt]
    return ops[_weighted(rng, weights)](target.files[target.fault], rng, target.info)


def run_case(target, case, *, seed, workdir, timeout=20.0):
    """Run one seeded case of a prepared target in this process; return its `Outcome`."""
    from astro_cl.exceptions import AstroCLError, AstroCLWarning

    data, desc, lossy = make_case(target, case, seed)
    folder = Path(workdir) / f"{target.name.replace('/', '-')}-{case}"
    folder.mkdir(parents=True)
    for name, content in target.files.items():
        (folder / name).write_bytes(data if name == target.fault else content)
    start = time.perf_counter()
    message, stray = "", ()
    try:
        with warnings.catch_warnings(record=True) as caught, deadline(timeout):
            warnings.simplefilter("always")
            target.read(folder)
        kind = "partial" if lossy and target.fmt in _STRICT else "valid"
        stray = tuple(sorted({type(w.message).__name__ for w in caught
                              if not isinstance(w.message, AstroCLWarning)}))
    except CaseTimeout as exc:
        kind, message = "hang", str(exc)
    except AstroCLError as exc:
        message = f"{type(exc).__name__}: {exc}"
        kind = "error" if names_file(str(exc), target.fault) else "misattributed"
    except Exception as exc:  # the point of the harness: anything else is a finding
        kind, message = "foreign", f"{type(exc).__name__}: {exc}"
    finally:
        seconds = time.perf_counter() - start
        shutil.rmtree(folder, ignore_errors=True)
    return Outcome(target.name, case, desc, kind, seconds, message[:400], stray)


def _worker(conn, selected, seed, workdir, timeout):
    by_name = {t.name: t for t in selected}
    while (job := conn.recv()) is not None:
        name, case = job
        conn.send(asdict(run_case(by_name[name], case, seed=seed, workdir=workdir,
                                  timeout=timeout)))


class _Isolated:
    """Cases run in a forked worker process, restarted when a case kills it.

    A crash of the interpreter (a segfault inside a C library) is then an
    outcome (``crash``) instead of the end of the campaign, and a hang in C
    code, which the in-process alarm cannot interrupt, is cut by the parent.
    """

    def __init__(self, selected, seed, workdir, timeout):
        self._args = (selected, seed, workdir, timeout)
        self._ctx = multiprocessing.get_context("fork")
        self._proc = self._conn = None

    def run(self, target, case):
        if self._proc is None:
            self._conn, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(target=_worker, args=(child, *self._args),
                                           daemon=True)
            self._proc.start()
            child.close()
        timeout = self._args[3]
        self._conn.send((target.name, case))
        start = time.perf_counter()
        try:
            if self._conn.poll(timeout + 30):
                return Outcome(**self._conn.recv())
            kind, message = "hang", f"the worker gave no answer after {timeout + 30} s"
            self._proc.kill()
        except EOFError:
            kind = "crash"
        self._proc.join()
        if kind == "crash":
            message = f"the worker process died (exit code {self._proc.exitcode})"
        self._proc = self._conn = None
        _, desc, _ = make_case(target, case, self._args[1])
        return Outcome(target.name, case, desc, kind, time.perf_counter() - start, message)

    def close(self):
        if self._proc is not None:
            self._conn.send(None)
            self._proc.join(10)


def run_campaign(selected, cases, *, seed, shared, workdir, timeout=20.0, progress=None,
                 first_case=0, isolate=False):
    """Run ``cases[name]`` cases of each selected target; return the outcomes.

    With ``isolate``, cases run in a worker process (see `_Isolated`); otherwise
    in this one, where only the per-case alarm guards against hangs.
    """
    for target in selected:
        target.prepare(shared, workdir)
    runner = _Isolated(selected, seed, workdir, timeout) if isolate else None
    outcomes = []
    try:
        for target in selected:
            for case in range(first_case, first_case + cases[target.name]):
                outcome = (runner.run(target, case) if runner else
                           run_case(target, case, seed=seed, workdir=workdir, timeout=timeout))
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
    finally:
        if runner is not None:
            runner.close()
    return outcomes


def format_table(outcomes):
    """Return the outcome table (one row per target, and the total) as text."""
    by_target = {}
    for o in outcomes:
        by_target.setdefault(o.target, Counter())[o.kind] += 1
    total = Counter(o.kind for o in outcomes)
    width = max([len("target"), *map(len, by_target)])
    head = f"{'target':<{width}} " + " ".join(f"{k:>13}" for k in OUTCOMES) + f" {'cases':>7}"
    lines = [head, "-" * len(head)]
    for name, counts in [*by_target.items(), ("total", total)]:
        if name == "total":
            lines.append("-" * len(head))
        lines.append(f"{name:<{width}} " + " ".join(f"{counts[k]:>13}" for k in OUTCOMES)
                     + f" {sum(counts.values()):>7}")
    return "\n".join(lines)


def failures(outcomes):
    """Outcomes that are neither a valid record nor a clean error naming the file."""
    return [o for o in outcomes if o.kind not in ("valid", "error")]
