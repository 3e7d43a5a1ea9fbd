"""The ``astro-cl`` command line: a thin layer over the public Python API.

Each command lives in its own module ``astro_cl.cli.<command>`` exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Command modules import heavy dependencies inside ``run``, so ``--help`` is fast.
"""

import argparse
import importlib
import importlib.util
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

#: Command names, in the order ``--help`` lists them.
COMMANDS = (
    "plugins", "info", "download", "simulate", "preprocess", "train", "embed", "predict",
    "evaluate", "similar", "report", "demo",
)


def _command_modules():
    for name in COMMANDS:
        modname = f"astro_cl.cli.{name}"
        if importlib.util.find_spec(modname) is not None:
            yield name, importlib.import_module(modname)


def build_parser():
    """Return the argument parser of ``astro-cl`` with every available command.

    Returns
    -------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl import __version__

    parser = argparse.ArgumentParser(
        prog="astro-cl",
        description="Deep learning on resolved galaxy surveys: simulate, train, embed, "
                    "predict, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"astro-cl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(exc):
    """Return the message of an error the user caused, on one line."""
    if isinstance(exc, OSError) and exc.strerror:  # "path: Is a directory", not "[Errno 21] ..."
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


def main(argv=None):
    """Run the ``astro-cl`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status.
    """
    from astro_cl.exceptions import AstroCLError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except (AstroCLError, OSError) as exc:
        # an error the user can fix: one line naming it, no traceback
        print(f"astro-cl {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"astro-cl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
