"""Downstream tasks on an embedding, as one result with its tables, figures and report.

`run_tasks` fits and evaluates a set of registered tasks on an embedding and a
catalogue and returns a `TaskResults`: the fitted tasks, their tables, a
per-galaxy table (the catalogue rows with the columns the tasks add: the 2-D
projection, the SFMS class, the cluster labels, ...) and what the run found
out about its inputs (which catalogue columns were left out and why, which
tasks could not run, whether the embedding collapsed). Every task is handled
alike through the hooks of `~astro_cl.tasks.DownstreamTask`
(``galaxy_columns``, ``extra_tables``, ``findings``, ``describe``,
``figures``, ``headline``): a third-party task adds its columns, tables and
figures to the results folder and the report as a built-in one does.
`TaskResults.write` writes it as a results folder, `TaskResults.read` reads
one back, and `TaskResults.figures` / `TaskResults.report` draw it;
``astro-cl evaluate`` and ``astro-cl report`` are these calls.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from astro_cl.exceptions import AstroCLWarning, ValidationError

if TYPE_CHECKING:
    import os

    from astropy.table import QTable
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from astro_cl.tasks.base import DownstreamTask, TaskOutputs

__all__ = ["DEFAULT_TASKS", "TaskResults", "read_table", "run_tasks"]

#: ``thumbnails.npz`` keys: the format marker, the galaxy ids, and the image of the
#: i-th id under ``_THUMBNAIL_KEY.format(i)``. Ids are data, never key names: as
#: keys, an id such as ``allow_pickle`` or ``file`` clashed with `numpy.savez`'s
#: own arguments (files written so, one image per id, still read).
_THUMBNAILS_FORMAT_KEY = "astro_cl_thumbnails_format"
_THUMBNAIL_IDS_KEY = "galaxy_ids"
_THUMBNAIL_KEY = "thumbnail_{}"

#: Tasks run by default, in order; those the catalogue cannot support are skipped.
DEFAULT_TASKS = ("property-correlation", "property-regression", "sfms-clustering",
                 "environment", "similarity-search")

def _read_thumbnails(path: Path) -> dict[str, np.ndarray]:
    """Read ``thumbnails.npz``: images by galaxy id (either layout, see `_THUMBNAIL_KEY`)."""
    with np.load(path, allow_pickle=False) as npz:
        if _THUMBNAILS_FORMAT_KEY not in npz.files:  # written before ids were data
            return {k: npz[k] for k in npz.files}
        ids = [str(i) for i in npz[_THUMBNAIL_IDS_KEY]]
        missing = [_THUMBNAIL_KEY.format(i) for i in range(len(ids))
                   if _THUMBNAIL_KEY.format(i) not in npz.files]
        if missing:
            msg = (f"{path}: lists {len(ids)} galaxy ids but has no image under "
                   f"{missing[:3]}; expected one '{_THUMBNAIL_KEY.format('<i>')}' per id")
            raise ValidationError(msg)
        return {gid: npz[_THUMBNAIL_KEY.format(i)] for i, gid in enumerate(ids)}


def read_table(path: str | os.PathLike[str]) -> QTable:
    """Read a table, recognising ECSV content whatever the file extension.

    Parameters
    ----------
    path : str or `~pathlib.Path`

    Returns
    -------
    table : `~astropy.table.QTable`

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    astro_cl.exceptions.ValidationError
        If the file is not a table astropy can read.
    """
    from astropy.table import QTable

    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise FileNotFoundError(msg)
    fmt = None
    if path.suffix.lower() in (".ecsv", ".csv", ".txt", ".dat"):
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        if first.startswith("# %ECSV"):
            fmt = "ascii.ecsv"
        elif path.suffix.lower() == ".csv":
            fmt = "ascii.csv"
    from astropy.io.registry import IORegistryError

    try:
        return QTable.read(path, format=fmt) if fmt else QTable.read(path)
    except (OSError, ValueError, TypeError, LookupError, UnicodeError, IORegistryError) as exc:
        # astropy's own errors on a damaged or foreign file (a list of every
        # reader it tried, a decoding error): one line naming the file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        msg = (f"{path}: not a readable table (ECSV, CSV or FITS expected): "
               f"{type(exc).__name__}: {first_line}")
        raise ValidationError(msg) from None


def _plain(value: Any) -> Any:
    """Return a JSON-able copy of ``value`` (numpy scalars and arrays, tuples, paths)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


#: Run-level facts gathered from the tasks' findings (dicts are merged, the
#: first task to give another value wins).
_RUN_FINDINGS = ("left_out", "skipped_properties", "projection")


def _join_columns(galaxies: QTable, columns: Any, task: str, owner: dict[str, str],
                  ) -> list[str]:
    """Add a task's per-galaxy columns to the run's per-galaxy table, in place."""
    from astropy.table import Table

    if not isinstance(columns, Table):
        msg = (f"task {task!r}: galaxy_columns() must return an astropy Table or None, "
               f"got {type(columns).__name__}")
        raise ValidationError(msg)
    n = len(galaxies) if galaxies.colnames else len(columns)
    if "id" in columns.colnames and "id" in galaxies.colnames:
        want = np.asarray(galaxies["id"]).astype(str)
        have = np.asarray(columns["id"]).astype(str)
        index = {g: i for i, g in enumerate(have)}
        missing = [g for g in want if g not in index]
        if missing or len(have) != len(want):
            msg = (f"task {task!r}: galaxy_columns() has ids for {len(have)} galaxies, the "
                   f"run {len(want)} (missing: {missing[:3]})")
            raise ValidationError(msg)
        columns = columns[[index[g] for g in want]]
    elif len(columns) != n:
        msg = (f"task {task!r}: galaxy_columns() has {len(columns)} rows, the run {n} "
               f"galaxies; give one row per galaxy in the order of the data, or an 'id' "
               f"column")
        raise ValidationError(msg)
    added = []
    for col in columns.colnames:
        if col == "id":
            continue
        if col in owner:
            msg = (f"task {task!r}: per-galaxy column {col!r} is also made by task "
                   f"{owner[col]!r}; per-galaxy columns need names of their own")
            raise ValidationError(msg)
        galaxies[col] = columns[col]
        owner[col] = task
        added.append(col)
    return added


def run_tasks(embeddings: QTable | np.ndarray, catalogue: QTable | None, *,
              tasks: Sequence[str] | None = None,
              params: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
              provenance: Mapping[str, Any] | None = None) -> TaskResults:
    """Fit and evaluate downstream tasks on an embedding.

    Every task is handled alike, through the hooks of
    `~astro_cl.tasks.DownstreamTask`: its result becomes ``tables[name]``,
    its ``extra_tables()`` join the tables, its ``galaxy_columns()`` the
    per-galaxy table (replacing catalogue columns of the same name), and its
    ``findings()`` and ``describe()`` go to ``info["tasks"][name]``.

    Parameters
    ----------
    embeddings : `~astropy.table.QTable` or `numpy.ndarray`
        Embeddings table (``id``, ``embedding``) or array.
    catalogue : `~astropy.table.QTable` or None
        Catalogue of the same galaxies (joined on ``id`` when both have ids).
    tasks : list of str, optional
        Registered task names (of tasks on embeddings, see
        `~astro_cl.tasks.DownstreamTask.input_kind`); an error in one of them
        propagates. Default: `DEFAULT_TASKS`, skipping (with a note) those
        whose fit finds that the catalogue cannot support them (a
        `~astro_cl.exceptions.CatalogueError`: no catalogue, no SFR or mass
        column for the clustering, fewer than two environments with enough
        galaxies, ...).
    params : dict of str to dict, optional
        Parameters per task name, e.g. ``{"environment": {"n_permutations": 99}}``.
    progress : bool, optional
        Show a progress bar over tasks.
    provenance : dict, optional
        Provenance to keep with the results (input paths, checksums).

    Returns
    -------
    results : `TaskResults`

    Raises
    ------
    astro_cl.exceptions.UnknownComponentError
        If a task name is not registered.
    astro_cl.exceptions.ValidationError
        If a task works on maps, or its hooks break the contract (a table
        name or per-galaxy column another task made, rows that do not match
        the galaxies).

    Examples
    --------
    >>> from astro_cl.studies import run_tasks
    >>> results = run_tasks(embeddings, catalogue)            # doctest: +SKIP
    >>> results.tables["property-correlation"][:5]            # doctest: +SKIP
    >>> results.write("results"); results.report("results/report")   # doctest: +SKIP
    """
    from astropy.table import QTable
    from tqdm.auto import tqdm

    from astro_cl.exceptions import CatalogueError
    from astro_cl.plugins.registry import get_task
    from astro_cl.tasks.catalogue import align
    from astro_cl.tasks.diagnostics import embedding_diagnostics

    params = {k: dict(v) for k, v in (params or {}).items()}
    X, cat, ids = align(embeddings, catalogue)
    optional = tasks is None
    names = list(DEFAULT_TASKS if tasks is None else tasks)
    diagnostics = embedding_diagnostics(X)
    if diagnostics["collapsed"]:
        warnings.warn(diagnostics["message"], AstroCLWarning, stacklevel=2)
    fitted: dict[str, DownstreamTask] = {}
    tables: dict[str, QTable] = {}
    skipped_tasks: dict[str, str] = {}
    task_info: dict[str, dict[str, Any]] = {}
    galaxies = QTable(cat, copy=True) if cat is not None else QTable()
    if ids is not None:
        galaxies["id"] = ids
    owner: dict[str, str] = {}
    replaced: dict[str, str] = {}
    info: dict[str, Any] = {"n_galaxies": len(X), "n_features": int(X.shape[1]),
                            "embedding": diagnostics}
    for name in tqdm(names, desc="tasks", disable=not progress):
        task = get_task(name, **params.get(name, {}))
        kind = getattr(task, "input_kind", "embeddings")
        if kind != "embeddings":
            msg = (f"run_tasks: task {name!r} works on {kind}, not on an embedding and a "
                   f"catalogue; call its fit(predicted, truth) directly")
            raise ValidationError(msg)
        try:
            task.fit(embeddings, catalogue)
        except CatalogueError as exc:
            if not optional:
                raise
            reason = str(exc).removeprefix(f"{name}: ")
            skipped_tasks[name] = reason
            warnings.warn(f"{name} skipped: {reason}", AstroCLWarning, stacklevel=2)
            continue
        result = task.evaluate()
        if diagnostics["collapsed"] and hasattr(result, "meta"):
            # every number computed on a collapsed embedding describes noise
            result.meta["warning"] = diagnostics["message"]
        extra = dict(task.extra_tables() or {})
        for key in (name, *extra):
            if key in tables or (key != name and key in names):
                msg = (f"task {name!r}: table {key!r} is already in the results (a task name "
                       f"or another task's table); extra tables need names of their own")
                raise ValidationError(msg)
        fitted[name] = task
        tables[name] = result
        tables.update(extra)
        columns = task.galaxy_columns()
        added: list[str] = []
        if columns is not None:
            from_catalogue = set(galaxies.colnames) - set(owner)
            added = _join_columns(galaxies, columns, name, owner)
            replaced.update({c: name for c in added if c in from_catalogue})
        task_info[name] = {"tables": [name, *extra], "columns": added,
                           "findings": _plain(dict(task.findings() or {})),
                           "description": str(task.describe())}
    for key in _RUN_FINDINGS:
        for entry in task_info.values():
            value = entry["findings"].get(key)
            if isinstance(value, dict):
                info[key] = {**value, **info.get(key, {})}
            elif value is not None and key not in info:
                info[key] = value
    info.update(tasks=task_info, skipped_tasks=skipped_tasks, replaced_columns=replaced)
    config = {"tasks": {n: _plain(t.get_params(deep=False)) for n, t in fitted.items()}}
    prov = dict(provenance or {})
    if hasattr(embeddings, "meta") and embeddings.meta:
        prov.setdefault("embeddings_meta", _plain(dict(embeddings.meta)))
    return TaskResults(tables, galaxies, tasks=fitted, info=_plain(info), config=config,
                       provenance=prov)


class TaskResults:
    """What a run of downstream tasks produced, with its figures and report.

    Parameters
    ----------
    tables : dict of str to `~astropy.table.QTable`
        Result tables by name (task tables, ``study-comparison``,
        ``sfms-confusion-*``, ...).
    galaxies : `~astropy.table.QTable`
        One row per embedded galaxy: its catalogue row and the per-galaxy
        columns of the tasks (``projection_1`` / ``projection_2``,
        ``sfms_class``, ``cluster_*``, ...).
    tasks : dict of str to `~astro_cl.tasks.DownstreamTask`, optional
        The fitted tasks (empty when read back from a folder).
    info : dict, optional
        JSON-able facts about the run: ``n_galaxies``, ``n_features``,
        ``embedding`` (`~astro_cl.tasks.embedding_diagnostics`),
        ``projection`` (its name), ``left_out`` (catalogue columns not
        analysed and why), ``skipped_tasks``, ``skipped_properties``,
        ``replaced_columns`` (catalogue columns a task's column replaced),
        and ``tasks``: per task, the names of its ``tables`` and per-galaxy
        ``columns``, its ``findings`` and ``description``.
    config : dict, optional
        The tasks' parameters.
    provenance : dict, optional
        Inputs, checksums, versions.

    Attributes
    ----------
    history : dict of str to list of dict
        Training curves to draw (model name -> per-epoch records); empty
        unless set (`write` and `read` keep it as ``history.json``).
    thumbnails : dict of str to `numpy.ndarray`
        Images by galaxy id for the similarity grid (``thumbnails.npz``).
    """

    def __init__(self, tables: Mapping[str, QTable], galaxies: QTable, *,
                 tasks: Mapping[str, DownstreamTask] | None = None,
                 info: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None) -> None:
        self.tables: dict[str, QTable] = dict(tables)
        self.galaxies: QTable = galaxies
        self.tasks: dict[str, DownstreamTask] = dict(tasks or {})
        self.info: dict[str, Any] = dict(info or {})
        self.config: dict[str, Any] = dict(config or {})
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.history: dict[str, Any] = {}
        self.thumbnails: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return (f"<TaskResults: {self.info.get('n_galaxies', len(self.galaxies))} galaxies, "
                f"tables {list(self.tables)}>")

    @property
    def collapsed(self) -> bool:
        """bool: whether the embedding collapsed (see `~astro_cl.tasks.embedding_diagnostics`)."""
        return bool(self.info.get("embedding", {}).get("collapsed", False))

    @property
    def projection(self) -> NDArray[np.float64] | None:
        """`numpy.ndarray` or None: the ``(N, 2)`` projection of the embedding."""
        cols = set(self.galaxies.colnames)
        for a, b in (("projection_1", "projection_2"), ("umap_1", "umap_2")):
            if {a, b} <= cols:
                return np.column_stack([np.asarray(self.galaxies[a], dtype=float),
                                        np.asarray(self.galaxies[b], dtype=float)])
        return None

    # -- files ------------------------------------------------------------------
    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write the results folder.

        Parameters
        ----------
        folder : str or `~pathlib.Path`
            Receives ``tables/<name>.ecsv``, ``galaxies.ecsv`` (its scalar
            columns), ``run.json`` (``config``, ``provenance`` and ``results``
            = `info`), and ``history.json`` / ``thumbnails.npz`` when set.

        Returns
        -------
        folder : `~pathlib.Path`
        """
        from astro_cl import __version__
        from astro_cl.utils.io import atomic_path, atomic_write

        folder = Path(folder)
        for name, table in self.tables.items():
            with atomic_path(folder / "tables" / f"{name}.ecsv") as tmp:
                table.write(tmp, format="ascii.ecsv", overwrite=True)
        keep = [c for c in self.galaxies.colnames if getattr(self.galaxies[c], "ndim", 1) == 1]
        with atomic_path(folder / "galaxies.ecsv") as tmp:
            self.galaxies[keep].write(tmp, format="ascii.ecsv", overwrite=True)
        run_info = {"config": _plain(self.config),
                    "provenance": {"astro_cl_version": __version__, **_plain(self.provenance)},
                    "results": _plain(self.info)}
        with atomic_write(folder / "run.json") as fh:
            json.dump(run_info, fh, indent=2, default=str)
            fh.write("\n")
        if self.history:
            with atomic_write(folder / "history.json") as fh:
                json.dump(_plain(self.history), fh, indent=1)
        if self.thumbnails:
            arrays = {_THUMBNAILS_FORMAT_KEY: np.array(1),
                      _THUMBNAIL_IDS_KEY: np.array([str(k) for k in self.thumbnails])}
            arrays.update({_THUMBNAIL_KEY.format(i): np.asarray(v)
                           for i, v in enumerate(self.thumbnails.values())})
            with atomic_path(folder / "thumbnails.npz") as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        return folder

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> Self:
        """Read a results folder written by `write` (or ``astro-cl evaluate``).

        Parameters
        ----------
        folder : str or `~pathlib.Path`

        Returns
        -------
        results : `TaskResults`
            Without fitted tasks.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the folder has no ``run.json``.
        """
        from astropy.table import QTable

        folder = Path(folder)
        run_file = folder / "run.json"
        if not run_file.is_file():
            msg = f"{folder}: not an evaluate results folder (no run.json)"
            raise ValidationError(msg)
        run_info = json.loads(run_file.read_text(encoding="utf-8"))
        tables = {p.stem: QTable.read(p, format="ascii.ecsv")
                  for p in sorted((folder / "tables").glob("*.ecsv"))}
        gal_file = folder / "galaxies.ecsv"
        galaxies = QTable.read(gal_file, format="ascii.ecsv") if gal_file.is_file() else QTable()
        out = cls(tables, galaxies, info=run_info.get("results", {}),
                  config=run_info.get("config", {}), provenance=run_info.get("provenance", {}))
        history = folder / "history.json"
        if history.is_file():
            hist = json.loads(history.read_text(encoding="utf-8"))
            # one model's history (a list of epochs or a dict of series) or several by name
            if isinstance(hist, list) or (isinstance(hist, dict) and hist and all(
                    isinstance(v, list) and v and not isinstance(v[0], dict)
                    for v in hist.values())):
                hist = {"model": hist}
            out.history = hist
        thumbs = folder / "thumbnails.npz"
        if thumbs.is_file():
            out.thumbnails = _read_thumbnails(thumbs)
        return out

    # -- what the report says -----------------------------------------------------
    def overview(self) -> list[tuple[str, str]]:
        """Say what was done, item by item, for the report's first section.

        Returns
        -------
        items : list of (str, str)
        """
        from astro_cl.studies.report import describe_tasks

        info = self.info
        meta = self.provenance.get("embeddings_meta", {}) or {}
        items: list[tuple[str, str]] = []
        source = self.provenance.get("embeddings")
        data = (f"{info.get('n_galaxies', len(self.galaxies))} galaxies with "
                f"{info.get('n_features', '?')}-dimensional embeddings")
        if source:
            data += f" read from {source}"
        if self.provenance.get("catalogue"):
            data += f", joined with the catalogue {self.provenance['catalogue']}"
        items.append(("data", data))
        if meta.get("model"):
            items.append(("model", f"{meta['model']} (from the embeddings' metadata)"))
        items.append(("tasks", describe_tasks(self)))
        return items

    def notes(self) -> list[tuple[str, str]]:
        """Return the warnings the report shows first (a collapsed embedding, skipped tasks).

        Returns
        -------
        notes : list of (str, str)
            ``("warning", text)`` pairs.
        """
        out: list[tuple[str, str]] = []
        emb = self.info.get("embedding", {})
        if emb.get("collapsed"):
            out.append(("warning", emb["message"][0].upper() + emb["message"][1:] + "."))
        for name, reason in self.info.get("skipped_tasks", {}).items():
            out.append(("info", f"{name} was not run: {reason}."))
        from astro_cl.exceptions import UnknownComponentError

        for name in self.task_names():
            try:
                self.task_class(name)
            except UnknownComponentError as exc:
                out.append(("info", f"{name}: its figures and headline are not drawn: the "
                                    f"task is not installed here ({exc})."))
        return out

    def headline(self) -> list[dict[str, Any]]:
        """Return the headline results beside the eCALIFA study's findings.

        Returns
        -------
        rows : list of dict
            See `~astro_cl.report.html.write_report` (``headline``).
        """
        from astro_cl.studies.report import task_headline

        return task_headline(self)

    def task_names(self) -> list[str]:
        """Return the names of the tasks of the run, in order.

        Returns
        -------
        names : list of str
        """
        if "tasks" in self.info:
            return list(self.info["tasks"])
        return list(self.config.get("tasks", {}))  # a folder of an older version

    def task_class(self, name: str) -> type[DownstreamTask]:
        """Return the class of a task of the run (fitted, or registered under its name).

        Parameters
        ----------
        name : str

        Returns
        -------
        cls : type

        Raises
        ------
        astro_cl.exceptions.UnknownComponentError
            If the task is neither fitted here nor registered (e.g. a results
            folder of a plugin that is not installed).
        """
        if name in self.tasks:
            return type(self.tasks[name])
        from astro_cl.plugins.registry import get_component_class

        return get_component_class("task", name)

    def outputs(self, name: str, **options: Any) -> TaskOutputs:
        """Return what a task left in the run, for its figure and headline hooks.

        Parameters
        ----------
        name : str
            A task of the run.
        **options
            Options of the figures (see `~astro_cl.tasks.TaskOutputs`).

        Returns
        -------
        outputs : `~astro_cl.tasks.TaskOutputs`
        """
        from astro_cl.tasks.base import TaskOutputs

        entry = self.info.get("tasks", {}).get(name)
        names = set(self.task_names())
        if entry is not None:
            extra = {k: self.tables[k] for k in entry.get("tables", []) if k != name
                     and k in self.tables}
            findings = dict(entry.get("findings", {}))
        else:  # an older folder: every table that is not a task's, the run's facts
            extra = {k: v for k, v in self.tables.items() if k not in names}
            findings = dict(self.info)
        run = {k: v for k, v in self.info.items() if k != "tasks"}
        return TaskOutputs(name=name, table=self.tables.get(name), tables=extra,
                           galaxies=self.galaxies, findings=findings,
                           params=dict(self.config.get("tasks", {}).get(name, {})), run=run,
                           thumbnails=self.thumbnails, options=options)

    def figures(self, *, n_columns: int = 9, n_queries: int = 4,
                queries: Sequence[str] | None = None, thumbnail_label: str | None = None,
                ) -> tuple[dict[str, Figure], dict[str, str]]:
        """Draw the results: each task's figures (its ``figures`` hook), the training curves.

        Parameters
        ----------
        n_columns : int, optional
            Properties drawn on the projection (best ranked first).
        n_queries : int, optional
            Query galaxies in the similarity grid (when thumbnails are set).
        queries : list of str, optional
            The query galaxies to show (default: the first ones of the table).
        thumbnail_label : str, optional
            What the thumbnails show, for the caption.

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.studies.report import task_figures

        return task_figures(self, n_columns=n_columns, n_queries=n_queries, queries=queries,
                            thumbnail_label=thumbnail_label)

    def report_tables(self) -> dict[str, QTable]:
        """Return the tables the report shows, by name.

        Returns
        -------
        tables : dict of str to `~astropy.table.QTable`
        """
        return dict(self.tables)

    def report(self, folder: str | os.PathLike[str], *, title: str = "astro_cl analysis report",
               n_columns: int = 9, n_queries: int = 4) -> Path:
        """Write the HTML report of these results.

        Parameters
        ----------
        folder : str or `~pathlib.Path`
            Report folder.
        title : str, optional
        n_columns : int, optional
            Properties drawn on the projection.
        n_queries : int, optional
            Query galaxies in the similarity grid.

        Returns
        -------
        index : `~pathlib.Path`
            The report's ``index.html``.
        """
        from astro_cl.report.html import write_report

        figures, captions = self.figures(n_columns=n_columns, n_queries=n_queries)
        return write_report(folder, figures=figures, captions=captions, tables=self.tables,
                            config=self.config, provenance=self.provenance, title=title,
                            overview=self.overview(), headline=self.headline(),
                            notes=self.notes())

