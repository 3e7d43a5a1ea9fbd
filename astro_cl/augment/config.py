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

A training configuration with a ``[preprocess]`` table (cubes turned into
images once, before augmentation) may also list steps that need the raw
cubes, such as ``velocity-shift``, as ``[[augment.cube_steps]]``: the
preprocessor then runs on every view (`build_training_augmenter`,
`~astro_cl.augment.PreprocessedViews`)::

    [[augment.cube_steps]]
    name = "velocity-shift"
    velocity = [-100, 100]
"""

import tomllib
from collections.abc import Mapping
from pathlib import Path

from astro_cl.exceptions import UnknownComponentError, ValidationError

__all__ = ["AUGMENT_KEYS", "augmenter_spec", "bind_preprocessor", "build_augmenter",
           "build_training_augmenter"]

#: Keys of the ``[augment]`` table of a training configuration.
AUGMENT_KEYS = ("steps", "cube_steps")


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
    """Build a `~astro_cl.augment.compose.Compose` chain from a specification.

    Parameters
    ----------
    spec : list of dict, dict, str or `~pathlib.Path`
        A list of steps ``{"name": ..., "p": ..., **params}``; a mapping with
        a ``steps`` (or ``augment.steps``) list; or the path of a TOML file
        with ``[[augment.steps]]`` tables.

    Returns
    -------
    chain : `~astro_cl.augment.compose.Compose`

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
    steps, where = _steps_from(spec)
    return _build(steps, where)


def _build(steps, where):
    """`build_augmenter` on a list of step tables; errors start with ``where``."""
    from astro_cl.augment.compose import Compose
    from astro_cl.plugins.registry import get_component_class

    if isinstance(steps, (str, bytes, Mapping)) or not hasattr(steps, "__iter__"):
        msg = f"{where}: expected a list of step tables, got {type(steps).__name__}"
        raise ValidationError(msg)
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
    chain = Compose(steps=built)
    try:
        chain.normalised_steps()  # the order of cube- and image-space steps, now
    except ValidationError as exc:
        msg = f"{where}: {exc}"
        raise ValidationError(msg) from None
    return chain


def build_training_augmenter(augment, *, preprocessor=None, kind=None, where="config"):
    """Build the augmenter of a training run from its ``[augment]`` table.

    Parameters
    ----------
    augment : mapping
        ``{"steps": [...], "cube_steps": [...]}``, both optional lists of step
        tables (see `build_augmenter`).
    preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
        The run's preprocessor (fitted later, before training). With one,
        ``steps`` run on the preprocessed images and ``cube_steps`` on the
        raw cubes, before the preprocessor, which then runs on every view.
        Without one, the cube steps simply run first.
    kind : str, optional
        The record field the run reads (``training.kind``); per-view
        preprocessing needs cubes.
    where : str, optional
        Name of the configuration, for error messages.

    Returns
    -------
    augmenter : `~astro_cl.augment.Augmenter` or None
        None without steps; a `~astro_cl.augment.compose.Compose`; or, with
        ``cube_steps`` and a preprocessor, a
        `~astro_cl.augment.PreprocessedViews` (train it on the raw cubes:
        ``as_batch_source(survey, kind="cube")``).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        On an unknown key, a bad step, or a cube-space step (such as
        ``velocity-shift``) in ``steps`` of a run with a preprocessor.
    """
    from astro_cl.augment.preprocessed import PreprocessedViews

    if not isinstance(augment, Mapping):
        msg = f"{where}: [augment] must be a table, got {type(augment).__name__}"
        raise ValidationError(msg)
    unknown = sorted(set(augment) - set(AUGMENT_KEYS))
    if unknown:
        msg = f"{where}: [augment] has unknown keys {unknown}; expected {list(AUGMENT_KEYS)}"
        raise ValidationError(msg)
    steps = list(augment.get("steps") or ())
    cube_steps = list(augment.get("cube_steps") or ())
    if preprocessor is None:
        if not (steps or cube_steps):
            return None
        chain = _build(cube_steps + steps, f"{where}: [[augment.cube_steps]] + [[augment.steps]]")
        bind_preprocessor(chain, None, where=where)
        return chain
    image = _build(steps, f"{where}: [[augment.steps]]") if steps else None
    if image is not None:
        bind_preprocessor(image, preprocessor, where=where)
        for i, (aug, _) in enumerate(image.normalised_steps()):
            if aug.space == "cube":
                msg = (f"{where}: [[augment.steps]] step {i} ({aug.name!r}) works on the "
                       f"spectral channels of cubes, but the {preprocessor.name!r} "
                       "preprocessor turns the cubes into images before these steps run; "
                       "move it to [[augment.cube_steps]] (the preprocessor then runs on "
                       "every view)")
                raise ValidationError(msg)
    if not cube_steps:
        return image
    if kind not in (None, "cube"):
        msg = (f"{where}: [[augment.cube_steps]] need cubes, but training.kind = {kind!r}; "
               "drop training.kind or set it to 'cube'")
        raise ValidationError(msg)
    cube = _build(cube_steps, f"{where}: [[augment.cube_steps]]")
    return PreprocessedViews(preprocessor=preprocessor, cube_augmenter=cube,
                             image_augmenter=image)


def _leaf_steps(chain):
    """Yield the augmenters of a chain, nested chains included."""
    for step in getattr(chain, "steps", ()):
        aug = step[0] if isinstance(step, tuple) else step
        if getattr(aug, "steps", None) is not None:
            yield from _leaf_steps(aug)
        else:
            yield aug


def bind_preprocessor(chain, preprocessor, *, replace=False, where="augmenter"):
    """Give a run's preprocessor to the steps of a chain that act through it.

    Steps with a ``preprocessor`` parameter left unset (``pca-space-noise``,
    ``pca-space-rebin``) read the fitted preprocessor when they augment a
    batch, so they can hold the run's own preprocessor object before it is
    fitted. Steps given a preprocessor keep theirs unless ``replace``.

    Parameters
    ----------
    chain : `~astro_cl.augment.Augmenter`
        A chain (nested chains included) or a single step; changed in place.
    preprocessor : `~astro_cl.preprocess.CubePCA` or None
        The preprocessor whose images the chain augments.
    replace : bool, optional
        Also replace the preprocessor of steps that have one.
    where : str, optional
        Name of the configuration, for error messages.

    Returns
    -------
    chain : `~astro_cl.augment.Augmenter`
        The same chain.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If a step needs a preprocessor and ``preprocessor`` is None or not a
        `~astro_cl.preprocess.CubePCA`.
    """
    steps = list(_leaf_steps(chain)) if getattr(chain, "steps", None) is not None else [chain]
    for aug in steps:
        if "preprocessor" not in type(aug)._param_names() or (
                aug.preprocessor is not None and not replace):
            continue
        if preprocessor is None:
            msg = (f"{where}: the {aug.name!r} step augments the images of a cube-pca "
                   "preprocessor, but the configuration has no [preprocess] table; add one "
                   "(name = \"cube-pca\") or use the flux-image step instead "
                   "(multiplicative-noise, rebin)")
            raise ValidationError(msg)
        from astro_cl.preprocess.cube_pca import CubePCA

        if not isinstance(preprocessor, CubePCA):
            msg = (f"{where}: the {aug.name!r} step augments the images of a cube-pca "
                   f"preprocessor, but [preprocess] is {preprocessor.name!r}; use the "
                   "flux-image step instead (multiplicative-noise, rebin)")
            raise ValidationError(msg)
        aug.preprocessor = preprocessor
    return chain


def augmenter_spec(chain):
    """Return the plain specification of a chain, the inverse of `build_augmenter`.

    Parameters
    ----------
    chain : `~astro_cl.augment.compose.Compose`
        A chain whose steps have plain (JSON/TOML-serialisable) parameters.

    Returns
    -------
    steps : list of dict
    """
    out = []
    for step in chain.steps:
        aug, p = step if isinstance(step, tuple) else (step, 1.0)
        params = aug.get_params(deep=False)
        # a preprocessor is the run's own object, bound when the run is built
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()
                  if v is not None and k != "preprocessor"}
        if aug.name == "compose":
            params["steps"] = augmenter_spec(aug)
        out.append({"name": aug.name, "p": float(p), **params})
    return out
