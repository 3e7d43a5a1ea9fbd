"""``astro-cl report``: build the HTML report of a results folder written by ``astro-cl evaluate``.

Figures come from ``galaxies.ecsv`` (projection coloured by the best-ranked
properties, clusters on the SFR-mass plane, environments), the task tables and,
when present, ``history.json`` (training curves: a dict of per-epoch lists or a
list of per-epoch dicts) and ``thumbnails.npz`` (images by galaxy id, for the
similarity-search grid). `build_report` does the same from Python.
"""

HELP = "Build the HTML report (figures, tables, configuration) of an evaluate results folder."

__all__ = ["HELP", "add_arguments", "build_report", "run"]


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("results", help="folder written by `astro-cl evaluate`")
    parser.add_argument("--out", default=None, help="report folder (default: RESULTS/report)")
    parser.add_argument("--title", default="astro_cl analysis report", help="page title")
    parser.add_argument("--n-columns", type=int, default=9,
                        help="properties shown on the projection (best ranked first)")


def build_report(results, *, out=None, title="astro_cl analysis report", n_columns=9,
                 n_queries=4):
    """Build the report folder of an evaluate results folder.

    Parameters
    ----------
    results : str or `~pathlib.Path`
        Folder written by ``astro-cl evaluate`` (or `~astro_cl.cli.evaluate.run_tasks`).
    out : str or `~pathlib.Path`, optional
        Report folder (default ``results/report``).
    title : str, optional
    n_columns : int, optional
        Properties drawn on the projection.
    n_queries : int, optional
        Query galaxies in the similarity grid (when thumbnails exist).

    Returns
    -------
    index : `~pathlib.Path`
        The report's ``index.html``.
    """
    import json
    from pathlib import Path

    import numpy as np
    from astropy.table import QTable

    from astro_cl.exceptions import ValidationError
    from astro_cl.report import figures as F
    from astro_cl.report.html import write_report
    from astro_cl.tasks._common import _label_column

    results = Path(results)
    run_file = results / "run.json"
    if not run_file.is_file():
        msg = f"{results}: not an evaluate results folder (no run.json)"
        raise ValidationError(msg)
    run_info = json.loads(run_file.read_text(encoding="utf-8"))
    tables = {p.stem: QTable.read(p, format="ascii.ecsv")
              for p in sorted((results / "tables").glob("*.ecsv"))}
    galaxies_file = results / "galaxies.ecsv"
    galaxies = QTable.read(galaxies_file, format="ascii.ecsv") if galaxies_file.is_file() else None
    figs = {}
    ranking = tables.get("property-correlation")
    if ranking is not None and len(ranking):
        figs["property ranking"] = F.plot_correlation_ranking(
            ranking, study=tables.get("study-comparison"))
    has_xy = galaxies is not None and {"umap_1", "umap_2"} <= set(galaxies.colnames)
    if has_xy:
        xy = np.column_stack([np.asarray(galaxies["umap_1"]), np.asarray(galaxies["umap_2"])])
        cols = ([str(p) for p in ranking["property"] if str(p) in galaxies.colnames]
                if ranking is not None else [])
        if cols:
            figs["projection by property"] = F.plot_umap(xy, galaxies, cols[:n_columns])
    info = run_info.get("results", {})
    if galaxies is not None and "sfms_class" in galaxies.colnames and "sfms_columns" in info:
        mass_col, sfr_col = info["sfms_columns"]
        if {mass_col, sfr_col} <= set(galaxies.colnames):
            labels = {"SFMS class": _label_column(galaxies, "sfms_class")}
            labels.update({c.removeprefix("cluster_"): np.asarray(galaxies[c])
                           for c in galaxies.colnames if c.startswith("cluster_")})
            figs["clusters on the SFMS plane"] = F.plot_sfms_clusters(
                galaxies, labels, mass_column=mass_col, sfr_column=sfr_col,
                main_sequence=info.get("main_sequence"), thresholds=info.get("sfms_thresholds"))
    for name, table in tables.items():
        if name.startswith("sfms-confusion-"):
            figs[f"confusion {name.removeprefix('sfms-confusion-')}"] = F.plot_confusion(
                table, title=name.removeprefix("sfms-confusion-"))
    env_table = tables.get("environment")
    env_col = (run_info.get("config", {}).get("tasks", {}).get("environment", {})
               .get("column", "environment"))
    if has_xy and env_table is not None and env_col in galaxies.colnames:
        figs["environment"] = F.plot_environment(xy, np.asarray(galaxies[env_col]),
                                                 results=env_table)
    thumbs = results / "thumbnails.npz"
    neighbours = tables.get("similarity-search")
    if thumbs.is_file() and neighbours is not None and len(neighbours):
        with np.load(thumbs, allow_pickle=False) as npz:
            images = {k: npz[k] for k in npz.files}
        queries = [q for q in dict.fromkeys(np.asarray(neighbours["query"]).astype(str))
                   if q in images][:n_queries]
        if queries:
            figs["similarity search"] = F.plot_similarity_grid(queries, neighbours, images)
    history = results / "history.json"
    if history.is_file():
        figs["training curves"] = F.plot_training_curves(
            json.loads(history.read_text(encoding="utf-8")))
    index = write_report(results / "report" if out is None else out, figures=figs,
                         tables=tables, config=run_info.get("config", {}),
                         provenance=run_info.get("provenance", {}), title=title)
    return index


def run(args):
    """Build the report.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    index = build_report(args.results, out=args.out, title=args.title,
                         n_columns=args.n_columns)
    print(f"report: {index}")
    return 0
