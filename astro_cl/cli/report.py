"""``astro-cl report RESULTS``: the HTML report of an ``astro-cl evaluate`` results folder.

The report says what was done, gives the headline results beside the eCALIFA
study's findings, then draws the figures (the projection coloured by the
best-ranked properties, clusters on the SFR-mass plane, environments, the
similarity grid when the folder has ``thumbnails.npz``, training curves when
it has ``history.json``) and shows the tables and the provenance. The work is
`astro_cl.studies.TaskResults.read` and `astro_cl.studies.TaskResults.report`.
"""

HELP = "Build the HTML report (figures, tables, configuration) of an evaluate results folder."

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("results", metavar="RESULTS", help="folder written by `astro-cl evaluate`")
    parser.add_argument("--out", default=None, help="report folder (default: RESULTS/report)")
    parser.add_argument("--title", default="astro_cl analysis report", help="page title")
    parser.add_argument("--n-columns", type=int, default=9,
                        help="properties shown on the projection (best ranked first)")


def run(args):
    """Build the report.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from pathlib import Path

    from astro_cl.studies import TaskResults

    results = TaskResults.read(args.results)
    out = Path(args.results) / "report" if args.out is None else args.out
    index = results.report(out, title=args.title, n_columns=args.n_columns)
    print(f"report: {index}")
    return 0
