"""``astro-cl predict``: predict property maps with a trained map regressor."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Predict property maps of a survey and write them as multi-extension FITS files."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("checkpoint", help="model file of a map regressor (cnn-regressor)")
    parser.add_argument("--survey", required=True, help="registered survey name")
    parser.add_argument("--path", help="survey directory (passed as path=)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="other survey parameter (repeatable)")
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
    from astro_cl.cli.embed import _survey, load_model
    from astro_cl.data.fits_maps import write_maps

    model = load_model(args.checkpoint)
    if getattr(model, "output_kind", None) != "maps":
        print(f"astro-cl predict: {args.checkpoint} holds a {model.name!r} model, which does "
              "not predict maps")
        return 2
    survey = _survey(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for gid, maps in zip(survey.ids, model.predict_maps(survey), strict=True):
        write_maps(out / f"{gid}.maps.fits", maps,
                   header={"OBJECT": gid, "MODEL": model.name, "ASTROCL": __version__})
    print(f"wrote {len(survey)} map files to {out}")
    return 0
