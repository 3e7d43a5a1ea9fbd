"""A chunked, resumable store of preprocessed galaxies (Zarr), filled by many workers at once.

`PreprocessedStore` is the scale-out sibling of
`~astro_cl.preprocess.cache.PreprocessedCache`: the same key (survey,
preprocessing and fitted state, input kind, targets and source data, see
`~astro_cl.preprocess.cache.PreprocessedCache.key`), but each galaxy is
transformed and written on its own, by threads, worker processes or a Dask
cluster (`~astro_cl.utils.executors.TaskRunner`), into its own chunk. An entry
is a directory ``<survey>-<key>.store``::

    store.json        layout: key, ids, array shapes and dtypes, batch metadata
    arrays.zarr/      Zarr v3 group, one array per field (data, mask, ...)
                      chunked one galaxy per chunk along the first axis
    rows/<row>.json   per-galaxy completion: "done" with the SHA-256 of each
                      of its arrays, or "failed" with the error
    preprocessor/     the fitted preprocessor (npz + JSON)
    complete.json     written once every galaxy is done or failed: the row
                      records in one file, and a checksum per array

Every galaxy's transform is independent and deterministic (BLAS runs one
thread per worker), so any executor and any number of workers write the
same bytes. A run that is killed, or that loses a worker, resumes by doing
only the galaxies without a record. A galaxy that fails (a corrupt file) is
recorded with its error and the others go on (``on_error="skip"``).

The preprocessor is fitted on a reproducible sample of the survey (at most
`DEFAULT_FIT_SAMPLE` galaxies, drawn with a seed) and kept beside the
entries, so a later run, `astro-cl train` after `astro-cl preprocess`, reuses
it. Under ``torchrun`` (a `torch.distributed` job), rank 0 fits and builds
while the other ranks wait, then they open what rank 0 wrote.

Readers (`StoredArrays`) are batch sources (``len``, ``ids``, ``meta``,
``batch(indices)``) that read only the chunks asked for.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from astro_cl.exceptions import AstroCLError, AstroCLWarning, ValidationError
from astro_cl.preprocess.cache import (
    PreprocessedCache,
    _plain,
    _record_row,
    _slug,
    _swap_in,
    _target_names,
    positions_of,
    rows_of,
)
from astro_cl.surveys.base import Survey
from astro_cl.utils.io import atomic_write

__all__ = ["DEFAULT_FIT_SAMPLE", "STORE_FORMAT_VERSION", "BuildSummary", "PreprocessedStore",
           "StoreError", "StoreWarning", "StoredArrays", "fit_preprocessor", "fit_sample_rows"]

#: Layout version of a store entry.
STORE_FORMAT_VERSION = 1
#: Galaxies the preprocessor is fitted on when no sample size is given.
DEFAULT_FIT_SAMPLE = 1000
#: Seconds the other ranks of a torch.distributed job wait for rank 0's build.
DISTRIBUTED_TIMEOUT = 7 * 24 * 3600
#: Passes over the missing galaxies when workers are lost.
_MAX_PASSES = 5
_ON_ERROR = ("raise", "skip")


class StoreError(AstroCLError):
    """A store entry is corrupt or incomplete, or could not be built."""


class StoreWarning(AstroCLWarning):
    """A store entry is being repaired, or galaxies failed and were skipped."""


# -- summaries ----------------------------------------------------------------------------
@dataclasses.dataclass
class BuildSummary:
    """What one `PreprocessedStore.get_or_build` call did.

    Parameters
    ----------
    entry : `~pathlib.Path`
        The entry directory.
    total : int
        Galaxies in the survey.
    done : int
        Galaxies transformed and written by this call.
    skipped : int
        Galaxies already done (or failed) before this call.
    failed : dict of str to str
        Galaxy id -> error, for every galaxy of the entry that failed.
    wall : float
        Seconds this call took.
    fit_wall : float
        Of which fitting the preprocessor (0 when reused).
    executor : str
        ``"threads"``, ``"processes"`` or ``"dask"``.
    workers : int
        Workers the galaxies were spread over.
    """

    entry: Path
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: dict = dataclasses.field(default_factory=dict)
    wall: float = 0.0
    fit_wall: float = 0.0
    executor: str = "threads"
    workers: int = 1

    @property
    def rate(self):
        """float: galaxies written per second of wall time by this call."""
        return self.done / self.wall if self.wall > 0 else 0.0

    def __str__(self):
        unit = {"threads": "thread", "processes": "process"}.get(self.executor, "Dask worker")
        lines = [f"{self.entry}: {self.total} galaxies; {self.done} done now, {self.skipped} "
                 f"already done, {len(self.failed)} failed; {self.wall:.1f} s wall "
                 f"({self.rate:.2f} galaxies/s on {self.workers} {unit}"
                 + ("es" if unit == "process" and self.workers != 1 else
                    "s" if self.workers != 1 else "")
                 + (f"; fit {self.fit_wall:.1f} s" if self.fit_wall else "") + ")"]
        lines += [f"  failed {gid}: {reason}" for gid, reason in sorted(self.failed.items())]
        return "\n".join(lines)


# -- a sample of a survey -------------------------------------------------------------------
def fit_sample_rows(n, size=None, seed=0):
    """Return the catalogue rows a preprocessor is fitted on (sorted, reproducible).

    Parameters
    ----------
    n : int
        Galaxies in the survey.
    size : int, optional
        Sample size (default `DEFAULT_FIT_SAMPLE`); the whole survey when at
        least ``n``.
    seed : int, optional
        Seed of the draw.

    Returns
    -------
    rows : `numpy.ndarray` of int

    Examples
    --------
    >>> from astro_cl.preprocess.store import fit_sample_rows
    >>> fit_sample_rows(10, 4, seed=1).tolist() == fit_sample_rows(10, 4, seed=1).tolist()
    True
    >>> fit_sample_rows(3, 10).tolist()
    [0, 1, 2]
    """
    size = DEFAULT_FIT_SAMPLE if size is None else size
    if isinstance(size, bool) or int(size) != size or int(size) < 1:
        msg = f"fit_sample: expected a positive integer, got {size!r}"
        raise ValidationError(msg)
    if int(size) >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(int(seed)).choice(n, int(size), replace=False))


class _SurveySample(Survey):
    """Some rows of a survey, read lazily from it (what a preprocessor is fitted on)."""

    name = "sample"

    def __init__(self, *, survey=None, rows=()):
        self.survey = survey
        self.rows = rows

    @property
    def default_kind(self):
        return self.survey.default_kind

    @property
    def thread_safe(self):
        return bool(getattr(self.survey, "thread_safe", False))

    def _open(self):
        return self.survey.catalogue[np.asarray(self.rows, dtype=int)]

    def _read_record(self, index):
        return self.survey[int(self.rows[index])]


# -- the worker's side ------------------------------------------------------------------------
@dataclasses.dataclass
class _BuildContext:
    """What every worker needs to transform and write galaxies (sent once per worker)."""

    entry: str
    ids: list
    survey: object
    preprocessor: object
    kind: str
    targets: object
    fields: dict
    on_error: str
    retry_failed: bool
    thread_safe: bool

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_arrays", None)
        return state

    def array(self, name):
        arrays = self.__dict__.setdefault("_arrays", {})
        if name not in arrays:
            import zarr

            arrays[name] = zarr.open_array(Path(self.entry) / "arrays.zarr" / name, mode="r+")
        return arrays[name]


def _row_path(entry, row):
    return Path(entry) / "rows" / f"{int(row):08d}.json"


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # written by a killed writer: not a record


def _write_json(path, value):
    with atomic_write(path) as fh:
        json.dump(value, fh, indent=1, sort_keys=True)


def _describe(exc):
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _conform(arrays, fields, gid):
    """Return the arrays of one galaxy in the layout's shapes and dtypes (missing ones filled)."""
    from astro_cl.preprocess.cache import _missing

    out = {}
    for name, spec in fields.items():
        shape, dtype = tuple(spec["shape"][1:]), np.dtype(spec["dtype"])
        value = arrays.get(name)
        if value is None:  # this galaxy lacks a field the first one had
            value = _missing(name, shape, dtype)
        value = np.asarray(value)
        if value.shape != shape:
            msg = (f"store: galaxy {gid!r} gives {name} of shape {value.shape}, the first "
                   f"galaxy {shape}; resample to a common grid")
            raise ValidationError(msg)
        out[name] = np.ascontiguousarray(value.astype(dtype, copy=False))
    return out


def _digest(value):
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def _transform(ctx, row):
    """Read and preprocess one galaxy (under the worker lock when not thread-safe)."""
    from astro_cl.utils.executors import WORKER_LOCK

    gid = ctx.ids[row]
    with contextlib.nullcontext() if ctx.thread_safe else WORKER_LOCK:
        rec = ctx.survey[gid]
        return rec, _record_row(rec, ctx.preprocessor, ctx.kind, ctx.targets)


def _build_row(ctx, row):
    """Transform galaxy ``row`` and write it into the store (a task; idempotent)."""
    path = _row_path(ctx.entry, row)
    existing = _read_json(path)
    if existing is not None and (existing.get("status") == "done" or not ctx.retry_failed):
        return dict(existing, skipped=True)
    gid = ctx.ids[row]
    try:
        _, arrays = _transform(ctx, row)
        values = _conform(arrays, ctx.fields, gid)
    except Exception as exc:
        if ctx.on_error == "raise":
            exc.add_note(f"while preprocessing galaxy {gid!r} (row {row}) into {ctx.entry}")
            raise
        record = {"row": int(row), "id": gid, "status": "failed", "error": _describe(exc)}
        _write_json(path, record)
        return record
    for name, value in values.items():
        ctx.array(name)[row] = value
    record = {"row": int(row), "id": gid, "status": "done",
              "sha256": {name: _digest(value) for name, value in values.items()}}
    # the record is the commit: written (atomically) after the chunks
    _write_json(path, record)
    return record


# -- the reader -----------------------------------------------------------------------------
class StoredArrays:
    """A complete store entry: preprocessed galaxies read chunk by chunk (a batch source).

    Parameters
    ----------
    entry : str or `~pathlib.Path`
        The entry directory.
    layout : dict
        Its parsed ``store.json``.
    index : dict
        Its parsed ``complete.json``.

    Notes
    -----
    Use `PreprocessedStore.get_or_build` or `PreprocessedStore.open` rather
    than building this directly. Galaxies that failed are not part of the
    source (`failed` lists them); positions count the others, in survey order.
    """

    def __init__(self, entry, layout, index):
        self.directory = Path(entry)
        self.layout = layout
        self.index = index
        rows = sorted(int(r) for r, rec in index["rows"].items() if rec["status"] == "done")
        self._rows = np.asarray(rows, dtype=int)
        self._ids = [layout["ids"][r] for r in rows]
        self._pos = {gid: i for i, gid in enumerate(self._ids)}
        self._arrays = None
        self.summary = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    @property
    def arrays(self):
        """Dict of str to `zarr.Array`: the stored arrays (opened read-only on first use)."""
        if self._arrays is None:
            import zarr

            self._arrays = {name: zarr.open_array(self.directory / "arrays.zarr" / name,
                                                  mode="r")
                            for name in self.layout["fields"]}
        return self._arrays

    def __len__(self):
        return len(self._ids)

    @property
    def ids(self):
        """Galaxy ids (list of str), in survey order, without the failed ones."""
        return list(self._ids)

    @property
    def meta(self):
        """dict: batch metadata (survey, kind, preprocessor, bands, target names and units)."""
        return dict(self.layout.get("batch_meta", {}))

    @property
    def failed(self):
        """Dict of str to str: galaxy id -> error, for the galaxies that failed."""
        return {rec["id"]: rec["error"] for rec in self.index["rows"].values()
                if rec["status"] == "failed"}

    @property
    def shape(self):
        """Shape ``(N, C, H, W)`` of the data of the galaxies in the source (tuple of int)."""
        return (len(self), *self.layout["fields"]["data"]["shape"][1:])

    @property
    def preprocessor(self):
        """`~astro_cl.preprocess.Preprocessor` or None: the fitted preprocessor of the entry."""
        path = self.directory / "preprocessor"
        return _load_state(path) if (path / "preprocessor.json").is_file() else None

    def index_of(self, ids):
        """Return the positions of galaxy ids.

        Parameters
        ----------
        ids : sequence of str

        Returns
        -------
        positions : `numpy.ndarray` of int
        """
        return positions_of(self._pos, ids, f"store {self.directory.name}")

    def _positions(self, indices):
        return rows_of(indices, len(self), f"store {self.directory.name}")

    def read(self, name, indices):
        """Read one array of some galaxies.

        Parameters
        ----------
        name : str
            ``"data"``, ``"mask"``, ...
        indices : sequence of int, slice or `numpy.ndarray`
            Positions (in `ids`).

        Returns
        -------
        values : `numpy.ndarray`
        """
        return self._read(name, self._rows[self._positions(indices)])

    def _read(self, name, rows):
        arr = self.arrays[name]
        if rows.size == 0:
            return np.zeros((0, *arr.shape[1:]), dtype=arr.dtype)
        unique, inverse = np.unique(rows, return_inverse=True)
        if unique[-1] - unique[0] + 1 == unique.size:  # one contiguous run: one slice
            values = arr[int(unique[0]):int(unique[-1]) + 1]
        else:
            values = arr.oindex[unique]
        values = np.asarray(values)
        return values if np.array_equal(unique, rows) else values[inverse.reshape(-1)]

    def batch(self, indices):
        """Read some galaxies as a `~astro_cl.data.batch.TensorBatch`.

        Parameters
        ----------
        indices : sequence of int, slice, `numpy.ndarray` or `torch.Tensor`
            Positions (in `ids`).

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        import torch

        from astro_cl.data.batch import TensorBatch

        pos = self._positions(indices)
        rows = self._rows[pos]
        fields = {name: torch.from_numpy(np.ascontiguousarray(self._read(name, rows)))
                  for name in self.layout["fields"]}
        return TensorBatch(ids=[self._ids[i] for i in pos.tolist()], meta=self.meta, **fields)

    def target_maps(self, indices):
        """Read the stored regression targets of some galaxies as maps with units.

        Parameters
        ----------
        indices : sequence of int, slice or `numpy.ndarray`
            Positions (in `ids`).

        Returns
        -------
        maps : list of dict of str to `~astropy.nddata.NDData`
            One dict per galaxy, property name -> 2-D map (float32, the unit
            it was stored with, the target mask as ``mask``; no WCS).

        Raises
        ------
        KeyError
            If the entry was built without ``targets``.
        """
        from astropy import units as u
        from astropy.nddata import NDData

        meta = self.meta
        if "targets" not in self.layout["fields"] or "target_names" not in meta:
            msg = (f"store {self.directory.name}: no regression targets "
                   "(build it with get_or_build(..., targets=...))")
            raise KeyError(msg)
        names = list(meta["target_names"])
        units = [u.Unit(s) for s in meta.get("target_units", [""] * len(names))]
        data = self.read("targets", indices)
        masks = self.read("target_mask", indices) if "target_mask" in self.layout["fields"] \
            else None
        return [{name: NDData(data[i, k], unit=unit,
                              mask=None if masks is None else masks[i, k].astype(bool))
                 for k, (name, unit) in enumerate(zip(names, units, strict=True))}
                for i in range(len(data))]

    def __repr__(self):
        return (f"<StoredArrays {self.directory.name}: {len(self)} galaxies"
                + (f" ({len(self.failed)} failed)" if self.failed else "")
                + f", data {self.shape}>")


# -- the store ---------------------------------------------------------------------------------
class PreprocessedStore:
    """A directory of chunked, resumable stores of preprocessed surveys.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Where entries and fitted preprocessors live (created on first build).
        May be shared with a `~astro_cl.preprocess.PreprocessedCache`.
    verify : {"full", "size"}, optional
        On open, ``"full"`` reads every galaxy once and checks it against its
        SHA-256; ``"size"`` only checks the layout and the completion records.
    checksum : {"content", "stat"}, optional
        How source files enter the key (as for the cache): SHA-256 of their
        content, or their size and modification time.

    Examples
    --------
    >>> store = PreprocessedStore("store")                          # doctest: +SKIP
    >>> source = store.get_or_build(survey, preprocessor=CubePCA(),  # doctest: +SKIP
    ...                             executor="dask", workers=4, on_error="skip")
    >>> print(source.summary)                                       # doctest: +SKIP
    """

    def __init__(self, directory, *, verify="full", checksum="content"):
        self.directory = Path(directory)
        if verify not in ("full", "size"):
            msg = f"PreprocessedStore.verify: expected 'full' or 'size', got {verify!r}"
            raise ValidationError(msg)
        if checksum not in ("content", "stat"):
            msg = f"PreprocessedStore.checksum: expected 'content' or 'stat', got {checksum!r}"
            raise ValidationError(msg)
        self.verify = verify
        self.checksum = checksum

    def __repr__(self):
        return f"PreprocessedStore({str(self.directory)!r}, verify={self.verify!r})"

    # -- keys -------------------------------------------------------------------------
    def _cache(self):
        return PreprocessedCache(self.directory, verify=self.verify, checksum=self.checksum)

    def key(self, survey, *, preprocessor=None, kind=None, targets=None, source=None):
        """Return the key of a survey + preprocessing combination, and what it hashes.

        The inputs are those of `~astro_cl.preprocess.PreprocessedCache.key`;
        the key differs from the cache's (another layout).

        Parameters
        ----------
        survey : `~astro_cl.surveys.base.Survey`
        preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
            Must be fitted.
        kind : str, optional
        targets : str or sequence of str, optional
        source : dict, optional
            ``inputs["source"]`` of an earlier call, not computed again.

        Returns
        -------
        key : str
        inputs : dict
        """
        cache_key, inputs = self._cache().key(survey, preprocessor=preprocessor, kind=kind,
                                              targets=targets, source=source)
        text = json.dumps({"cache_key": cache_key, "store_format": STORE_FORMAT_VERSION})
        return hashlib.sha256(text.encode()).hexdigest(), inputs

    def entry_path(self, survey, key):
        """Return the directory of the entry of ``key``.

        Parameters
        ----------
        survey : `~astro_cl.surveys.base.Survey`
        key : str

        Returns
        -------
        entry : `~pathlib.Path`
        """
        return self.directory / f"{_slug(survey.name)}-{key[:20]}.store"

    def entries(self):
        """Return the entry directories present.

        Returns
        -------
        entries : list of `~pathlib.Path`
        """
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.store") if p.is_dir())

    # -- fitting --------------------------------------------------------------------------
    def fit_preprocessor(self, survey, preprocessor, *, kind=None, targets=None,
                         fit_sample=None, fit_seed=0, source=None, distributed=None,
                         device=None):
        """Fit a preprocessor on a sample of a survey, or reuse the fit kept here.

        Parameters
        ----------
        survey : `~astro_cl.surveys.base.Survey`
        preprocessor : `~astro_cl.preprocess.Preprocessor`
            Fitted in place (its fitted arrays are set); returned as is when
            already fitted.
        kind, targets : optional
            As for `get_or_build` (they enter the key of the survey).
        fit_sample : int, optional
            Galaxies to fit on (a seeded draw, `fit_sample_rows`). None: reuse
            the fit kept here for this survey and preprocessor configuration
            whatever its sample, else fit on `DEFAULT_FIT_SAMPLE` galaxies.
            A number: reuse a kept fit only if it was drawn the same way.
        fit_seed : int, optional
            Seed of the sample.
        source : dict, optional
            The survey's source fingerprint if already computed (see `key`).
        distributed : bool, optional
            Under a `torch.distributed` job, fit on rank 0 only and share the
            result (default: whenever such a job is running).
        device : str, optional
            Device the job uses (for joining its process group if not yet joined).

        Returns
        -------
        preprocessor : `~astro_cl.preprocess.Preprocessor`
        """
        if preprocessor.is_fitted:
            return preprocessor
        group = _process_group(distributed, device)
        if group is None:
            self._fit_local(survey, preprocessor, kind, targets, fit_sample, fit_seed, source)
            return preprocessor
        return _rank_zero_first(
            group,
            lambda: str(self._fit_local(survey, preprocessor, kind, targets, fit_sample,
                                        fit_seed, source)),
            lambda where: _copy_state(preprocessor, _load_state(where)),
            what=f"fitting {preprocessor.name!r} on survey {survey.name!r}") or preprocessor

    def _fit_local(self, survey, preprocessor, kind, targets, fit_sample, fit_seed, source):
        """Fit (or reuse the kept fit) in this process; return the fit's directory."""
        if source is None:
            _, inputs = self.key(survey, kind=kind, targets=targets)
            source = inputs["source"]
        _, inputs = self.key(survey, kind=kind, targets=targets, source=source)
        text = json.dumps({"survey": inputs, "preprocessor": {
            "name": preprocessor.name, "version": getattr(preprocessor, "version", None),
            "params": _plain(preprocessor.get_params(deep=False))}}, sort_keys=True)
        fit_key = hashlib.sha256(text.encode()).hexdigest()
        where = (self.directory / "fitted"
                 / f"{_slug(survey.name)}-{_slug(preprocessor.name)}-{fit_key[:20]}")
        n = len(survey)
        rows = None if fit_sample is None else fit_sample_rows(n, fit_sample, fit_seed)
        kept = _read_json(where / "fit.json")
        if kept is not None and (rows is None or (kept.get("rows") == rows.tolist()
                                                 and kept.get("seed") == int(fit_seed))):
            try:
                _copy_state(preprocessor, _load_state(where))
                return where
            except AstroCLError as exc:
                warnings.warn(f"fitted preprocessor {where}: {exc}; fitting again",
                              StoreWarning, stacklevel=3)
        if rows is None:
            rows = fit_sample_rows(n, None, fit_seed)
        sample = survey if len(rows) == n else _SurveySample(survey=survey, rows=rows)
        preprocessor.fit(sample)
        self.directory.joinpath("fitted").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{where.name}.", suffix=".tmp", dir=where.parent))
        try:
            _save_state(preprocessor, tmp)
            ids = survey.ids
            _write_json(tmp / "fit.json", {"rows": rows.tolist(), "seed": int(fit_seed),
                                           "survey_size": n,
                                           "ids": [ids[i] for i in rows.tolist()]})
            _swap_in(tmp, where)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return where

    # -- building ---------------------------------------------------------------------------
    def get_or_build(self, survey, *, preprocessor=None, kind=None, targets=None,
                     progress=True, executor="threads", workers=None, scheduler=None,
                     client=None, on_error="raise", retry_failed=False, fit_sample=None,
                     fit_seed=0, distributed=None, device=None):
        """Return the stored galaxies of a survey, building what is missing.

        Parameters
        ----------
        survey : `~astro_cl.surveys.base.Survey`
        preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
            Applied to every galaxy; fitted first (on a sample, see
            `fit_preprocessor`) if it is not fitted. Without one, the raw
            arrays of ``kind`` are stored.
        kind : str, optional
            Field stored without a preprocessor (default: the survey's).
        targets : str or sequence of str, optional
            ``"maps"`` or map names to store as regression targets.
        progress : bool, optional
            Show a progress bar over galaxies (and the Dask dashboard's
            address when there is one).
        executor : {"threads", "processes", "dask"}, optional
            Where galaxies are transformed (`~astro_cl.utils.executors.TaskRunner`).
            Threads are used only when the survey and the preprocessor are
            ``thread_safe``; otherwise one thread, with a `StoreWarning`.
        workers : int, optional
            Threads or processes, or the workers of the LocalCluster started
            for ``"dask"`` without ``scheduler``/``client`` (default: 1 thread;
            the usable CPUs for processes and Dask).
        scheduler : str, optional
            Address of an existing Dask scheduler (``executor="dask"``).
        client : `distributed.Client`, optional
            An open Dask client to use (``executor="dask"``).
        on_error : {"raise", "skip"}, optional
            A galaxy that cannot be read or preprocessed stops the build
            (``"raise"``), or is recorded with its error and left out
            (``"skip"``); the others go on.
        retry_failed : bool, optional
            Try the galaxies recorded as failed again (a completed entry is
            then reopened for them).
        fit_sample, fit_seed : optional
            See `fit_preprocessor`.
        distributed : bool, optional
            Under a `torch.distributed` job, build on rank 0 only; the other
            ranks wait and open the entry (default: whenever such a job runs).
        device : str, optional
            The job's device, to join its process group if not yet joined.

        Returns
        -------
        source : `StoredArrays`
            With ``summary``, a `BuildSummary` of this call.

        Raises
        ------
        StoreError
            If galaxies failed with ``on_error="raise"`` are still recorded,
            workers keep being lost, or rank 0 failed to build.
        """
        if on_error not in _ON_ERROR:
            msg = f"on_error: expected one of {list(_ON_ERROR)}, got {on_error!r}"
            raise ValidationError(msg)
        from astro_cl.utils.executors import EXECUTORS

        if executor not in EXECUTORS:
            msg = f"executor: expected one of {list(EXECUTORS)}, got {executor!r}"
            raise ValidationError(msg)

        def build():
            return self._get_or_build(survey, preprocessor, kind, targets, progress, executor,
                                      workers, scheduler, client, on_error, retry_failed,
                                      fit_sample, fit_seed)

        group = _process_group(distributed, device)
        if group is None:
            return build()
        start = time.perf_counter()
        holder = {}

        def lead():
            holder["source"] = build()
            return str(holder["source"].directory)

        def follow(where):
            holder["source"] = self.open(where, verify="size")
            if preprocessor is not None and not preprocessor.is_fitted:
                _copy_state(preprocessor, holder["source"].preprocessor)

        _rank_zero_first(group, lead, follow,
                         what=f"building the store of survey {survey.name!r} in {self.directory}")
        source = holder["source"]
        if source.summary is None:  # another rank built it
            source.summary = BuildSummary(entry=source.directory, total=len(survey),
                                          skipped=len(source) + len(source.failed),
                                          failed=source.failed,
                                          wall=time.perf_counter() - start, executor=executor)
        return source

    def _get_or_build(self, survey, preprocessor, kind, targets, progress, executor, workers,
                      scheduler, client, on_error, retry_failed, fit_sample, fit_seed):
        start = time.perf_counter()
        kind = kind or survey.default_kind
        source, fit_wall = None, 0.0
        if preprocessor is not None and not preprocessor.is_fitted:
            _, inputs = self.key(survey, kind=kind, targets=targets)
            source = inputs["source"]
            t0 = time.perf_counter()
            self._fit_local(survey, preprocessor, kind, targets, fit_sample, fit_seed, source)
            fit_wall = time.perf_counter() - t0
        key, inputs = self.key(survey, preprocessor=preprocessor, kind=kind, targets=targets,
                               source=source)
        entry = self.entry_path(survey, key)
        summary = BuildSummary(entry=entry, executor=executor, fit_wall=fit_wall)
        if (entry / "complete.json").is_file():
            try:
                found = self._open(entry, key, self.verify)
            except StoreError as exc:
                warnings.warn(f"store entry {entry}: {exc}; rebuilding what is missing",
                              StoreWarning, stacklevel=3)
            else:
                if not (retry_failed and found.failed):
                    summary.total = len(found) + len(found.failed)
                    summary.skipped, summary.failed = summary.total, found.failed
                    summary.wall = time.perf_counter() - start
                    found.summary = summary
                    return found
            (entry / "complete.json").unlink(missing_ok=True)
        ids = [str(i) for i in survey.ids]
        if not ids:
            msg = f"store: survey {survey.name!r} has no galaxies"
            raise ValidationError(msg)
        summary.total = len(ids)
        ctx = _BuildContext(entry=str(entry), ids=ids, survey=survey, preprocessor=preprocessor,
                            kind=kind, targets=targets, fields={}, on_error=on_error,
                            retry_failed=retry_failed, thread_safe=_thread_safe(survey,
                                                                                preprocessor))
        if executor == "threads" and (workers or 1) > 1 and not ctx.thread_safe:
            unsafe = [f"{what} {obj.name!r}" for what, obj in (("survey", survey),
                                                               ("preprocessor", preprocessor))
                      if obj is not None and not getattr(obj, "thread_safe", False)]
            warnings.warn(f"store: building {entry.name} in one thread, not {workers}: "
                          f"{' and '.join(unsafe)} not marked thread_safe", StoreWarning,
                          stacklevel=3)
            workers = 1
        layout, fresh = self._layout(entry, key, inputs, ctx, survey, preprocessor, summary)
        ctx.fields = layout["fields"]
        self._run(ctx, summary, progress, executor, workers, scheduler, client, fresh)
        index = self._finish(entry, key, len(ids))
        found = self._open(entry, key, "size", layout=layout, index=index)
        summary.failed = found.failed
        summary.wall = time.perf_counter() - start
        found.summary = summary
        if summary.failed:
            warnings.warn(f"store {entry.name}: {len(summary.failed)} of {len(ids)} galaxies "
                          f"failed and are left out, e.g. {next(iter(summary.failed.items()))}",
                          StoreWarning, stacklevel=3)
        return found

    def _layout(self, entry, key, inputs, ctx, survey, preprocessor, summary):
        """Return the entry's layout, creating it from the first galaxy that can be read."""
        layout = _read_json(entry / "store.json")
        if layout is not None and layout.get("key") == key \
                and layout.get("format_version") == STORE_FORMAT_VERSION:
            return layout, 0
        # a new entry, or one whose layout was never committed: start it afresh
        if entry.exists():
            shutil.rmtree(entry)
        (entry / "rows").mkdir(parents=True)
        if preprocessor is not None:
            _save_state(preprocessor, entry / "preprocessor")
        for row in range(len(ctx.ids)):
            try:
                rec, arrays = _transform(ctx, row)
                break
            except Exception as exc:
                if ctx.on_error == "raise":
                    exc.add_note(f"while preprocessing galaxy {ctx.ids[row]!r} (row {row}) "
                                 f"into {entry}")
                    raise
                _write_json(_row_path(entry, row), {"row": row, "id": ctx.ids[row],
                                                    "status": "failed",
                                                    "error": _describe(exc)})
        else:
            msg = f"store {entry}: no galaxy of survey {survey.name!r} could be read"
            raise StoreError(msg)
        import zarr
        from zarr.codecs import ZstdCodec

        n = len(ctx.ids)
        fields = {name: {"shape": [n, *np.shape(value)], "dtype": np.asarray(value).dtype.str}
                  for name, value in arrays.items()}
        group = zarr.open_group(entry / "arrays.zarr", mode="w")
        for name, spec in fields.items():
            group.create_array(name, shape=tuple(spec["shape"]), dtype=spec["dtype"],
                               chunks=(1, *spec["shape"][1:]),
                               compressors=ZstdCodec(level=3, checksum=False))
        batch_meta = {"survey": survey.name, "kind": ctx.kind,
                      "preprocessor": None if preprocessor is None else preprocessor.name}
        if ctx.kind == "images" and rec.bands:
            batch_meta["bands"] = list(rec.bands)
        if ctx.targets is not None:
            names = _target_names(ctx.targets) or list(rec.maps)
            batch_meta["target_names"] = names
            batch_meta["target_units"] = [rec.maps[t].unit.to_string() for t in names]
        layout = {"format_version": STORE_FORMAT_VERSION, "key": key, "ids": ctx.ids,
                  "fields": fields, "batch_meta": batch_meta, "inputs": inputs,
                  "chunking": "one galaxy per chunk along axis 0"}
        _write_json(entry / "store.json", layout)
        # the first galaxy read gave the layout: write it rather than read it again
        ctx.fields = fields
        try:
            values = _conform(arrays, fields, ctx.ids[row])
        except Exception as exc:  # pragma: no cover - the layout is this galaxy's
            msg = f"store {entry}: galaxy {ctx.ids[row]!r} does not fit its own layout ({exc})"
            raise StoreError(msg) from None
        for name, value in values.items():
            ctx.array(name)[row] = value
        _write_json(_row_path(entry, row), {
            "row": int(row), "id": ctx.ids[row], "status": "done",
            "sha256": {name: _digest(value) for name, value in values.items()}})
        summary.done += 1
        return layout, row + 1

    def _run(self, ctx, summary, progress, executor, workers, scheduler, client, fresh):
        from tqdm.auto import tqdm

        from astro_cl.utils.executors import TaskRunner

        entry = Path(ctx.entry)

        def pending():
            out = []
            for row in range(len(ctx.ids)):
                rec = _read_json(_row_path(entry, row))
                if rec is None or (ctx.retry_failed and rec.get("status") == "failed"):
                    out.append(row)
            return out

        todo = todo_first = pending()
        # rows recorded before this call (not the `fresh` ones written while laying out)
        summary.skipped = len(ctx.ids) - len(todo) - fresh
        if not todo:
            return
        with TaskRunner(executor, workers=workers, scheduler=scheduler,
                        client=client) as runner:
            summary.workers = runner.n_workers
            if progress and executor == "dask":
                link = runner.dashboard_link
                print(f"Dask cluster {runner.client.scheduler.address}: "
                      + (f"dashboard at {link}" if link else "no dashboard (install bokeh)"),
                      file=sys.stderr)
            bar = tqdm(total=len(ctx.ids), initial=len(ctx.ids) - len(todo),
                       desc=f"preprocessing {ctx.survey.name}", unit="galaxy",
                       disable=not progress)

            def count(item, record):
                bar.update()

            try:
                for _ in range(_MAX_PASSES):
                    # the records on disk say what is left: a lost worker's galaxy
                    # that was written after all is not done again
                    results, lost = runner.run(_build_row, ctx, todo, on_result=count)
                    if not lost:
                        break
                    todo = pending()
                    if not todo:
                        break
                    if not results:  # the workers are coming back (a restart): give them time
                        time.sleep(1.0)
                else:
                    last = runner.last_lost_error
                    msg = (f"store {entry}: workers were lost {_MAX_PASSES} times"
                           + (f" (last: {_describe(last)})" if last is not None else "")
                           + f"; {len(pending())} galaxies are missing; run again to resume "
                           "(a script that starts worker processes must do so under "
                           "`if __name__ == '__main__':`)")
                    raise StoreError(msg)
            finally:
                bar.close()
                # counted on disk: a galaxy whose worker was lost after writing it is
                # done all the same, though its result never came back
                summary.done += sum(1 for row in todo_first if (_read_json(
                    _row_path(entry, row)) or {}).get("status") == "done")

    def _finish(self, entry, key, n):
        """Write ``complete.json`` once every galaxy has a record; return it."""
        rows, missing = {}, []
        for row in range(n):
            rec = _read_json(_row_path(entry, row))
            if rec is None:
                missing.append(row)
            else:
                rec.pop("skipped", None)
                rows[str(row)] = rec
        if missing:
            msg = (f"store {entry}: {len(missing)} galaxies have no completion record "
                   f"(e.g. row {missing[0]}); run again to resume")
            raise StoreError(msg)
        # every galaxy has its record: what a killed writer left half-written (Zarr's
        # ".partial" chunks, our ".tmp" records) is garbage now
        for leftover in [*(entry / "arrays.zarr").rglob("*.partial"),
                         *(entry / "rows").glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)
        done = [rows[str(r)] for r in range(n) if rows[str(r)]["status"] == "done"]
        fields = _read_json(entry / "store.json")["fields"]
        index = {"format_version": STORE_FORMAT_VERSION, "key": key, "rows": rows,
                 "n_done": len(done), "n_failed": n - len(done),
                 "sha256": {name: hashlib.sha256("".join(
                     r["sha256"][name] for r in done).encode()).hexdigest() for name in fields}}
        _write_json(entry / "complete.json", index)
        return index

    # -- opening --------------------------------------------------------------------------
    def open(self, entry, *, verify=None):
        """Open a complete entry by its directory.

        Parameters
        ----------
        entry : str or `~pathlib.Path`
            The entry directory (``source.directory`` of a built store).
        verify : {"full", "size"}, optional
            Default: this store's ``verify``.

        Returns
        -------
        source : `StoredArrays`

        Raises
        ------
        StoreError
            If the entry is incomplete or corrupt.
        """
        layout = _read_json(Path(entry) / "store.json")
        if layout is None:
            msg = f"store entry {entry}: store.json is missing or unreadable"
            raise StoreError(msg)
        return self._open(Path(entry), layout.get("key"), verify or self.verify)

    def _open(self, entry, key, verify, *, layout=None, index=None):
        layout = layout or _read_json(entry / "store.json")
        index = index or _read_json(entry / "complete.json")
        if layout is None or layout.get("key") != key \
                or layout.get("format_version") != STORE_FORMAT_VERSION:
            msg = "store.json is missing, unreadable or of another key/format"
            raise StoreError(msg)
        if index is None or index.get("key") != key or len(index.get("rows", {})) \
                != len(layout["ids"]):
            msg = "complete.json is missing, unreadable or incomplete"
            raise StoreError(msg)
        source = StoredArrays(entry, layout, index)
        try:
            arrays = source.arrays
        except Exception as exc:  # zarr's errors for a missing or damaged array
            msg = f"the arrays cannot be opened ({_describe(exc)})"
            raise StoreError(msg) from None
        for name, spec in layout["fields"].items():
            arr = arrays[name]
            if list(arr.shape) != spec["shape"] or arr.dtype != np.dtype(spec["dtype"]):
                msg = (f"array {name} has shape {arr.shape} / dtype {arr.dtype}, expected "
                       f"{spec['shape']} / {spec['dtype']}")
                raise StoreError(msg)
        if verify == "full":
            bad = []
            for row in source._rows.tolist():
                rec = index["rows"][str(row)]
                for name in layout["fields"]:
                    if _digest(source._read(name, np.array([row]))[0]) != rec["sha256"][name]:
                        bad.append(row)
                        break
            if bad:
                # forget those galaxies: a resumed build writes them again
                for row in bad:
                    _row_path(entry, row).unlink(missing_ok=True)
                msg = (f"{len(bad)} galaxies do not match their checksums (e.g. "
                       f"{layout['ids'][bad[0]]!r})")
                raise StoreError(msg)
        return source


# -- helpers -----------------------------------------------------------------------------------
def fit_preprocessor(survey, preprocessor, *, directory=None, kind=None, targets=None,
                     fit_sample=None, fit_seed=0, device=None):
    """Fit a preprocessor as a store does: on a sample, kept for reuse, once per torchrun job.

    Parameters
    ----------
    survey : `~astro_cl.surveys.base.Survey`
    preprocessor : `~astro_cl.preprocess.Preprocessor`
        Fitted in place; returned as is when already fitted.
    directory : str or `~pathlib.Path`, optional
        The store directory that keeps the fit (`PreprocessedStore.fit_preprocessor`).
        None: a temporary one, removed afterwards, and every process fits its own.
    kind, targets, fit_sample, fit_seed : optional
        See `PreprocessedStore.fit_preprocessor`.
    device : str, optional
        The torch.distributed job's device, to join its process group.

    Returns
    -------
    preprocessor : `~astro_cl.preprocess.Preprocessor`
    """
    if preprocessor.is_fitted:
        return preprocessor
    if directory is not None:
        return PreprocessedStore(directory).fit_preprocessor(
            survey, preprocessor, kind=kind, targets=targets, fit_sample=fit_sample,
            fit_seed=fit_seed, device=device)
    with tempfile.TemporaryDirectory(prefix="astro_cl-fit-") as tmp:
        return PreprocessedStore(tmp).fit_preprocessor(
            survey, preprocessor, kind=kind, targets=targets, fit_sample=fit_sample,
            fit_seed=fit_seed, distributed=False)


def _thread_safe(survey, preprocessor):
    return all(getattr(obj, "thread_safe", False) for obj in (survey, preprocessor)
               if obj is not None)


def _copy_state(preprocessor, fitted):
    """Give ``preprocessor`` the fitted arrays of ``fitted`` (same class and parameters)."""
    if fitted is None:
        msg = f"no fitted state to give preprocessor {preprocessor.name!r}"
        raise StoreError(msg)
    for name in type(preprocessor)._state_arrays:
        setattr(preprocessor, name, getattr(fitted, name))
    return preprocessor


def _save_state(preprocessor, where):
    """Write a fitted preprocessor as JSON + one ``.npy`` per array (same bytes every time)."""
    header, arrays = preprocessor.state_dict()
    where = Path(where)
    for name, value in arrays.items():
        with atomic_write(where / f"{name}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(value), allow_pickle=False)
    _write_json(where / "preprocessor.json", {**header, "arrays": sorted(arrays)})


def _load_state(where):
    """Read a preprocessor written by `_save_state`; raise `StoreError` if unreadable."""
    from astro_cl.preprocess.base import Preprocessor

    where = Path(where)
    header = _read_json(where / "preprocessor.json")
    if header is None:
        msg = f"{where}: no fitted preprocessor (preprocessor.json missing or unreadable)"
        raise StoreError(msg)
    try:
        arrays = {name: np.load(where / f"{name}.npy", allow_pickle=False)
                  for name in header.get("arrays", [])}
    except (OSError, ValueError) as exc:
        msg = f"{where}: cannot read the fitted arrays ({exc})"
        raise StoreError(msg) from None
    return Preprocessor.from_state(header, arrays, source=str(where))


def _process_group(distributed, device):
    """Return a gloo group of the running torch.distributed job (None when not in one)."""
    if distributed is False:
        return None
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 and "torch.distributed" not in sys.modules:
        return None
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if world <= 1:
            return None
        from astro_cl.training.distributed import init_distributed

        init_distributed(device)
    if dist.get_world_size() <= 1:
        return None
    # its own group, with a timeout long enough for a build of hours, whatever the
    # backend of the job (gloo carries these small messages between CPU processes)
    return dist.new_group(backend="gloo",
                          timeout=datetime.timedelta(seconds=DISTRIBUTED_TIMEOUT))


def _rank_zero_first(group, lead, follow, *, what):
    """Run ``lead()`` on rank 0, then ``follow(result)`` on the other ranks."""
    import torch.distributed as dist

    message = [None]
    try:
        if dist.get_rank() == 0:
            try:
                result = lead()
            except BaseException as exc:
                message[0] = {"error": _describe(exc)}
                dist.broadcast_object_list(message, src=0, group=group)
                raise
            message[0] = {"result": result}
            dist.broadcast_object_list(message, src=0, group=group)
            return None
        dist.broadcast_object_list(message, src=0, group=group)
        if "error" in message[0]:
            msg = f"rank 0 failed while {what}: {message[0]['error']}"
            raise StoreError(msg)
        return follow(message[0]["result"])
    finally:
        dist.destroy_process_group(group)
