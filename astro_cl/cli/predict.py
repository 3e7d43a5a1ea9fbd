"""``astro-cl predict MODEL SURVEY [PATH]``: predicted property maps of a survey."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Predict property maps of a survey and write them as multi-extension FITS files."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_survey_arguments

    parser.add_argument("model", metavar="MODEL",
                        help="model file of a map regressor (cnn-regressor)")
    add_survey_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory (<id>.maps.fits per galaxy)")


def run(args):
    """Predict and write the maps.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from pathlib import Path

    from astro_cl import __version__
    from astro_cl.cli._options import survey_from_args
    from astro_cl.data.fits_maps import write_maps
    from astro_cl.exceptions import ValidationError
    from astro_cl.models.artefact import load_model

    model = load_model(args.model)
    if getattr(model, "output_kind", None) != "maps":
        msg = (f"{args.model} holds a {model.name!r} model, which does not predict maps "
               "(use `astro-cl embed`)")
        raise ValidationError(msg)
    survey = survey_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for gid, maps in zip(survey.ids, model.predict_maps(survey), strict=True):
        write_maps(out / f"{gid}.maps.fits", maps,
                   header={"OBJECT": gid, "MODEL": model.name, "ASTROCL": __version__})
    print(f"wrote {len(survey)} map files to {out}")
    return 0
