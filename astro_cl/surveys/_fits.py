"""Private catalogue, record and directory helpers shared by the survey readers.

The guarded file reading they build on is public: `astro_cl.data.fits_io`.
"""

import warnings
from pathlib import Path

import numpy as np
from astropy.table import QTable, Table

from astro_cl.data.fits_io import (  # noqa: F401 - re-exported for the readers
    MAX_NAXIS,
    READ_ERRORS,
    SPAXEL,
    get_hdu,
    hdu_data,
    header_wcs,
    load_npy,
    open_fits,
    parse_unit,
    pixel_scale,
    reading,
    scan_fits,
)
from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError

__all__ = []


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
