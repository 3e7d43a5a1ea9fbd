"""``astro-cl simulate``: write a mock survey (sdss-mock or ecalifa-mock) in real file formats."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Write a physical mock survey (sdss-mock images or ecalifa-mock cubes) to a directory."


def add_arguments(parser):
    """Add the command's arguments.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("survey", choices=("sdss-mock", "ecalifa-mock"), help="mock to write")
    parser.add_argument("--n", type=int, default=100, help="number of galaxies (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--twin", default=None,
                        help="real catalogue (ECSV/FITS, eCALIFA columns) to twin, one mock "
                             "per row")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (the output does not depend on it)")
    parser.add_argument("--size", type=int, default=None,
                        help="pixels per side (default 64 for sdss-mock, 48 for ecalifa-mock)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args):
    """Write the mock survey.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.exceptions import ValidationError
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    # checked here: the survey would otherwise write an empty catalogue and report success
    for option, value, low, what in (("--n", args.n, 1, "number of galaxies"),
                                     ("--seed", args.seed, 0, "seed"),
                                     ("--workers", args.workers, 1, "number of processes")):
        if value < low:
            msg = f"{option} {value}: expected a {what} >= {low}"
            raise ValidationError(msg)
    cls = SDSSMockSurvey if args.survey == "sdss-mock" else ECALIFAMockSurvey
    kwargs = {"n": args.n, "seed": args.seed, "twin": args.twin}
    if args.size is not None:
        kwargs["size"] = args.size
    survey = cls(**kwargs)
    cat = survey.write(args.out, workers=args.workers, progress=not args.no_progress)
    print(f"wrote {len(cat)} {args.survey} galaxies and catalogue.ecsv to {args.out}")
    return 0
