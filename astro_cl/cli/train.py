"""``astro-cl train``: train an encoder from one TOML configuration file."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Train a model from a TOML configuration (survey, preprocessing, augmentations, model)."


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("config", help="TOML configuration file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="override a configuration value, e.g. model.lr=1e-3 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from training.checkpoint_dir/last.pt")


def run(args):
    """Train.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.training.config import load_config, train_from_config

    config = load_config(args.config, args.overrides)
    encoder = train_from_config(config, resume=args.resume)
    hist = getattr(encoder, "history_", [])
    if hist:
        last = hist[-1]
        print(f"trained {encoder.name}: {len(hist)} epochs, last train loss "
              f"{last['train_loss']:.4g}")
    return 0
