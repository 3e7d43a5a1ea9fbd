"""``KEY=VALUE`` options with TOML-typed values, as every ``astro-cl`` command spells them.

``--set model.width=0.5``, ``--set n=16``, ``--set 'bands=["g", "r"]'``,
``--set path=data/sdss``: the value is read as a TOML value (numbers,
booleans, strings in quotes, arrays, inline tables); a value that is not valid
TOML is taken as a bare string. Dotted keys address nested tables.
"""

import tomllib
from collections.abc import Iterable
from typing import Any

from astro_cl.exceptions import ValidationError

__all__ = ["parse_assignment", "parse_assignments", "parse_value"]


def parse_value(text: str) -> Any:
    """Parse one value as TOML, or return it as a string when it is not TOML.

    Parameters
    ----------
    text : str

    Returns
    -------
    value : object

    Examples
    --------
    >>> parse_value("64"), parse_value("1e-3"), parse_value("true")
    (64, 0.001, True)
    >>> parse_value('["g", "r"]'), parse_value("cat.ecsv")
    (['g', 'r'], 'cat.ecsv')
    """
    text = str(text).strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(item: str, *, option: str = "--set") -> tuple[list[str], Any]:
    """Split one ``KEY=VALUE`` option into its dotted key and parsed value.

    Parameters
    ----------
    item : str
    option : str, optional
        The option's name, for error messages.

    Returns
    -------
    keys : list of str
        The dotted key's parts.
    value : object

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If there is no ``=`` or the key is empty.
    """
    key, sep, value = str(item).partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or not all(parts):
        msg = f"{option} {item!r}: expected KEY=VALUE (dotted keys for nested tables)"
        raise ValidationError(msg)
    return parts, parse_value(value)


def parse_assignments(items: Iterable[str] | None, *, option: str = "--set",
                      depth: int | None = None) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` options into a nested dict.

    Parameters
    ----------
    items : sequence of str
    option : str, optional
        The option's name, for error messages.
    depth : int, optional
        Required number of key parts (e.g. 2 for ``TASK.KEY``); any if None.

    Returns
    -------
    values : dict

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If an item is malformed, has the wrong depth, or assigns both a value
        and a table to one key.

    Examples
    --------
    >>> parse_assignments(["n=16", "survey.seed=3"])
    {'n': 16, 'survey': {'seed': 3}}
    """
    out: dict[str, Any] = {}
    for item in items or ():
        parts, value = parse_assignment(item, option=option)
        if depth is not None and len(parts) != depth:
            form = ".".join(["SECTION"] * (depth - 1) + ["KEY"])
            msg = f"{option} {item!r}: expected {form}=VALUE"
            raise ValidationError(msg)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                msg = f"{option} {item!r}: {part!r} already has a value, it is not a table"
                raise ValidationError(msg)
        node[parts[-1]] = value
    return out
