"""An on-disk cache of preprocessed tensors: memory-mapped ``.npy`` arrays + JSON metadata.

Preprocessing an IFU survey (reading FITS cubes, resampling, PCA) takes far
longer than a training epoch. `PreprocessedCache` does it once and stores the
result as plain ``.npy`` files (read back memory-mapped) with a ``meta.json``
describing them; no pickle anywhere.

A cache entry is keyed by the survey (name and plain parameters), the
preprocessing (its name, parameters and fitted state), the input kind and
targets, and the *source data*: the survey's own `~astro_cl.surveys.Survey.fingerprint`
when it has one (a generated mock: its parameters and model version), else
the checksums of the survey's files, or, for a survey held in memory, a hash
of its data. A changed input gives a new key
(a stale entry is simply not used, and is rebuilt under the new key). An entry
whose metadata is unreadable, whose arrays are truncated or missing, or whose
arrays do not match their recorded checksums is corrupt: it is detected on
open and rebuilt. Entries are written into a temporary directory and renamed
into place, so a crash never leaves a half-written entry behind.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from astro_cl.exceptions import AstroCLError, AstroCLWarning, ValidationError
from astro_cl.utils.io import atomic_write, file_checksum

__all__ = ["CACHE_FORMAT_VERSION", "CacheError", "CacheWarning", "CachedArrays",
           "PreprocessedCache", "positions_of", "rows_of", "source_files_of"]

#: Layout version of a cache entry.
CACHE_FORMAT_VERSION = 1

class CacheWarning(AstroCLWarning):
    """A cache entry was corrupt and is being rebuilt, or is built otherwise than asked."""


class CacheError(AstroCLError):
    """A cache entry stayed unreadable: rebuilt, it was changed again before it could be read."""


class _Corrupt(CacheError):
    """An entry is corrupt, incomplete or being replaced (handled inside this module)."""


#: Times `PreprocessedCache.get_or_build` builds and reopens an entry that another
#: process keeps replacing before giving up, and the pause between tries (seconds).
_OPEN_ATTEMPTS = 4
_RETRY_PAUSE = 0.05


def _plain(value):
    """Return ``value`` if JSON-serialisable (recursively), else None."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value,
                                                                      strict=True)) else items
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return None if any(items[str(k)] is None and v is not None
                           for k, v in value.items()) else items
    if isinstance(value, np.generic):
        return value.item()
    return None


def source_files_of(survey):
    """Return the files a survey reads, which the cache's checksum covers.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`

    Returns
    -------
    files : list of `~pathlib.Path`
        ``survey.source_files()`` if it has one, else the files and folders
        named by its path parameters (folders expanded), sorted.
    """
    hook = getattr(survey, "source_files", None)
    if hook is not None:
        files = hook() if callable(hook) else hook
        return sorted(Path(f) for f in files)
    files = []
    for value in survey.get_params(deep=False).values():
        if not isinstance(value, (str, Path)) or not str(value):
            continue
        path = Path(value)
        try:
            if path.is_file():
                files.append(path)
            elif path.is_dir():
                files.extend(p for p in path.rglob("*") if p.is_file())
        except OSError:
            continue
    return sorted(set(files))


def rows_of(indices, n, where):
    """Return row numbers ``0 <= row < n`` for a slice, ints, an array or a torch tensor.

    Shared by the batch sources of the cache and the store.

    Parameters
    ----------
    indices : slice, int, sequence of int, `numpy.ndarray` or `torch.Tensor`
    n : int
        Number of rows.
    where : str
        What is indexed, for the error message.

    Returns
    -------
    rows : `numpy.ndarray` of int

    Raises
    ------
    IndexError
        If a row is out of range.
    """
    if hasattr(indices, "numpy"):  # a torch tensor
        indices = indices.cpu().numpy()
    rows = np.arange(n)[indices] if isinstance(indices, slice) \
        else np.asarray(indices, dtype=int).reshape(-1)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        msg = f"{where}: row out of range for {n} galaxies"
        raise IndexError(msg)
    return rows % max(1, n)


def positions_of(index, ids, where):
    """Return the rows of galaxy ids in an id -> row mapping.

    Parameters
    ----------
    index : mapping of str to int
    ids : sequence of str
    where : str
        What is searched, for the error message.

    Returns
    -------
    rows : `numpy.ndarray` of int

    Raises
    ------
    KeyError
        Naming the first unknown id.
    """
    try:
        return np.array([index[str(i)] for i in ids], dtype=int)
    except KeyError as exc:
        msg = f"{where}: no galaxy with id {exc.args[0]!r}"
        raise KeyError(msg) from None


class CachedArrays:
    """A cache entry: memory-mapped arrays of preprocessed galaxies (a batch source).

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        The entry's directory (holding ``meta.json`` and ``<field>.npy``).
    meta : dict
        Its parsed ``meta.json``.
    arrays : dict of str to `numpy.memmap`
        The memory-mapped arrays.

    Notes
    -----
    Use `PreprocessedCache.get_or_build` rather than building this directly.
    """

    def __init__(self, directory, meta, arrays):
        self.directory = Path(directory)
        self.meta = meta
        self.arrays = arrays
        self._index = {gid: i for i, gid in enumerate(meta["ids"])}

    def __len__(self):
        return len(self.meta["ids"])

    @property
    def ids(self):
        """Galaxy ids (list of str), in cache order."""
        return list(self.meta["ids"])

    @property
    def shape(self):
        """Shape ``(N, C, H, W)`` of the data array (tuple of int)."""
        return tuple(self.arrays["data"].shape)

    def index_of(self, ids):
        """Return the cache rows of galaxy ids.

        Parameters
        ----------
        ids : sequence of str

        Returns
        -------
        rows : `numpy.ndarray` of int
        """
        return positions_of(self._index, ids, f"cache {self.directory.name}")

    def _rows(self, indices):
        """Row numbers of ``indices`` (slice, ints or array), checked against the length."""
        return rows_of(indices, len(self), f"cache {self.directory.name}")

    def batch(self, indices):
        """Read some galaxies as a `~astro_cl.data.batch.TensorBatch` (memory-mapped reads).

        Parameters
        ----------
        indices : sequence of int, slice or `numpy.ndarray`
            Rows (positions in `ids`).

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        import torch

        from astro_cl.data.batch import TensorBatch

        rows = self._rows(indices)
        # one gather per array: fancy indexing a memmap reads just those rows
        fields = {name: torch.from_numpy(np.ascontiguousarray(arr[rows]))
                  for name, arr in self.arrays.items()}
        ids = [self.meta["ids"][i] for i in rows.tolist()]
        return TensorBatch(ids=ids, meta=dict(self.meta.get("batch_meta", {})), **fields)

    def target_maps(self, indices):
        """Read the cached regression targets of some galaxies as maps with units.

        The truth maps a network was trained against, straight from the
        cache: no re-reading or re-simulating of the source survey.

        Parameters
        ----------
        indices : sequence of int, slice or `numpy.ndarray`
            Rows (positions in `ids`).

        Returns
        -------
        maps : list of dict of str to `~astropy.nddata.NDData`
            One dict per galaxy, property name -> 2-D map (float32, the unit
            it was cached with, the target mask as ``mask``; no WCS, which
            the cache does not keep).

        Raises
        ------
        KeyError
            If the entry was built without ``targets``.
        IndexError
            If a row is out of range.
        """
        from astropy import units as u
        from astropy.nddata import NDData

        batch_meta = self.meta.get("batch_meta", {})
        if "targets" not in self.arrays or "target_names" not in batch_meta:
            msg = (f"cache {self.directory.name}: no regression targets "
                   "(build it with get_or_build(..., targets=...))")
            raise KeyError(msg)
        names = list(batch_meta["target_names"])
        units = [u.Unit(s) for s in batch_meta.get("target_units", [""] * len(names))]
        rows = self._rows(indices)
        data = np.asarray(self.arrays["targets"][rows])
        masks = self.arrays.get("target_mask")
        masks = None if masks is None else np.asarray(masks[rows], dtype=bool)
        out = []
        for i in range(len(rows)):
            out.append({name: NDData(data[i, k], unit=unit,
                                     mask=None if masks is None else masks[i, k])
                        for k, (name, unit) in enumerate(zip(names, units, strict=True))})
        return out

    def __repr__(self):
        return f"<CachedArrays {self.directory.name}: {len(self)} galaxies, data {self.shape}>"


class PreprocessedCache:
    """A directory of cached, preprocessed survey tensors.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Where entries live (created on first build).
    verify : {"full", "size"}, optional
        On open, ``"full"`` checks every array against its SHA-256 (reads the
        entry once); ``"size"`` only checks that the files have their
        recorded shapes (catches truncation, not bit rot).
    checksum : {"content", "stat"}, optional
        How source files enter the key: SHA-256 of their content, or their
        size and modification time (fast for very large surveys).

    Examples
    --------
    >>> cache = PreprocessedCache("cache")                       # doctest: +SKIP
    >>> source = cache.get_or_build(survey, preprocessor=pca)    # doctest: +SKIP
    >>> batch = source.batch([0, 1, 2])                          # doctest: +SKIP
    """

    def __init__(self, directory, *, verify="full", checksum="content"):
        self.directory = Path(directory)
        if verify not in ("full", "size"):
            msg = f"PreprocessedCache.verify: expected 'full' or 'size', got {verify!r}"
            raise ValidationError(msg)
        if checksum not in ("content", "stat"):
            msg = f"PreprocessedCache.checksum: expected 'content' or 'stat', got {checksum!r}"
            raise ValidationError(msg)
        self.verify = verify
        self.checksum = checksum

    # -- keys ---------------------------------------------------------------
    def _source_fingerprint(self, survey, kind, targets):
        files = [f for f in source_files_of(survey)
                 if self.directory.resolve() not in f.resolve().parents]
        if files:
            if self.checksum == "content":
                return {"files": {str(f): file_checksum(f) for f in files}}
            return {"files": {str(f): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}}
        # no files: a survey held in memory; hash its data
        h = hashlib.sha256()
        for rec in survey:
            h.update(rec.id.encode())
            for arr in rec.as_arrays(kind):
                if arr is not None:
                    h.update(str(arr.shape).encode())
                    h.update(np.ascontiguousarray(arr).tobytes())
            if targets is not None:
                for arr in rec.as_arrays("maps", map_names=_target_names(targets)):
                    if arr is not None:
                        h.update(np.ascontiguousarray(arr).tobytes())
            if rec.star_mask is not None:
                h.update(np.ascontiguousarray(rec.star_mask).tobytes())
            if rec.cube is not None and kind != "cube":
                h.update(np.ascontiguousarray(rec.cube.flux.value).tobytes())
        return {"data_sha256": h.hexdigest()}

    def key(self, survey, *, preprocessor=None, kind=None, targets=None, source=None):
        """Return the cache key of a survey + preprocessing combination.

        Parameters
        ----------
        survey : `~astro_cl.surveys.base.Survey`
        preprocessor : `~astro_cl.preprocess.base.Preprocessor`, optional
            Must be fitted.
        kind : str, optional
            Record field used without a preprocessor (default: the survey's).
        targets : str or sequence of str, optional
            ``"maps"`` (all maps) or map names stored as regression targets.
        source : dict, optional
            ``inputs["source"]`` of an earlier call for the same survey, kind
            and targets: reused instead of checksumming the files again.

        Returns
        -------
        key : str
            Hex digest.
        inputs : dict
            What the key was computed from.
        """
        kind = kind or survey.default_kind
        params = {k: _plain(v) for k, v in survey.get_params(deep=False).items()}
        # a survey that says what determines its galaxies (Survey.fingerprint: a
        # generated mock) is keyed on that: no catalogue to build, nothing to hash
        hook = getattr(survey, "fingerprint", None)
        fingerprint = _plain(hook()) if callable(hook) else None
        inputs = {
            "format_version": CACHE_FORMAT_VERSION,
            "survey": survey.name,
            "survey_params": {k: v for k, v in params.items() if v is not None},
            "ids": [str(i) for i in survey.ids] if fingerprint is None else None,
            "kind": kind,
            "targets": _plain(targets),
            "preprocessor": None if preprocessor is None else {
                "name": preprocessor.name,
                "params": _plain(preprocessor.get_params(deep=False)),
                "fingerprint": preprocessor.fingerprint(),
            },
            "source": (source if source is not None
                       else {"fingerprint": fingerprint} if fingerprint is not None
                       else self._source_fingerprint(survey, kind, targets)),
        }
        text = json.dumps(inputs, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest(), inputs

    # -- public -------------------------------------------------------------
    def get_or_build(self, survey, *, preprocessor=None, kind=None, targets=None,
                     progress=True, workers=1):
        """Return the cached arrays of a survey, building (or rebuilding) them if needed.

        Parameters
        ----------
        survey : `~astro_cl.surveys.base.Survey`
        preprocessor : `~astro_cl.preprocess.base.Preprocessor`, optional
            Applied to every record (`~astro_cl.preprocess.base.Preprocessor.transform_record`);
            fitted on the survey first if it is not fitted yet. Without one,
            the records' raw arrays of ``kind`` are cached.
        kind : str, optional
            Field stacked without a preprocessor (default: the survey's).
        targets : str or sequence of str, optional
            ``"maps"`` or map names to cache as regression targets.
        progress : bool, optional
            Show a progress bar while building.
        workers : int, optional
            Threads that read and preprocess galaxies concurrently while
            building (rows are still written in survey order, so the entry is
            the same for any count). Worth it when reading and preprocessing
            spend their time in NumPy or I/O, which release the GIL. Used only
            when the survey and the preprocessor declare ``thread_safe`` (the
            in-memory mock surveys, `~astro_cl.surveys.InMemorySurvey`,
            `~astro_cl.preprocess.CubePCA`, `~astro_cl.preprocess.ImageScaler`);
            otherwise the entry is built in one thread, with a `CacheWarning`.

        Returns
        -------
        source : `CachedArrays`

        Raises
        ------
        CacheError
            If the entry, rebuilt, is replaced by another process before it
            can be read, again and again.
        """
        workers = int(workers)
        if workers < 1:
            msg = f"PreprocessedCache.get_or_build: workers must be >= 1, got {workers}"
            raise ValidationError(msg)
        unsafe = [f"{kind_} {obj.name!r}" for kind_, obj in (("survey", survey),
                                                            ("preprocessor", preprocessor))
                  if obj is not None and not getattr(obj, "thread_safe", False)]
        if preprocessor is not None and not preprocessor.is_fitted:
            preprocessor.fit(survey)
        key, inputs = self.key(survey, preprocessor=preprocessor, kind=kind, targets=targets)
        entry = self.directory / f"{_slug(survey.name)}-{key[:20]}"
        problem = None
        for attempt in range(_OPEN_ATTEMPTS):
            if entry.exists():
                try:
                    return self._open(entry, key)
                except _Corrupt as exc:
                    if attempt == 0:
                        warnings.warn(f"cache entry {entry}: {exc}; rebuilding it",
                                      CacheWarning, stacklevel=2)
            if workers > 1 and unsafe:
                warnings.warn(f"cache: building {entry.name} in one thread, not {workers}: "
                              f"{' and '.join(unsafe)} not marked thread_safe", CacheWarning,
                              stacklevel=2)
                workers = 1
            self._build(entry, key, inputs, survey, preprocessor, inputs["kind"], targets,
                        progress, workers)
            try:
                return self._open(entry, key)
            except _Corrupt as exc:
                # another process swapped the entry between our rename and this read
                # (it found it corrupt, or built it too): its entry is as good as ours
                problem = exc
                time.sleep(_RETRY_PAUSE * (attempt + 1))
        msg = (f"cache entry {entry}: still unreadable after {_OPEN_ATTEMPTS} rebuilds "
               f"({problem}); another process keeps replacing it; remove the directory and run "
               "again")
        raise CacheError(msg)

    def entries(self):
        """Return the entry directories present.

        Returns
        -------
        entries : list of `~pathlib.Path`
        """
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    def clear(self):
        """Delete every entry of this cache directory."""
        for entry in self.entries():
            shutil.rmtree(entry)

    # -- internals ------------------------------------------------------------
    def _open(self, entry, key):
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _Corrupt("meta.json is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Corrupt(f"meta.json is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("key") != key \
                or meta.get("format_version") != CACHE_FORMAT_VERSION:
            raise _Corrupt("meta.json does not describe this key/format")
        arrays = {}
        for name, info in meta.get("arrays", {}).items():
            path = entry / f"{name}.npy"
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise _Corrupt(f"{path.name} cannot be read ({exc})") from None
            if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"]:
                raise _Corrupt(f"{path.name} has shape {arr.shape} / dtype {arr.dtype}, "
                               f"expected {info['shape']} / {info['dtype']}")
            try:
                mismatch = self.verify == "full" and file_checksum(path) != info["sha256"]
            except OSError as exc:  # moved away meanwhile by a process replacing the entry
                raise _Corrupt(f"{path.name} cannot be read ({exc})") from None
            if mismatch:
                raise _Corrupt(f"{path.name} does not match its checksum")
            arrays[name] = arr
        if "data" not in arrays or "mask" not in arrays:
            raise _Corrupt("data or mask array missing")
        return CachedArrays(entry, meta, arrays)

    def _build(self, entry, key, inputs, survey, preprocessor, kind, targets, progress,
               workers=1):
        from tqdm.auto import tqdm

        from astro_cl.utils.parallel import imap_ordered

        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=self.directory))
        rows = None
        try:
            ids = [str(i) for i in survey.ids]
            n = len(ids)
            if n == 0:
                msg = f"cache: survey {survey.name!r} has no galaxies"
                raise ValidationError(msg)
            arrays = {}
            batch_meta = {"survey": survey.name, "kind": kind,
                          "preprocessor": None if preprocessor is None else preprocessor.name}

            def read(gid):
                rec = survey[gid]
                return rec, _record_row(rec, preprocessor, kind, targets)

            rows = imap_ordered(read, ids, workers=workers)
            bar = tqdm(zip(ids, rows, strict=True), total=n, desc=f"caching {survey.name}",
                       disable=not progress, unit="galaxy")
            for i, (gid, (rec, row)) in enumerate(bar):
                if i == 0:
                    arrays = {name: np.lib.format.open_memmap(
                        tmp / f"{name}.npy", mode="w+", dtype=value.dtype,
                        shape=(n, *value.shape)) for name, value in row.items()}
                    if kind == "images" and rec.bands:
                        batch_meta["bands"] = list(rec.bands)
                    if targets is not None:
                        names = _target_names(targets) or list(rec.maps)
                        batch_meta["target_names"] = names
                        batch_meta["target_units"] = [rec.maps[t].unit.to_string()
                                                      for t in names]
                for name, arr in arrays.items():
                    value = row.get(name)
                    if value is None:  # this record lacks a field the first one had
                        value = _missing(name, arr.shape[1:], arr.dtype)
                    if value.shape != arr.shape[1:]:
                        msg = (f"cache: galaxy {gid!r} gives {name} of shape {value.shape}, "
                               f"the first galaxy {arr.shape[1:]}; resample to a common grid")
                        raise ValidationError(msg)
                    arr[i] = value
            info = {}
            for name, arr in arrays.items():
                arr.flush()
                info[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
            del arrays
            for name in info:
                with open(tmp / f"{name}.npy", "rb+") as fh:
                    os.fsync(fh.fileno())
                info[name]["sha256"] = file_checksum(tmp / f"{name}.npy")
            meta = {"format_version": CACHE_FORMAT_VERSION, "key": key, "ids": ids,
                    "arrays": info, "batch_meta": batch_meta, "inputs": inputs}
            with atomic_write(tmp / "meta.json") as fh:
                json.dump(meta, fh, indent=1, sort_keys=True)
            _swap_in(tmp, entry)
        finally:
            if rows is not None:
                rows.close()  # cancels what is still queued, joins the threads
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp, entry):
    """Rename a built entry into place, tolerating another process doing the same."""
    trash = None
    if entry.exists():  # a corrupt entry: move it aside, then swap in the new one
        trash = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".old",
                                      dir=entry.parent))
        with contextlib.suppress(FileNotFoundError):  # moved away by another process
            os.replace(entry, trash / "entry")
    try:
        os.replace(tmp, entry)
    except OSError:
        if not entry.is_dir():
            raise
        # another process renamed its build of the same key in first: keep that one
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def _slug(name):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name)) or "survey"


def _target_names(targets):
    if targets is None or targets == "maps":
        return None
    return [targets] if isinstance(targets, str) else list(targets)


def _missing(name, shape, dtype):
    if name == "uncertainty":
        return np.full(shape, np.inf, dtype)
    if name in ("mask", "target_mask"):
        return np.ones(shape, dtype)
    return np.zeros(shape, dtype)


def _record_row(rec, preprocessor, kind, targets):
    """Return the arrays stored for one record."""
    if preprocessor is not None:
        data, mask, std = preprocessor.transform_record(rec)
    else:
        data, mask, std = rec.as_arrays(kind)
    data = np.asarray(data, dtype=np.float32)
    bad = ~np.isfinite(data)
    if mask is None:
        mask = bad
    else:
        mask = np.asarray(mask, dtype=bool)
        mask = mask | (bad.any(axis=0, keepdims=True) if mask.shape[0] == 1 else bad)
    row = {"data": np.where(mask, 0.0, data).astype(np.float32), "mask": mask}
    if std is not None:
        row["uncertainty"] = np.asarray(std, dtype=np.float32)
    if targets is not None:
        t, tm, _ = rec.as_arrays("maps", map_names=_target_names(targets))
        row["targets"] = np.where(tm, 0.0, t).astype(np.float32)
        row["target_mask"] = tm
    if rec.star_mask is not None:
        row["star_mask"] = np.asarray(rec.star_mask, bool)[None]
    return row
