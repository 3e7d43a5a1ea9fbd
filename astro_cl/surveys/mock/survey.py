"""Machinery shared by the ``sdss-mock`` and ``ecalifa-mock`` surveys.

A mock survey draws its population (or twins a real catalogue), lays each
galaxy on the renderer's grid, and either builds records in memory or writes
the real file formats, in parallel and deterministically: galaxy ``i`` only
depends on ``(seed, i)``, never on the worker that made it.
"""

import concurrent.futures as cf
import functools
import hashlib
import inspect
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import NDData
from astropy.table import QTable

from astro_cl.exceptions import SurveyError
from astro_cl.surveys.base import Survey
from astro_cl.surveys.mock import io as mock_io
from astro_cl.surveys.mock.population import draw_galaxy, galaxy_seed, twin_population
from astro_cl.surveys.mock.structure import MAP_UNITS, build_state
from astro_cl.utils.cpus import available_cpus
from astro_cl.utils.morphology import hubble_stage
from astro_cl.utils.parallel import imap_ordered

__all__ = ["MockSurvey", "catalogue_from_rows", "mock_model_version"]

#: Threads simulating the galaxies behind an in-memory mock catalogue; None:
#: the CPUs this process may use (`~astro_cl.utils.available_cpus`), at most 2.
_CATALOGUE_WORKERS = None


def _catalogue_workers():
    if _CATALOGUE_WORKERS is not None:
        return _CATALOGUE_WORKERS
    return min(2, available_cpus())


@functools.cache
def mock_model_version(survey_cls=None):
    """Return the version of astro_cl's mock model: a digest of what the mock galaxies depend on.

    The digest covers the files of :mod:`astro_cl.surveys.mock` (sources and
    data), the module defining ``survey_cls`` (its renderer and record
    layout), and the versions of the packages whose data give the spectra
    (kcorrect's filters; sdss-mangadap's MaStar SSP grid, or its absence). Any
    change to these changes the version, so cached data of an older model is
    never reused.

    Parameters
    ----------
    survey_cls : type, optional
        A `MockSurvey` subclass.

    Returns
    -------
    version : str
        ``"sha256:<hex digest>"``.
    """
    from importlib.metadata import PackageNotFoundError, version

    # the package's sources and any data files shipped beside them
    files = sorted(p for p in Path(__file__).parent.iterdir()
                   if p.is_file() and p.suffix not in (".pyc", ".pyo"))
    if survey_cls is not None:
        files.append(Path(inspect.getfile(survey_cls)))
    digest = hashlib.sha256()
    for source in files:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    try:
        digest.update(f"kcorrect {version('kcorrect')}".encode())
    except PackageNotFoundError:  # pragma: no cover - a dependency
        pass
    try:  # the MaStar SSP grid; without it the mocks fall back to kcorrect's templates
        digest.update(f"sdss-mangadap {version('sdss-mangadap')}".encode())
    except PackageNotFoundError:
        digest.update(b"sdss-mangadap absent")
    return f"sha256:{digest.hexdigest()}"

_COLUMNS = [
    ("id", None), ("ID", None), ("Name", None), ("RA", u.deg), ("DEC", u.deg), ("z", None),
    ("type", None), ("T_type", None), ("environment", None), ("sfms_class", None), ("Re", u.arcsec),
    ("Re_kpc", u.kpc), ("log_Mass", u.dex(u.Msun)), ("log_Mass_total", u.dex(u.Msun)),
    ("log_SFR_Ha", u.dex(u.Msun / u.yr)), ("EW_Ha_cen", u.AA), ("Age_LW_Re_fit", u.dex(u.yr)),
    ("Age_MW_Re_fit", u.dex(u.yr)), ("ZH_LW_Re_fit", u.dex), ("log_NII_Ha_cen", None),
    ("OH_N2_cen", u.dex), ("Sigma_Mass_cen", u.dex(u.Msun / u.pc**2)), ("Av_gas_Re", u.mag),
    ("PA", u.deg), ("ellip", None), ("DL", u.Mpc), ("bulge_fraction", None), ("n_bulge", None),
    ("inclination", u.deg),
]


def _row(params, state):
    s = state.summary
    kpc_arcsec = state.kpc_per_pixel / state.pixel_scale
    return {
        "id": params["name"], "ID": int(params["index"]), "Name": params["name"],
        "RA": params["ra"], "DEC": params["dec"], "z": params["z"], "type": params["type"],
        "T_type": hubble_stage(params["type"]), "environment": params["environment"],
        "sfms_class": s["sfms_class"],
        "Re": params["re_kpc"] / kpc_arcsec, "Re_kpc": params["re_kpc"],
        "log_Mass": s["log_Mass"], "log_Mass_total": state.params["log_mass_total"],
        "log_SFR_Ha": s["log_SFR_Ha"], "EW_Ha_cen": s["EW_Ha_cen"],
        "Age_LW_Re_fit": s["Age_LW_Re_fit"], "Age_MW_Re_fit": s["Age_MW_Re_fit"],
        "ZH_LW_Re_fit": s["ZH_LW_Re_fit"], "log_NII_Ha_cen": s["log_NII_Ha_cen"],
        "OH_N2_cen": s["OH_N2_cen"], "Sigma_Mass_cen": s["Sigma_Mass_cen"],
        "Av_gas_Re": s["Av_gas_Re"], "PA": params["pa"], "ellip": s["ellip"], "DL": s["DL"],
        "bulge_fraction": params["bt"], "n_bulge": params["n_bulge"],
        "inclination": float(np.degrees(np.arccos(np.clip(params["cos_i"], 0, 1)))),
    }


def catalogue_from_rows(rows, meta=None):
    """Build the eCALIFA-style mock catalogue from per-galaxy rows.

    Parameters
    ----------
    rows : list of dict
    meta : dict, optional

    Returns
    -------
    catalogue : `~astropy.table.QTable`
    """
    cols = {}
    for name, unit in _COLUMNS:
        values = [r[name] for r in rows]
        if name in ("id", "Name", "type", "environment", "sfms_class"):
            cols[name] = np.asarray(values, dtype=str) if values else np.array([], str)
        elif name == "ID":
            cols[name] = np.asarray(values, dtype=np.int64)
        else:
            arr = np.asarray(values, dtype=float)
            cols[name] = arr * unit if unit is not None else arr
    return QTable(cols, meta=dict(meta or {}))


def _maps_nd(state, wcs):
    return {k: NDData(v.astype(np.float32), unit=MAP_UNITS[k], wcs=wcs)
            for k, v in state.truth.items()}


def _write_one(survey, index, directory):
    """Render and write galaxy ``index``; return its catalogue row (runs in a worker)."""
    params = survey._params(index)
    state, out, wcs = survey._render(params, index)
    survey._write_files(Path(directory), params, state, out, wcs)
    return _row(params, state)


class MockSurvey(Survey):
    """Base class of the mock surveys (see `SDSSMockSurvey` and `ECALIFAMockSurvey`)."""

    #: ``(module, class)`` of the real-format reader used when ``path`` is given.
    reader_class = ("", "")
    #: Population selection (`~astro_cl.surveys.mock.population.SELECTIONS`).
    selection = "diameter"

    @property
    def thread_safe(self):
        """bool: whether records may be read from several threads at once.

        True when galaxies are simulated in memory (each from its own seeded
        generator); the FITS readers used with ``path`` are not thread-safe.
        """
        return self.path is None

    # -- configuration helpers -------------------------------------------------
    @property
    def fov_arcsec(self):
        """float: field of view (arcsec) used by the diameter selection."""
        return self.size * self.pixel_scale

    def _twin_params(self):
        cache = self.__dict__.get("_twin_cache")
        if cache is None:
            cache = twin_population(self.twin, self.seed, fov_arcsec=self.fov_arcsec)
            self.__dict__["_twin_cache"] = cache
        return cache

    def _n(self):
        return len(self._twin_params()) if self.twin is not None else int(self.n)

    def _params(self, index):
        if self.twin is not None:
            return self._twin_params()[index]
        return draw_galaxy(self.seed, index, fov_arcsec=self.fov_arcsec,
                           selection=self.selection)

    def _state(self, params):
        return build_state(params, (self.size, self.size), self.pixel_scale)

    def _rng(self, index):
        return np.random.default_rng(galaxy_seed(self.seed, index, 1))

    def fingerprint(self):
        """Return what fully determines the generated galaxies, for the preprocessed cache.

        A mock generated in memory is a pure function of its parameters (the
        seed among them) and of astro_cl's mock model, so the cache keys on
        those instead of building the catalogue (which simulates every
        galaxy) to list its ids, or rendering every galaxy to hash its pixels.
        With ``path`` set, the files are what counts and this returns None, as
        it does for a twin catalogue given as a table rather than a file.

        Returns
        -------
        fingerprint : dict or None
            ``survey``, ``class``, ``params`` (the twin catalogue by checksum)
            and ``model_version`` (see `mock_model_version`).
        """
        from astro_cl.utils.io import file_checksum

        if self.path is not None:
            return None
        params = {k: (str(v) if isinstance(v, Path) else v)
                  for k, v in self.get_params(deep=False).items()}
        if self.twin is not None:
            if not isinstance(self.twin, (str, Path)):
                return None
            params["twin"] = file_checksum(self.twin)
        cls = type(self)
        return {"survey": self.name, "class": f"{cls.__module__}.{cls.__qualname__}",
                "params": params, "model_version": mock_model_version(cls)}

    # -- Survey interface --------------------------------------------------------
    def _reader(self):
        reader = self.__dict__.get("_reader_cache")
        if reader is None:
            import importlib

            module, cls_name = self.reader_class
            reader = getattr(importlib.import_module(module), cls_name)(path=self.path)
            self.__dict__["_reader_cache"] = reader
        return reader

    def _open(self):
        if self.path is not None:
            cat = QTable(self._reader().catalogue, copy=False)
            cat.meta["mock"] = self.name
            return cat
        n = self._n()
        if n < 1:
            msg = f"survey {self.name!r}: n must be at least 1, got {self.n!r}"
            raise SurveyError(msg)
        # each row simulates its galaxy's maps: threads overlap the NumPy work,
        # and a row depends only on its index, so the table is the same for any count
        workers = _catalogue_workers()
        workers = workers if n >= 4 * workers else 1
        rows = list(imap_ordered(self._catalogue_row, range(n), workers=workers))
        return catalogue_from_rows(rows, meta=self._meta())

    def _catalogue_row(self, index):
        params = self._params(index)
        return _row(params, self._state(params))

    def _read_record(self, index):
        if self.path is not None:
            rec = self._reader()[index]
            rec.survey = self.name
            return rec
        params = self._params(index)
        state, out, wcs = self._render(params, index)
        return self._record(params, state, out, wcs, self.catalogue[index])

    def write(self, directory, *, workers=1, progress=True):
        """Write the survey in the real file format.

        Parameters
        ----------
        directory : str or `~pathlib.Path`
            Created if needed.
        workers : int, optional
            Worker processes (results do not depend on it).
        progress : bool, optional
            Show a tqdm progress bar.

        Returns
        -------
        catalogue : `~astropy.table.QTable`
            The catalogue written to ``catalogue.ecsv``.
        """
        from tqdm.auto import tqdm

        if self.path is not None:
            msg = f"survey {self.name!r}: reads existing files from {self.path}; nothing to write"
            raise SurveyError(msg)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n = self._n()
        workers = max(1, min(int(workers or 1), available_cpus(), n))
        rows = [None] * n
        bar = tqdm(total=n, desc=f"{self.name} -> {directory}", disable=not progress)
        if workers == 1:
            for i in range(n):
                rows[i] = _write_one(self, i, directory)
                bar.update()
        else:
            with cf.ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_write_one, self, i, directory): i for i in range(n)}
                for fut in cf.as_completed(futures):
                    rows[futures[fut]] = fut.result()
                    bar.update()
        bar.close()
        cat = catalogue_from_rows(rows, meta=self._meta())
        mock_io.write_catalogue(directory / "catalogue.ecsv", cat)
        return cat

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("_catalogue_cache", "_index", "_reader_cache"):
            state.pop(key, None)
        return state

    # -- to implement ------------------------------------------------------------
    def _meta(self):
        raise NotImplementedError

    def _render(self, params, index):
        raise NotImplementedError

    def _record(self, params, state, out, wcs, row):
        raise NotImplementedError

    def _write_files(self, directory, params, state, out, wcs):
        raise NotImplementedError
