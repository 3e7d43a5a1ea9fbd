"""Options shared by the commands: one way to name a survey and to set parameters.

Every command that reads a survey takes ``SURVEY [PATH]`` positionals (the
registered survey name and, for surveys on disk, its directory or file) and
``--set KEY=VALUE`` for the survey's other parameters, values typed as TOML
(see `astro_cl.utils.options`).
"""

__all__ = ["add_set_argument", "add_survey_arguments", "survey_from_args"]


def add_set_argument(parser, *, what="survey parameter", example="n=16"):
    """Add the repeatable ``--set KEY=VALUE`` option.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    what : str, optional
        What the keys name, for the help text.
    example : str, optional
        An example assignment for the help text.
    """
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE",
                        help=f"{what}, value typed as TOML (e.g. --set {example}); repeatable")


def add_survey_arguments(parser):
    """Add ``SURVEY [PATH]`` and ``--set KEY=VALUE``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    parser.add_argument("survey", metavar="SURVEY",
                        help="registered survey name (see `astro-cl plugins`)")
    parser.add_argument("path", metavar="PATH", nargs="?", default=None,
                        help="the survey's directory or file (not needed for mock surveys)")
    add_set_argument(parser)


def survey_from_args(args):
    """Open the survey named by `add_survey_arguments` options.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    survey : `~astro_cl.surveys.Survey`
    """
    from astro_cl.plugins.registry import get_component_class, get_survey
    from astro_cl.training.schema import validate_params
    from astro_cl.utils.options import parse_assignments

    params = parse_assignments(args.settings)
    if args.path is not None:
        params["path"] = args.path
    # an unknown key or a mistyped number: one clear error, not a TypeError from __init__
    validate_params(get_component_class("survey", args.survey), params,
                    where=f"survey {args.survey!r}", numbers_only=True)
    return get_survey(args.survey, **params)
