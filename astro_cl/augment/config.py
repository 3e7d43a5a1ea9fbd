"""Build augmentation chains from plain configuration (lists of dicts or TOML files).

A chain is a list of steps, each a table with the registered augmenter
``name``, an optional probability ``p`` (default 1; applied to each galaxy
independently) and the augmenter's parameters::

    [[augment.steps]]
    name = "random-rotation"
    angle = [1, 359]

    [[augment.steps]]
    name = "gaussian-blur"
    p = 0.5
    sigma = 1.0
"""

import tomllib
from collections.abc import Mapping
from pathlib import Path

from astro_cl.exceptions import UnknownComponentError, ValidationError

__all__ = ["augmenter_spec", "build_augmenter"]


def _steps_from(spec):
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            msg = f"augmentation config {path}: file not found"
            raise ValidationError(msg) from None
        except tomllib.TOMLDecodeError as exc:
            msg = f"augmentation config {path}: not valid TOML ({exc})"
            raise ValidationError(msg) from None
        steps = doc.get("augment", {}).get("steps")
        if steps is None:
            msg = f"augmentation config {path}: no [[augment.steps]] tables"
            raise ValidationError(msg)
        return steps, str(path)
    if isinstance(spec, Mapping):
        inner = spec.get("augment", spec)
        if "steps" not in inner:
            msg = "augmentation spec: a mapping needs a 'steps' list (or 'augment.steps')"
            raise ValidationError(msg)
        return inner["steps"], "augmentation spec"
    return list(spec), "augmentation spec"


def build_augmenter(spec):
    """Build a `~astro_cl.augment.base.Compose` chain from a specification.

    Parameters
    ----------
    spec : list of dict, dict, str or `~pathlib.Path`
        A list of steps ``{"name": ..., "p": ..., **params}``; a mapping with
        a ``steps`` (or ``augment.steps``) list; or the path of a TOML file
        with ``[[augment.steps]]`` tables.

    Returns
    -------
    chain : `~astro_cl.augment.base.Compose`

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If a step has no name, an unknown parameter or an invalid probability.
    astro_cl.exceptions.UnknownComponentError
        If a step names an augmenter no plugin registered.

    Examples
    --------
    >>> chain = build_augmenter([{"name": "random-flip"},
    ...                          {"name": "gaussian-blur", "p": 0.5, "sigma": 1.0}])
    >>> [type(step[0]).__name__ for step in chain.steps]
    ['RandomFlip', 'GaussianBlur']
    """
    from astro_cl.augment.base import Compose
    from astro_cl.plugins.registry import get_component_class

    steps, where = _steps_from(spec)
    built = []
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping) or "name" not in step:
            msg = f"{where}: step {i} must be a table with a 'name', got {step!r}"
            raise ValidationError(msg)
        params = dict(step)
        name = params.pop("name")
        p = params.pop("p", 1.0)
        try:
            p = float(p)
        except (TypeError, ValueError):
            msg = f"{where}: step {i} ({name!r}): p must be a number in [0, 1], got {p!r}"
            raise ValidationError(msg) from None
        if not 0.0 <= p <= 1.0:
            msg = f"{where}: step {i} ({name!r}): p must be in [0, 1], got {p}"
            raise ValidationError(msg)
        try:
            cls = get_component_class("augmenter", name)
        except UnknownComponentError as exc:
            msg = f"{where}: step {i}: {exc}"
            raise UnknownComponentError(msg) from None
        valid = set(cls._param_names())
        unknown = sorted(set(params) - valid)
        if unknown:
            msg = (f"{where}: step {i} ({name!r}): unknown parameters {unknown}; "
                   f"valid ones are {sorted(valid)}")
            raise ValidationError(msg)
        if name == "compose" and "steps" in params:
            params["steps"] = build_augmenter(params["steps"]).steps
        built.append((cls(**params), p))
    return Compose(steps=built)


def augmenter_spec(chain):
    """Return the plain specification of a chain, the inverse of `build_augmenter`.

    Parameters
    ----------
    chain : `~astro_cl.augment.base.Compose`
        A chain whose steps have plain (JSON/TOML-serialisable) parameters.

    Returns
    -------
    steps : list of dict
    """
    out = []
    for step in chain.steps:
        aug, p = step if isinstance(step, tuple) else (step, 1.0)
        params = aug.get_params(deep=False)
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()
                  if v is not None}
        if aug.name == "compose":
            params["steps"] = augmenter_spec(aug)
        out.append({"name": aug.name, "p": float(p), **params})
    return out
