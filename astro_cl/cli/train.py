"""``astro-cl train CONFIG``: train a model from one TOML configuration file."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Train a model from a TOML configuration (survey, preprocessing, augmentations, model)."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_set_argument

    parser.add_argument("config", metavar="CONFIG", help="TOML configuration file")
    add_set_argument(parser, what="override a configuration value (SECTION.KEY=VALUE)",
                     example="training.epochs=3")
    parser.add_argument("--resume", action="store_true",
                        help="continue from training.checkpoint_dir/last.pt")
    parser.add_argument("--fast-dev-run", nargs="?", type=int, const=1, default=0, metavar="N",
                        help="check the whole path on N batches (default 1) of one epoch: no "
                             "checkpoints, no cache; the model goes to <output "
                             "stem>-fast-dev-run.pt (or --output)")
    parser.add_argument("--output", default=None,
                        help="model file (default: training.output of the configuration)")


def run(args):
    """Train.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.exceptions import ValidationError
    from astro_cl.training.config import load_config, train_from_config

    if args.fast_dev_run < 0:
        msg = f"--fast-dev-run: expected a positive number of batches, got {args.fast_dev_run}"
        raise ValidationError(msg)
    if args.fast_dev_run and args.resume:
        msg = "--fast-dev-run and --resume exclude each other (a fast dev run writes no checkpoint)"
        raise ValidationError(msg)
    config = load_config(args.config, args.settings)
    encoder = train_from_config(config, resume=args.resume, fast_dev_run=args.fast_dev_run,
                                output=args.output)
    hist = getattr(encoder, "history_", [])
    what = "fast dev run of" if args.fast_dev_run else "trained"
    if hist:
        last = hist[-1]
        print(f"{what} {encoder.name}: {len(hist)} epochs, last train loss "
              f"{last['train_loss']:.4g}")
    out = getattr(encoder, "output_path_", None)
    if out is not None:
        print(f"model written to {out} (model card: {out.with_suffix('.md')})")
    return 0
