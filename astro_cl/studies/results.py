"""Downstream tasks on an embedding, as one result with its tables, figures and report.

`run_tasks` fits and evaluates a set of registered tasks on an embedding and a
catalogue and returns a `TaskResults`: the fitted tasks, their tables, a
per-galaxy table (the catalogue rows with the 2-D projection, the SFMS class
and the cluster labels) and what the run found out about its inputs (which
catalogue columns were left out and why, which tasks could not run, whether
the embedding collapsed). `TaskResults.write` writes it as a results folder,
`TaskResults.read` reads one back, and `TaskResults.figures` /
`TaskResults.report` draw it; ``astro-cl evaluate`` and ``astro-cl report``
are these calls.
"""

import json
import warnings
from pathlib import Path

import numpy as np

from astro_cl.exceptions import AstroCLWarning, ValidationError

__all__ = ["DEFAULT_TASKS", "TaskResults", "read_table", "run_tasks"]

#: Tasks run by default, in order; those the catalogue cannot support are skipped.
DEFAULT_TASKS = ("property-correlation", "property-regression", "sfms-clustering",
                 "environment", "similarity-search")

def read_table(path):
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
    """
    from astropy.table import QTable

    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise FileNotFoundError(msg)
    if path.suffix.lower() in (".ecsv", ".csv", ".txt", ".dat"):
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        if first.startswith("# %ECSV"):
            return QTable.read(path, format="ascii.ecsv")
        if path.suffix.lower() == ".csv":
            return QTable.read(path, format="ascii.csv")
    return QTable.read(path)


def _applicable(name, catalogue, params):
    """``None`` when a default task can run on ``catalogue``, else why it cannot."""
    from astro_cl.tasks.catalogue import label_column

    cols = set(catalogue.colnames)
    p = params.get(name, {})
    if name == "sfms-clustering":
        if p.get("class_column"):
            column = p["class_column"]
            return None if column in cols else f"no class column {column!r} in the catalogue"
        need = [p.get("mass_column", "log_Mass"), p.get("sfr_column", "log_SFR_Ha")]
        missing = [c for c in need if c not in cols]
        return f"no column {' or '.join(map(repr, missing))} in the catalogue" if missing else None
    if name == "environment":
        column = p.get("column", "environment")
        if column not in cols:
            return f"no column {column!r} in the catalogue"
        min_group = int(p.get("min_group", 5))
        labels = [v for v in label_column(catalogue, column) if v is not None]
        groups, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
        big = int(np.sum(counts >= min_group))
        if big < 2:
            found = ", ".join(f"{g} ({c})" for g, c in zip(groups, counts, strict=True))
            return (f"{big} environment(s) with at least {min_group} galaxies (min_group), "
                    f"2 needed; environments (galaxies): {found or 'none'}")
    return None


def _plain(value):
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


def run_tasks(embeddings, catalogue, *, tasks=None, params=None, progress=True,
              provenance=None):
    """Fit and evaluate downstream tasks on an embedding.

    Parameters
    ----------
    embeddings : `~astropy.table.QTable` or `numpy.ndarray`
        Embeddings table (``id``, ``embedding``) or array.
    catalogue : `~astropy.table.QTable`
        Catalogue of the same galaxies (joined on ``id`` when both have ids).
    tasks : list of str, optional
        Registered task names; an error in one of them propagates. Default:
        `DEFAULT_TASKS`, skipping (with a note) those the catalogue cannot
        support: no SFR or mass column for the clustering, fewer than two
        environments with enough galaxies for the environment tests.
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

    Examples
    --------
    >>> from astro_cl.studies import run_tasks
    >>> results = run_tasks(embeddings, catalogue)            # doctest: +SKIP
    >>> results.tables["property-correlation"][:5]            # doctest: +SKIP
    >>> results.write("results"); results.report("results/report")   # doctest: +SKIP
    """
    from astropy.table import QTable
    from tqdm.auto import tqdm

    from astro_cl.plugins.registry import get_task
    from astro_cl.tasks.catalogue import align
    from astro_cl.tasks.correlation import compare_with_study
    from astro_cl.tasks.diagnostics import embedding_diagnostics

    params = {k: dict(v) for k, v in (params or {}).items()}
    X, cat, ids = align(embeddings, catalogue)
    skipped_tasks = {}
    if tasks is None:
        names = []
        for name in DEFAULT_TASKS:
            reason = _applicable(name, cat, params) if cat is not None else "no catalogue"
            if reason is None:
                names.append(name)
            else:
                skipped_tasks[name] = reason
    else:
        names = list(tasks)
    for name, reason in skipped_tasks.items():
        warnings.warn(f"{name} skipped: {reason}", AstroCLWarning, stacklevel=2)
    diagnostics = embedding_diagnostics(X)
    if diagnostics["collapsed"]:
        warnings.warn(diagnostics["message"], AstroCLWarning, stacklevel=2)
    fitted, tables = {}, {}
    galaxies = QTable(cat, copy=True) if cat is not None else QTable()
    if ids is not None:
        galaxies["id"] = ids
    info = {"n_galaxies": len(X), "n_features": int(X.shape[1]),
            "embedding": diagnostics, "skipped_tasks": skipped_tasks}
    for name in tqdm(names, desc="tasks", disable=not progress):
        task = get_task(name, **params.get(name, {}))
        task.fit(embeddings, catalogue)
        result = task.evaluate()
        fitted[name] = task
        tables[name] = result
        if name == "property-correlation":
            tables["study-comparison"] = compare_with_study(result)
            info["kendall_tau"] = tables["study-comparison"].meta["kendall_tau"]
            info["left_out"] = dict(task.left_out_)
            info["skipped_properties"] = dict(task.skipped_)
            if task.projection_ is not None:
                info["projection"] = result.meta["projection"]
                galaxies["projection_1"] = task.projection_[:, 0]
                galaxies["projection_2"] = task.projection_[:, 1]
        elif name == "property-regression":
            info.setdefault("left_out", dict(task.left_out_))
        elif name == "sfms-clustering":
            per_galaxy = task.galaxy_table()
            for col in per_galaxy.colnames:
                if col != "id":
                    galaxies[col] = per_galaxy[col]
            for key, conf in task.confusion_.items():
                tables[f"sfms-confusion-{key}"] = conf
            info["main_sequence"] = task.main_sequence_
            info["sfms_thresholds"] = list(task.thresholds)
            info["sfms_columns"] = [task.mass_column, task.sfr_column]
        elif name == "environment":
            info["environment_column"] = task.column
            info["n_permutations"] = dict(task.n_permutations_)
        elif name == "similarity-search" and diagnostics["collapsed"]:
            result.meta["warning"] = diagnostics["message"]
            tables[name] = result
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
        One row per embedded galaxy: its catalogue row, ``projection_1`` /
        ``projection_2`` (the 2-D projection), ``sfms_class``, ``delta_ms``
        and ``cluster_*`` labels when the tasks made them.
    tasks : dict of str to `~astro_cl.tasks.DownstreamTask`, optional
        The fitted tasks (empty when read back from a folder).
    info : dict, optional
        JSON-able facts about the run: ``n_galaxies``, ``n_features``,
        ``embedding`` (`~astro_cl.tasks.embedding_diagnostics`),
        ``projection`` (its name), ``left_out`` (catalogue columns not ranked
        and why), ``skipped_tasks``, ``skipped_properties``, the main-sequence
        fit, ``kendall_tau``, ...
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

    def __init__(self, tables, galaxies, *, tasks=None, info=None, config=None, provenance=None):
        self.tables = dict(tables)
        self.galaxies = galaxies
        self.tasks = dict(tasks or {})
        self.info = dict(info or {})
        self.config = dict(config or {})
        self.provenance = dict(provenance or {})
        self.history = {}
        self.thumbnails = {}

    def __repr__(self):
        return (f"<TaskResults: {self.info.get('n_galaxies', len(self.galaxies))} galaxies, "
                f"tables {list(self.tables)}>")

    @property
    def collapsed(self):
        """bool: whether the embedding collapsed (see `~astro_cl.tasks.embedding_diagnostics`)."""
        return bool(self.info.get("embedding", {}).get("collapsed", False))

    @property
    def projection(self):
        """`numpy.ndarray` or None: the ``(N, 2)`` projection of the embedding."""
        cols = set(self.galaxies.colnames)
        for a, b in (("projection_1", "projection_2"), ("umap_1", "umap_2")):
            if {a, b} <= cols:
                return np.column_stack([np.asarray(self.galaxies[a], dtype=float),
                                        np.asarray(self.galaxies[b], dtype=float)])
        return None

    # -- files ------------------------------------------------------------------
    def write(self, folder):
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
            with atomic_path(folder / "thumbnails.npz") as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{str(k): np.asarray(v)
                                           for k, v in self.thumbnails.items()})
        return folder

    @classmethod
    def read(cls, folder):
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
            with np.load(thumbs, allow_pickle=False) as npz:
                out.thumbnails = {k: npz[k] for k in npz.files}
        return out

    # -- what the report says -----------------------------------------------------
    def overview(self):
        """Say what was done, item by item, for the report's first section.

        Returns
        -------
        items : list of (str, str)
        """
        from astro_cl.studies.report import describe_tasks

        info = self.info
        meta = self.provenance.get("embeddings_meta", {}) or {}
        items = []
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

    def notes(self):
        """Return the warnings the report shows first (a collapsed embedding, skipped tasks).

        Returns
        -------
        notes : list of (str, str)
            ``("warning", text)`` pairs.
        """
        out = []
        emb = self.info.get("embedding", {})
        if emb.get("collapsed"):
            out.append(("warning", emb["message"][0].upper() + emb["message"][1:] + "."))
        for name, reason in self.info.get("skipped_tasks", {}).items():
            out.append(("info", f"{name} was not run: {reason}."))
        return out

    def headline(self):
        """Return the headline results beside the eCALIFA study's findings.

        Returns
        -------
        rows : list of dict
            See `~astro_cl.report.html.write_report` (``headline``).
        """
        from astro_cl.studies.report import task_headline

        return task_headline(self)

    def figures(self, *, n_columns=9, n_queries=4, queries=None, thumbnail_label=None):
        """Draw the results.

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

    def report_tables(self):
        """Return the tables the report shows, by name.

        Returns
        -------
        tables : dict of str to `~astropy.table.QTable`
        """
        return dict(self.tables)

    def report(self, folder, *, title="astro_cl analysis report", n_columns=9, n_queries=4):
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

