"""Pipe3D per-spaxel products (``<name>_allpix.pipe3d.hdf5``) back on the image grid.

The files (as distributed with the EDGE-CALIFA ``edge_pydb`` package) hold one
astropy-serialised HDF5 table per Pipe3D product (``SSP``, ``ELINES``,
``flux_elines``, ``SFH``, ``indices``), one row per spaxel with its 0-based
pixel indices ``ix``/``iy`` and sky coordinates. Each numeric column becomes a
2-D `~astropy.nddata.NDData` map by a vectorised scatter onto the
``(max(iy)+1, max(ix)+1)`` grid; ``e_<col>`` columns in the same unit become the
map's `~astropy.nddata.StdDevUncertainty`. The celestial WCS is fitted to the
per-spaxel ``ra_abs``/``dec_abs`` (TAN projection).
"""

import re
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import NDData, StdDevUncertainty

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import AstroCLWarning, SurveyError
from astro_cl.surveys import _fits
from astro_cl.surveys.base import Survey

__all__ = ["Pipe3DSurvey", "read_pipe3d_maps"]

_SUFFIX = re.compile(r"(_allpix)?\.pipe3d\.h(df)?5$")
_COORDS = ("Name", "ix", "iy", "ra_abs", "dec_abs", "ra_off", "dec_off")
_UNIT_ALIASES = {"fraction": u.dimensionless_unscaled}
#: Largest map side accepted: a damaged ix/iy would otherwise size the grids
#: (the largest IFU mosaics are a few hundred spaxels across).
_MAX_GRID = 10_000
#: Largest grid area accepted: per-spaxel tables cover most of their bounding box
#: (NGC 4047: 5544 rows on 72 x 77 pixels), so a far larger box means a damaged index.
_GRID_PER_ROW = 16
_MIN_GRID_AREA = 65_536


def _column_unit(col, path, name):
    unit = getattr(col, "unit", None)
    if unit is None:
        return u.dimensionless_unscaled
    if isinstance(unit, u.UnrecognizedUnit):
        alias = _UNIT_ALIASES.get(str(unit))
        if alias is not None:
            return alias
        return _fits.parse_unit(str(unit), path=path, keyword=f"unit of column {name!r}",
                                default=u.dimensionless_unscaled, convention="Pipe3D")
    return unit


def _fit_wcs(ix, iy, ra, dec, path):
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import fit_wcs_from_points

    good = np.isfinite(ra) & np.isfinite(dec)
    if good.sum() < 3 or np.ptp(ix[good]) == 0 or np.ptp(iy[good]) == 0:
        warnings.warn(f"{path}: too few spaxel coordinates to fit a WCS; maps have none",
                      AstroCLWarning, stacklevel=4)
        return None
    sky = SkyCoord(ra[good], dec[good], unit="deg")
    return fit_wcs_from_points((ix[good].astype(float), iy[good].astype(float)), sky,
                               projection="TAN")


def read_pipe3d_maps(path, *, tables=None, columns=None):
    """Read a Pipe3D per-spaxel HDF5 file into 2-D maps.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    tables : sequence of str, optional
        Tables to read (default: every table in the file).
    columns : sequence of str, optional
        Columns to turn into maps (default: every numeric column that is not a
        coordinate or an ``e_`` error column of another map).

    Returns
    -------
    maps : dict of str to `~astropy.nddata.NDData`
        Column name -> map with unit, mask (True where the spaxel is absent or
        non-finite), WCS and uncertainty where an ``e_`` column has the same unit.
    name : str
        The galaxy name stored in the file (or the file stem).

    Raises
    ------
    astro_cl.exceptions.SurveyError
        If the file is not HDF5, a table is missing, or has no ix/iy columns.
    """
    path = Path(path)
    with _fits.reading(path, "Pipe3D HDF5 file"):
        return _read_pipe3d(path, tables, columns)


def _pixel_indices(table, tab, path):
    """Return a table's ``ix``, ``iy`` as int64, checked (integral, >= 0, bounded, unique)."""
    out = []
    for key in ("ix", "iy"):
        raw = np.asarray(getattr(table[key], "value", table[key]))
        if raw.ndim != 1 or not (np.issubdtype(raw.dtype, np.integer)
                                 or np.issubdtype(raw.dtype, np.floating)):
            msg = (f"{path}: table {tab!r} column {key!r} has dtype {raw.dtype} and shape "
                   f"{raw.shape}, expected 1-D integer pixel indices")
            raise SurveyError(msg)
        if np.issubdtype(raw.dtype, np.floating) and not (
                np.isfinite(raw).all() and (raw == np.round(raw)).all()):
            msg = f"{path}: table {tab!r} column {key!r} holds non-integral pixel indices"
            raise SurveyError(msg)
        if raw.size and (raw.min() < 0 or raw.max() >= _MAX_GRID):
            msg = (f"{path}: table {tab!r} column {key!r} spans {raw.min()}..{raw.max()}, "
                   f"expected pixel indices from 0 to {_MAX_GRID - 1}")
            raise SurveyError(msg)
        out.append(raw.astype(np.int64))
    ix, iy = out
    if np.unique(iy * _MAX_GRID + ix).size != ix.size:
        msg = f"{path}: table {tab!r} lists some (ix, iy) pixel more than once"
        raise SurveyError(msg)
    return ix, iy


def _check_record_type(dtype, what, path):
    """Reject a compound type whose fields overlap or overrun the record.

    A damaged HDF5 datatype message can do that, and reading such a table makes
    the HDF5 type conversion write out of bounds (h5py 3.16 then crashes the
    interpreter). Checked before any data is read.
    """
    if dtype.fields is None:
        if dtype.subdtype is not None:
            _check_record_type(dtype.subdtype[0], what, path)
        return
    spans = sorted((offset, offset + sub.itemsize, name)
                   for name, (sub, offset, *_) in dtype.fields.items())
    end, previous = 0, None
    for start, stop, name in spans:
        if start < end or stop > dtype.itemsize:
            clash = (f"overlaps field {previous!r} (ending at byte {end})" if start < end
                     else f"overruns the {dtype.itemsize}-byte record")
            msg = (f"{path}: {what} has a damaged record type: field {name!r} (bytes "
                   f"{start}-{stop}) {clash}")
            raise SurveyError(msg)
        end, previous = stop, name
        _check_record_type(dtype.fields[name][0], f"{what} field {name!r}", path)


def _read_pipe3d(path, tables, columns):
    import h5py
    from astropy.table import QTable

    try:
        with h5py.File(path, "r") as fh:
            available = [k for k in fh if not k.endswith(".__table_column_meta__")
                         and isinstance(fh[k], h5py.Dataset)]
            wanted = available if tables is None else list(tables)
            missing = [t for t in wanted if t not in available]
            if missing or not wanted:
                msg = f"{path}: missing table(s) {missing or 'any'}; the file has {available}"
                raise SurveyError(msg)
            for tab in wanted:
                _check_record_type(fh[tab].dtype, f"table {tab!r}", path)
    except SurveyError:
        raise
    except _fits.READ_ERRORS as exc:
        msg = f"{path}: not a readable HDF5 file ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc
    loaded = {}
    for tab in wanted:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", u.UnitsWarning)
                loaded[tab] = QTable.read(path, path=tab)
        except _fits.READ_ERRORS as exc:
            msg = f"{path}: cannot read table {tab!r} ({type(exc).__name__}: {exc})"
            raise SurveyError(msg) from exc
        if not {"ix", "iy"} <= set(loaded[tab].colnames):
            msg = f"{path}: table {tab!r} has no ix/iy pixel-index columns"
            raise SurveyError(msg)
        if len(loaded[tab]) == 0:
            msg = f"{path}: table {tab!r} has no rows (expected one row per spaxel)"
            raise SurveyError(msg)
    idx = {t: _pixel_indices(q, t, path) for t, q in loaded.items()}
    nx = 1 + max(int(ix.max()) for ix, _ in idx.values())
    ny = 1 + max(int(iy.max()) for _, iy in idx.values())
    rows = max(ix.size for ix, _ in idx.values())
    limit = max(_MIN_GRID_AREA, _GRID_PER_ROW * rows)
    if nx * ny > limit:
        msg = (f"{path}: ix/iy span a {ny} x {nx} grid for {rows} spaxels, expected at most "
               f"{limit} pixels ({_GRID_PER_ROW} per spaxel): a damaged pixel index?")
        raise SurveyError(msg)
    first = loaded[wanted[0]]
    wcs = None
    if {"ra_abs", "dec_abs"} <= set(first.colnames):
        ix, iy = idx[wanted[0]]
        wcs = _fit_wcs(ix, iy, np.asarray(u.Quantity(first["ra_abs"], u.deg).value),
                       np.asarray(u.Quantity(first["dec_abs"], u.deg).value), path)
        if wcs is not None:
            wcs.pixel_shape = (nx, ny)
    name = path.name
    if "Name" in first.colnames and len(first):
        name = str(np.asarray(first["Name"][0]).astype(str)).strip()
    maps = {}
    for tab, table in loaded.items():
        ix, iy = idx[tab]
        names = [c for c in table.colnames if c not in _COORDS
                 and (tab == wanted[0] or c not in ("rad_arc", "azi_ang"))]
        for col in names:
            if columns is not None and col not in columns:
                continue
            values = table[col]
            raw = np.asarray(getattr(values, "value", values))
            if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.number):
                continue
            unit = _column_unit(values, path, col)
            base = col[2:]
            if (col.startswith("e_") and base in table.colnames
                    and (columns is None or base in columns)
                    and _column_unit(table[base], path, base) == unit):
                continue  # attached below as the uncertainty of its map
            grid = np.full((ny, nx), np.nan, dtype=np.float32)
            grid[iy, ix] = raw  # vectorised scatter: one assignment per column
            unc = None
            err = f"e_{col}"
            if err in table.colnames and _column_unit(table[err], path, err) == unit:
                egrid = np.full((ny, nx), np.nan, dtype=np.float32)
                egrid[iy, ix] = np.asarray(getattr(table[err], "value", table[err]))
                unc = StdDevUncertainty(egrid)
            key = col if col not in maps else f"{tab}.{col}"
            maps[key] = NDData(grid, unit=unit, mask=~np.isfinite(grid), uncertainty=unc,
                               wcs=wcs, meta={"table": tab, "column": col,
                                              "description": table[col].info.description})
    if not maps:
        msg = f"{path}: no numeric map columns selected (columns={columns!r})"
        raise SurveyError(msg)
    return maps, name


class Pipe3DSurvey(Survey):
    """Pipe3D per-spaxel product files, one galaxy per file, as property maps.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        One ``*.pipe3d.hdf5`` file or a directory of them.
    tables : sequence of str, optional
        Pipe3D tables to read (default: all).
    columns : sequence of str, optional
        Columns to turn into maps (default: all numeric ones).
    catalogue_file : str or `~pathlib.Path`, optional
        Table joined on ``join`` (e.g. ``ecalifa_global.csv`` on ``Name``).
    join : str, optional
        Catalogue column holding the galaxy name.
    psf_fwhm : `~astropy.units.Quantity`, optional
        PSF FWHM of the underlying cubes (CALIFA: ~2.5").
    catalogue : str or `~pathlib.Path`, optional
        Deprecated former name of ``catalogue_file`` (warns with
        `~astro_cl.exceptions.AstroCLDeprecationWarning`; ``catalogue`` is the
        opened table).
    """

    name = "pipe3d"
    description = "Pipe3D per-spaxel HDF5 tables (SSP, ELINES, SFH, indices) as 2-D maps."
    default_kind = "maps"
    renamed_params = {"catalogue": "catalogue_file"}

    def __init__(self, *, path=None, tables=None, columns=None, catalogue_file=None, join="Name",
                 psf_fwhm=2.5 * u.arcsec, catalogue=None):
        self.path = path
        self.tables = tables
        self.columns = columns
        self.catalogue_file = self._renamed_param("catalogue", catalogue, catalogue_file)
        self.join = join
        self.psf_fwhm = psf_fwhm

    def _open(self):
        root = _fits.check_directory(self.path, self.name)
        files = [root] if root.is_file() else sorted(
            p for p in root.iterdir() if _SUFFIX.search(p.name) and p.is_file())
        if not files:
            msg = f"{root}: no Pipe3D files (expected <name>_allpix.pipe3d.hdf5)"
            raise SurveyError(msg)
        ids = [_SUFFIX.sub("", f.name) for f in files]
        table = None if self.catalogue_file is None else _fits.read_table(self.catalogue_file)
        cat, self.galaxies_without_row_, self.rows_without_data_ = _fits.join_catalogue(
            ids, {"file": np.array([str(f) for f in files])}, table, self.join,
            source=self.catalogue_file, survey_name=self.name)
        cat.meta.update({"survey": self.name, "path": str(root)})
        return cat

    def _read_record(self, index):
        row = self.catalogue[index]
        path = Path(str(row["file"]))
        with _fits.reading(path, "Pipe3D file"):
            maps, name = read_pipe3d_maps(path, tables=self.tables, columns=self.columns)
            wcs = next(iter(maps.values())).wcs
            observing = ObservingMeta(pixel_scale=_fits.pixel_scale(wcs),
                                      psf_fwhm=self.psf_fwhm,
                                      redshift=_fits.row_redshift(row, self.catalogue_file),
                                      instrument="Pipe3D")
            return GalaxyRecord(id=str(row["id"]), survey=self.name, maps=maps,
                                properties=row, observing=observing,
                                meta={"file": str(path), "object": name})
