"""``astro-cl evaluate EMBEDDINGS --catalogue PATH``: downstream tasks on an embedding.

Writes a results folder: ``tables/<task>.ecsv`` (plus the study comparison and
confusion matrices), ``galaxies.ecsv`` (the catalogue rows of the embedded
galaxies with their 2-D projection, SFMS class and cluster labels) and
``run.json`` (configuration, provenance, and what the run found: which
catalogue columns were left out and why, which tasks could not run, whether
the embedding collapsed); ``astro-cl report`` turns it into an HTML report.
Task parameters are set with ``--set TASK.KEY=VALUE`` (values typed as TOML).
The work is `astro_cl.studies.run_tasks` and `astro_cl.studies.TaskResults.write`.
"""

HELP = "Run downstream tasks (correlation, clustering, environment, ...) on embeddings."

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_set_argument

    parser.add_argument("embeddings", metavar="EMBEDDINGS",
                        help="embeddings table (ECSV/FITS with id and embedding columns)")
    parser.add_argument("--catalogue", required=True, metavar="PATH",
                        help="catalogue (ECSV, FITS or CSV) with an id/Name/ID column")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                        help="registered task names (default: property-correlation "
                             "property-regression sfms-clustering environment similarity-search, "
                             "skipping those the catalogue cannot support)")
    add_set_argument(parser, what="task parameter TASK.KEY",
                     example="property-correlation.n_bootstrap=50")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _task_params(settings):
    from astro_cl.exceptions import ValidationError
    from astro_cl.utils.options import parse_assignments

    params = parse_assignments(settings, option="--set")
    for task, value in params.items():
        if not isinstance(value, dict):
            msg = (f"--set {task}={value!r}: expected TASK.KEY=VALUE, e.g. "
                   f"property-correlation.n_bootstrap=50")
            raise ValidationError(msg)
    return params


def _print_findings(results, out):
    info = results.info
    for name in results.tables:
        print(f"wrote {out}/tables/{name}.ecsv")
    emb = info.get("embedding", {})
    if emb.get("collapsed"):
        print(f"WARNING: {emb['message']}.")
    for name, reason in info.get("skipped_tasks", {}).items():
        print(f"not run: {name} ({reason})")
    by_role = {}
    for col, why in info.get("left_out", {}).items():
        by_role.setdefault(why, []).append(col)
    if by_role:
        print("not ranked as properties (name them in "
              "--set property-correlation.properties=[...] to rank them):")
        for why, cols in by_role.items():
            print(f"  {why}: {', '.join(cols)}")
    for name, reason in info.get("skipped_properties", {}).items():
        print(f"property skipped: {name} ({reason})")
    if "property-correlation" in results.tables:
        ranking = results.tables["property-correlation"]
        top = ", ".join(f"{p} ({s:.2f})" for p, s in
                        zip(ranking["property"][:7], ranking["score"][:7], strict=False))
        print(f"ranking: {top}")


def run(args):
    """Run the tasks and write the results folder.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.studies import read_table, run_tasks
    from astro_cl.utils.io import file_checksum

    params = _task_params(args.settings)
    embeddings = read_table(args.embeddings)
    catalogue = read_table(args.catalogue)
    provenance = {
        "embeddings": str(args.embeddings), "embeddings_sha256": file_checksum(args.embeddings),
        "catalogue": str(args.catalogue), "catalogue_sha256": file_checksum(args.catalogue),
    }
    results = run_tasks(embeddings, catalogue, tasks=args.tasks, params=params,
                        progress=not args.no_progress, provenance=provenance)
    results.write(args.out)
    _print_findings(results, args.out)
    return 0
