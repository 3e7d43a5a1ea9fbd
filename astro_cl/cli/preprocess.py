"""``astro-cl preprocess CONFIG``: fit the preprocessor and write the survey into the store."""

__all__ = ["HELP", "add_arguments", "add_executor_arguments", "run"]

HELP = ("Fit a configuration's preprocessor on a sample and write every galaxy into the "
        "resumable store that `astro-cl train` reads (threads, processes or Dask).")


def add_executor_arguments(parser, *, default=None):
    """Add ``--executor``, ``--workers``, ``--scheduler`` and ``--on-error``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    default : str, optional
        Default executor (None: the command's own way, in one process).
    """
    from astro_cl.utils.executors import EXECUTORS

    parser.add_argument("--executor", choices=EXECUTORS, default=default,
                        help="where galaxies are processed: a thread pool, worker processes, or "
                             "a Dask cluster (a LocalCluster unless --scheduler)"
                             + (f"; default {default}" if default else ""))
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="threads, processes or LocalCluster workers (default: the CPUs "
                             "this process may use)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running Dask scheduler (e.g. tcp://host:8786, "
                             "one started by dask-jobqueue); with --executor dask")
    parser.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                        help="a galaxy that cannot be read or preprocessed is recorded and "
                             "left out (skip, the default) or stops the run (raise)")


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_set_argument

    parser.add_argument("config", metavar="CONFIG",
                        help="TOML training configuration with a [preprocess] table")
    add_set_argument(parser, what="override a configuration value (SECTION.KEY=VALUE)",
                     example="survey.n=1000")
    add_executor_arguments(parser, default="threads")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="store directory (default: <training.checkpoint_dir>/cache, "
                             "where `astro-cl train` looks)")
    parser.add_argument("--fit-sample", type=int, default=None, metavar="N",
                        help="galaxies the preprocessor is fitted on, drawn with --fit-seed "
                             "(default: reuse the fit kept in the store, else 1000)")
    parser.add_argument("--fit-seed", type=int, default=0, help="seed of the fit sample")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try the galaxies recorded as failed again")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    """Preprocess and print a summary.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
        0, or 1 when some galaxies failed (they are listed).
    """
    from astro_cl.exceptions import ValidationError
    from astro_cl.scaling import preprocess_from_config
    from astro_cl.training.config import load_config
    from astro_cl.utils.cpus import available_cpus

    if args.workers is not None and args.workers < 1:
        msg = f"--workers: expected a positive integer, got {args.workers}"
        raise ValidationError(msg)
    config = load_config(args.config, args.settings)
    workers = args.workers
    if workers is None and args.scheduler is None:
        workers = available_cpus()
    source = preprocess_from_config(
        config, store=args.store, executor=args.executor, workers=workers,
        scheduler=args.scheduler, on_error=args.on_error, fit_sample=args.fit_sample,
        fit_seed=args.fit_seed, retry_failed=args.retry_failed,
        progress=not args.no_progress)
    if source is None:
        print("fitted the preprocessor (this configuration preprocesses every augmented view, "
              "so no store is written)")
        return 0
    print(source.summary)
    return 1 if source.failed else 0
