"""``astro-cl embed``: embed a survey with a trained contrastive encoder."""

__all__ = ["HELP", "add_arguments", "load_model", "run"]

HELP = "Write the embedding table (ECSV and FITS) of a survey for a trained encoder."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("checkpoint", help="model file (astro-cl train output or last.pt)")
    parser.add_argument("--survey", required=True, help="registered survey name")
    parser.add_argument("--path", help="survey directory (passed as path=)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="other survey parameter (repeatable)")
    parser.add_argument("--out", required=True,
                        help="output table; written as <stem>.ecsv and <stem>.fits")
    parser.add_argument("--n-views", type=int, default=1,
                        help="augmented realisations per galaxy (median, as the eCALIFA study)")
    parser.add_argument("--seed", type=int, default=0)


def _survey(args):
    from astro_cl.plugins.registry import get_survey
    from astro_cl.training.config import _parse_value

    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = _parse_value(value)
    if args.path:
        params["path"] = args.path
    return get_survey(args.survey, **params)


def load_model(path):
    """Load any registered encoder from a checkpoint.

    Parameters
    ----------
    path : str

    Returns
    -------
    encoder : `~astro_cl.models.Encoder`
    """
    from astro_cl.plugins.registry import get_component_class
    from astro_cl.training.checkpoints import load_checkpoint

    name = load_checkpoint(path)["header"]["model"]
    return get_component_class("encoder", name).load(path)


def run(args):
    """Embed and write the tables.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    import json
    from pathlib import Path

    from astro_cl.utils.io import atomic_path

    encoder = load_model(args.checkpoint)
    table = encoder.embed(_survey(args), n_views=args.n_views, seed=args.seed)
    out = Path(args.out)
    stem = out.with_suffix("") if out.suffix in (".ecsv", ".fits") else out
    with atomic_path(stem.with_suffix(".ecsv")) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    fits_table = table.copy()
    fits_table.meta = {k.upper()[:8]: (v if isinstance(v, (str, int, float)) else json.dumps(v))
                       for k, v in table.meta.items()}
    with atomic_path(stem.with_suffix(".fits")) as tmp:
        fits_table.write(tmp, format="fits", overwrite=True)
    print(f"wrote {len(table)} embeddings to {stem}.ecsv and {stem}.fits")
    return 0
