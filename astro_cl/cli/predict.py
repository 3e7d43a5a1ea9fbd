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
    from astro_cl.cli.preprocess import add_executor_arguments

    # without --executor: one process, as before; with it, shards on workers, resumable
    add_executor_arguments(parser)


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
    if getattr(model, "output_type", None) != "maps":
        msg = (f"{args.model} holds a {model.name!r} model, which does not predict maps "
               "(use `astro-cl embed`)")
        raise ValidationError(msg)
    survey = survey_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.executor is not None:
        import shutil

        from astro_cl.scaling import predict_survey

        work = out / ".parts"  # resumed from, removed once every map is written
        ids, summary = predict_survey(args.model, survey, out, work_dir=work,
                                      executor=args.executor, workers=args.workers,
                                      scheduler=args.scheduler, on_error=args.on_error)
        print(summary)
        shutil.rmtree(work, ignore_errors=True)
        print(f"wrote {len(ids)} map files to {out}")
        return 0
    if args.scheduler is not None:
        msg = "--scheduler: needs --executor dask"
        raise ValidationError(msg)
    for gid, maps in zip(survey.ids, model.predict_maps(survey), strict=True):
        write_maps(out / f"{gid}.maps.fits", maps,
                   header={"OBJECT": gid, "MODEL": model.name, "ASTROCL": __version__})
    print(f"wrote {len(survey)} map files to {out}")
    return 0
