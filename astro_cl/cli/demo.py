"""``astro-cl demo``: both studies end to end on simulated surveys, no download.

Simulates an eCALIFA-like IFU survey and SDSS-like ugriz cutouts, trains
SimCLR and the PICASSSO U-Net at a small size, runs every downstream task,
writes a report folder and prints a short summary. See `astro_cl.demo.run_demo`.
"""

HELP = "Run both studies end to end on simulated surveys (no download) and write a report."

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("--out", default="astro-cl-demo",
                        help="output folder (default: ./astro-cl-demo)")
    parser.add_argument("--size", default="small", choices=("tiny", "small", "medium", "study"),
                        help="scale: small (default, minutes on a CPU), medium, study (the "
                             "studies' settings; hours, a GPU helps); tiny only checks that "
                             "every step runs (plumbing): its numbers are not results")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random step")
    parser.add_argument("--catalogue", default=None, metavar="PATH",
                        help="real eCALIFA catalogue (CSV/ECSV/FITS) to twin, e.g. "
                             "ecalifa_global.csv (default: the built-in mock population)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 if an acceptance threshold is missed, at any "
                             "size (without it misses are reported and the status is 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args):
    """Run the demo and print its summary.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
        0, or 1 when ``--check`` is given and a threshold is missed.
    """
    import sys

    from astro_cl.demo import PLUMBING_SIZES, AcceptanceError, format_summary, run_demo

    if args.size in PLUMBING_SIZES:
        print(f"astro-cl demo --size {args.size}: checks the plumbing only (every step runs on "
              "a toy problem); its numbers are not results.")
    try:
        summary = run_demo(args.out, size=args.size, seed=args.seed, catalogue=args.catalogue,
                           check=args.check, progress=not args.no_progress)
    except AcceptanceError as exc:
        print(format_summary(exc.summary))
        print(f"astro-cl demo: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0
