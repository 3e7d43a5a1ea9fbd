"""``astro-cl plugins``: list every registered component and where it comes from."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = ("List registered surveys, preprocessors, augmenters, encoders and tasks with their "
        "providers.")


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.plugins.registry import KINDS  # names only: no plugin is loaded

    parser.add_argument("--kind", choices=list(KINDS), action="append",
                        help="only this kind (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args):
    """List the components.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    import json

    # built-in components read from their source files: no torch or astropy import
    from astro_cl.plugins import component_summaries

    rows = [
        {"kind": c.kind, "name": c.name, "distribution": c.distribution,
         "version": c.version, "description": c.description}
        for c in component_summaries(args.kind)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ("kind", "name", "distribution", "version", "description")
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols[:-1]}
    print("  ".join(c.ljust(widths.get(c, 0)) for c in cols).rstrip())
    for r in rows:
        print("  ".join(r[c].ljust(widths.get(c, 0)) for c in cols).rstrip())
    return 0
