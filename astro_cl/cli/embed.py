"""``astro-cl embed MODEL SURVEY [PATH]``: the embedding table of a survey."""

__all__ = ["HELP", "add_arguments", "run", "write_embeddings"]

HELP = "Write the embedding table (ECSV and FITS) of a survey for a trained encoder."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_survey_arguments

    parser.add_argument("model", metavar="MODEL",
                        help="model file written by `astro-cl train` (or a last.pt)")
    add_survey_arguments(parser)
    parser.add_argument("--out", required=True,
                        help="output table; written as <stem>.ecsv and <stem>.fits")
    parser.add_argument("--n-views", type=int, default=1,
                        help="augmented realisations per galaxy (median, as the eCALIFA study)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmented views")
    parser.add_argument("--readout", choices=("embedding", "features"), default="embedding",
                        help="SimCLR: the trained embedding (default), or the pooled features "
                             "of the convolutional trunk before the dense head")
    parser.add_argument("--modality", choices=("image", "cube"), default=None,
                        help="two-tower (CLIP) models: the tower that embeds the survey "
                             "(default: cube for a survey of cubes, else image)")
    parser.add_argument("--cache-dir", default=None,
                        help="cache the preprocessed inputs here (default: a temporary folder)")
    from astro_cl.cli.preprocess import add_executor_arguments

    # without --executor: one process, as before; with it, shards on workers, resumable
    add_executor_arguments(parser)


def write_embeddings(table, out):
    """Write an embedding table as ``<stem>.ecsv`` and ``<stem>.fits``, atomically.

    Parameters
    ----------
    table : `~astropy.table.QTable`
    out : str or `~pathlib.Path`
        Output path; a ``.ecsv`` / ``.fits`` suffix is replaced.

    Returns
    -------
    stem : `~pathlib.Path`
    """
    import json
    from pathlib import Path

    from astro_cl.utils.io import atomic_path

    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".ecsv", ".fits") else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(stem.with_suffix(".ecsv")) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    fits_table = table.copy()
    fits_table.meta = {k.upper()[:8]: (v if isinstance(v, (str, int, float)) else json.dumps(v))
                       for k, v in table.meta.items()}
    with atomic_path(stem.with_suffix(".fits")) as tmp:
        fits_table.write(tmp, format="fits", overwrite=True)
    return stem


def _embed_options(model, args, survey):
    """Return the keyword arguments of ``model.embed`` that the command line sets.

    `~astro_cl.scaling.embed_options` refuses those the model does not take;
    a two-tower model's tower defaults to the one the survey's data need.
    """
    import inspect

    from astro_cl.scaling import embed_options

    values = {"n_views": args.n_views, "seed": args.seed, "readout": args.readout,
              "modality": args.modality}
    options = embed_options(model, values,
                            labels={k: "--" + k.replace("_", "-") for k in values})
    if "modality" in inspect.signature(model.embed).parameters and "modality" not in options:
        options["modality"] = "cube" if getattr(survey, "default_kind", None) == "cube" \
            else "image"
    return options


def run(args):
    """Embed and write the tables.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.cli._options import survey_from_args
    from astro_cl.exceptions import ValidationError
    from astro_cl.models.artefact import load_model

    model = load_model(args.model)
    if getattr(model, "output_type", None) != "embedding" or not hasattr(model, "embed"):
        msg = (f"{args.model} holds a {model.name!r} model, which predicts "
               f"{model.output_type}, not embeddings (use `astro-cl predict`)")
        raise ValidationError(msg)
    if args.n_views < 1:
        msg = f"--n-views: expected a positive integer, got {args.n_views}"
        raise ValidationError(msg)
    survey = survey_from_args(args)
    options = _embed_options(model, args, survey)
    if args.executor is None:
        if args.scheduler is not None:
            msg = "--scheduler: needs --executor dask"
            raise ValidationError(msg)
        table = model.embed(survey, cache_dir=args.cache_dir, **options)
        stem = write_embeddings(table, args.out)
    else:
        import shutil
        from pathlib import Path

        from astro_cl.scaling import embed_survey

        out = Path(args.out)
        work = (out.with_suffix("") if out.suffix in (".ecsv", ".fits") else out)
        work = work.with_name(f"{work.name}.parts")  # resumed from, removed once written
        if "modality" in options:
            msg = (f"--executor: a {model.name!r} model embeds in one process (leave out "
                   "--executor)")
            raise ValidationError(msg)
        table, summary = embed_survey(args.model, survey, work_dir=work,
                                      executor=args.executor, workers=args.workers,
                                      scheduler=args.scheduler, cache_dir=args.cache_dir,
                                      on_error=args.on_error, **options)
        print(summary)
        stem = write_embeddings(table, args.out)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {len(table)} embeddings to {stem}.ecsv and {stem}.fits")
    return 0
