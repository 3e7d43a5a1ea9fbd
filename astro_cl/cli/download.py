"""``astro-cl download SURVEY IDS...``: fetch galaxies' files from the survey archive."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Download galaxies' files from a survey archive (eCALIFA, MaNGA) into a folder."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("survey", metavar="SURVEY", help="archive: ecalifa or manga")
    parser.add_argument("ids", metavar="ID", nargs="+",
                        help="galaxy ids (eCALIFA names, MaNGA plate-IFUs)")
    parser.add_argument("--out", required=True,
                        help="folder for the files (then: astro-cl info SURVEY FOLDER)")
    parser.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                        help="file kinds to fetch (default: all the survey's kinds)")
    parser.add_argument("--base-url", default=None,
                        help="a mirror's base URL replacing the archive's")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the server, per file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    """Download the files.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.exceptions import ValidationError
    from astro_cl.surveys.remote import ARCHIVES, fetch

    if args.survey not in ARCHIVES:
        msg = f"download: no archive known for survey {args.survey!r}; known: {sorted(ARCHIVES)}"
        raise ValidationError(msg)
    kinds = args.kinds
    if kinds:
        unknown = sorted(set(kinds) - set(ARCHIVES[args.survey]))
        if unknown:
            msg = (f"download: {args.survey} has no file kinds {unknown}; "
                   f"known: {sorted(ARCHIVES[args.survey])}")
            raise ValidationError(msg)
    paths = fetch(args.survey, args.ids, args.out, kinds=kinds, base_url=args.base_url,
                  progress=not args.no_progress, timeout=args.timeout)
    print(f"downloaded {len(paths)} files to {args.out}")
    return 0
