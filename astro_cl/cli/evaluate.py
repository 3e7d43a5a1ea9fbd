"""``astro-cl evaluate``: run downstream tasks on an embeddings table and write their tables.

The results folder holds ``tables/<task>.ecsv`` (plus the study comparison and
confusion matrices), ``galaxies.ecsv`` (the catalogue rows of the embedded
galaxies with their 2-D projection, SFMS class and cluster labels) and
``run.json`` (configuration and provenance); ``astro-cl report`` turns it into
an HTML report. `run_tasks` does the same from Python.
"""

HELP = "Run downstream tasks (correlation, clustering, environment, ...) on embeddings."

#: Tasks run by default, in order; those whose catalogue columns are missing are skipped.
DEFAULT_TASKS = ("property-correlation", "property-regression", "sfms-clustering",
                 "environment", "similarity-search")

__all__ = ["DEFAULT_TASKS", "HELP", "add_arguments", "read_table", "run", "run_tasks"]


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("embeddings", help="embeddings table (ECSV/FITS with id and embedding)")
    parser.add_argument("--catalogue", required=True,
                        help="catalogue (ECSV, FITS or CSV) with an id/Name/ID column")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                        help=f"registered task names (default: {' '.join(DEFAULT_TASKS)})")
    parser.add_argument("--param", action="append", default=[], metavar="TASK.KEY=VALUE",
                        help="task parameter, VALUE as JSON (e.g. "
                             "property-correlation.n_bootstrap=50); repeatable")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_table(path):
    """Read a table, recognising ECSV content whatever the file extension.

    Parameters
    ----------
    path : str or `~pathlib.Path`

    Returns
    -------
    table : `~astropy.table.QTable`
    """
    from pathlib import Path

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


def _parse_params(items):
    import json

    from astro_cl.exceptions import ValidationError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        task, dot, param = key.rpartition(".")
        if not sep or not dot:
            msg = f"--param {item!r}: expected TASK.KEY=VALUE"
            raise ValidationError(msg)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(task, {})[param] = parsed
    return out


def _applicable(name, catalogue, params):
    """Whether a default task has the catalogue columns it needs."""
    cols = set(catalogue.colnames)
    if name == "sfms-clustering":
        p = params.get(name, {})
        if p.get("class_column"):
            return p["class_column"] in cols
        return {p.get("mass_column", "log_Mass"), p.get("sfr_column", "log_SFR_Ha")} <= cols
    if name == "environment":
        return params.get(name, {}).get("column", "environment") in cols
    return True


def run_tasks(embeddings, catalogue, *, tasks=None, params=None, out=None, progress=True,
              provenance=None):
    """Fit and evaluate downstream tasks; optionally write a results folder.

    Parameters
    ----------
    embeddings : `~astropy.table.QTable` or `numpy.ndarray`
        Embeddings table (``id``, ``embedding``) or array.
    catalogue : `~astropy.table.QTable`
        Catalogue of the same galaxies.
    tasks : list of str, optional
        Registered task names (default `DEFAULT_TASKS`, skipping those whose
        catalogue columns are missing).
    params : dict of str to dict, optional
        Parameters per task name.
    out : str or `~pathlib.Path`, optional
        Results folder to write (see the module docstring).
    progress : bool, optional
        Show a progress bar over tasks.
    provenance : dict, optional
        Extra provenance recorded in ``run.json`` (input paths, checksums).

    Returns
    -------
    results : dict
        Task name -> fitted task, under ``"tasks"``; table name -> table,
        under ``"tables"``; the per-galaxy table under ``"galaxies"``.
    """
    import json
    from pathlib import Path

    import numpy as np
    from astropy.table import QTable
    from tqdm.auto import tqdm

    from astro_cl.plugins.registry import get_task
    from astro_cl.tasks._common import _align

    params = dict(params or {})
    names = list(tasks) if tasks is not None else [
        t for t in DEFAULT_TASKS if _applicable(t, catalogue, params)]
    X, cat, ids = _align(embeddings, catalogue)
    fitted, tables = {}, {}
    galaxies = QTable(cat, copy=True)
    if ids is not None:
        galaxies["id"] = ids
    for name in tqdm(names, desc="tasks", disable=not progress):
        task = get_task(name, **params.get(name, {}))
        task.fit(embeddings, catalogue)
        result = task.evaluate()
        fitted[name] = task
        tables[name] = result
        if name == "property-correlation":
            from astro_cl.tasks.correlation import compare_with_study

            tables["study-comparison"] = compare_with_study(result)
            if task.projection_ is not None:
                galaxies["umap_1"] = task.projection_[:, 0]
                galaxies["umap_2"] = task.projection_[:, 1]
        elif name == "sfms-clustering":
            per_galaxy = task.galaxy_table()
            for col in per_galaxy.colnames:
                if col != "id":
                    galaxies[col] = per_galaxy[col]
            for key, conf in task.confusion_.items():
                tables[f"sfms-confusion-{key}"] = conf
    if out is not None:
        from astro_cl import __version__
        from astro_cl.utils.io import atomic_path, atomic_write

        out = Path(out)
        for tname, table in tables.items():
            with atomic_path(out / "tables" / f"{tname}.ecsv") as tmp:
                table.write(tmp, format="ascii.ecsv", overwrite=True)
        keep = [c for c in galaxies.colnames if getattr(galaxies[c], "ndim", 1) == 1]
        with atomic_path(out / "galaxies.ecsv") as tmp:
            galaxies[keep].write(tmp, format="ascii.ecsv", overwrite=True)
        run_info = {
            "config": {"tasks": {n: {k: v for k, v in t.get_params(deep=False).items()}
                                 for n, t in fitted.items()},
                       "n_galaxies": len(X), "n_features": int(X.shape[1])},
            "provenance": {"astro_cl_version": __version__, **(provenance or {})},
            "results": {},
        }
        if "sfms-clustering" in fitted:
            task = fitted["sfms-clustering"]
            run_info["results"]["main_sequence"] = task.main_sequence_
            run_info["results"]["sfms_thresholds"] = list(task.thresholds)
            run_info["results"]["sfms_columns"] = [task.mass_column, task.sfr_column]
        if "study-comparison" in tables:
            run_info["results"]["kendall_tau"] = tables["study-comparison"].meta["kendall_tau"]
        if hasattr(embeddings, "meta"):
            run_info["provenance"]["embeddings_meta"] = dict(embeddings.meta)
        with atomic_write(out / "run.json") as fh:
            json.dump(run_info, fh, indent=2, default=lambda o: o.item()
                      if isinstance(o, np.generic) else str(o))
            fh.write("\n")
    return {"tasks": fitted, "tables": tables, "galaxies": galaxies}


def run(args):
    """Run the tasks and write the results folder.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.utils.io import file_checksum

    embeddings = read_table(args.embeddings)
    catalogue = read_table(args.catalogue)
    provenance = {
        "embeddings": str(args.embeddings), "embeddings_sha256": file_checksum(args.embeddings),
        "catalogue": str(args.catalogue), "catalogue_sha256": file_checksum(args.catalogue),
    }
    results = run_tasks(embeddings, catalogue, tasks=args.tasks, params=_parse_params(args.param),
                        out=args.out, progress=not args.no_progress, provenance=provenance)
    for name in results["tables"]:
        print(f"wrote {args.out}/tables/{name}.ecsv")
    if "property-correlation" in results["tables"]:
        ranking = results["tables"]["property-correlation"]
        top = ", ".join(f"{p} ({s:.2f})" for p, s in
                        zip(ranking["property"][:7], ranking["score"][:7], strict=False))
        print(f"ranking: {top}")
    return 0
