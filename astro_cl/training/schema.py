"""Check the parameters of components and training runs before anything runs.

A component declares its parameters by its ``__init__`` signature
(`astro_cl.base.Component`). This module turns that signature into a schema:

* a parameter listed in the class attribute ``_parameter_constraints`` (a dict
  of parameter name to a list of accepted alternatives, as in scikit-learn)
  accepts what the list says;
* any other parameter accepts values of the type of its default: a bool
  default takes a bool, an int default an integer, a float default a number,
  a string default a string, a tuple of ints a list of integers (and so on);
  a parameter whose default is None is not checked.

An alternative is a type (``bool``, ``str``, ``dict``), ``None``, or a
constraint object: `Interval`, `Options`, `SequenceOf`, `Schedule`,
`Device`, `InstanceOf`.

`validate_params` checks a dict of parameters against a class;
`validate_config` checks a whole training configuration (the TOML file of
``astro-cl train``: survey, preprocessing, augmentations, model, optimiser and
training sections), so that a typo fails before a survey is read, with a
message naming the key, the value and what was expected::

    c.toml: training.epochs = 'ten': expected an integer >= 0

The torch models and `~astro_cl.training.TrainerConfig` call
`validate_params` at the start of ``fit`` (as scikit-learn does):
constructing ``SimCLR(width=-1)`` succeeds, fitting it raises
`~astro_cl.exceptions.ValidationError`.

This module does not import torch (only a `Device` check of a device other
than the CPU does).
"""

import inspect
import numbers
import os
from collections.abc import Mapping

from astro_cl.exceptions import ValidationError
from astro_cl.training.precision import PRECISIONS

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SCHEDULE_PRESETS",
    "TRAINER_CONSTRAINTS",
    "TRAINER_SETTINGS",
    "Device",
    "InstanceOf",
    "Interval",
    "Options",
    "Schedule",
    "SequenceOf",
    "check_device",
    "normalise_trainer_settings",
    "param_constraints",
    "validate_config",
    "validate_params",
    "validate_trainer_settings",
]

#: Optimisers the trainer knows (`~astro_cl.training.trainer.Trainer`); case-insensitive.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Schedules an encoder accepts by name (its ``schedule`` parameter), with their settings.
SCHEDULE_PRESETS = {
    "constant": {"name": "constant"},
    "step": {"name": "step", "step_size": 2, "gamma": 0.75},
    "multistep": {"name": "multistep", "milestones": [8, 10], "gamma": 0.1},
    # cosine annealing to 0 over the run: ``epochs`` is filled in from the training's
    "cosine": {"name": "cosine", "min_factor": 0.0},
}


# -- constraints ---------------------------------------------------------------
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Interval:
    """A number in a range.

    Parameters
    ----------
    kind : {int, float}
        ``int``: integers only (not bools, not 2.0); ``float``: any real number.
    low, high : float or None, optional
        Bounds (None: unbounded).
    closed : {"both", "left", "right", "neither"}, optional
        Which bounds are included.

    Examples
    --------
    >>> Interval(int, 1, None).describe()
    'an integer >= 1'
    >>> Interval(float, 0, 1, closed="left").accepts(1.0)
    False
    """

    def __init__(self, kind, low=None, high=None, *, closed="both"):
        if kind not in (int, float):
            msg = f"Interval: kind must be int or float, got {kind!r}"
            raise ValueError(msg)
        if closed not in ("both", "left", "right", "neither"):
            msg = f"Interval: closed must be both, left, right or neither, got {closed!r}"
            raise ValueError(msg)
        self.kind = kind
        self.low = low
        self.high = high
        self.closed = closed

    def accepts(self, value):
        """Return whether ``value`` is in the interval (bool)."""
        if not (_is_int(value) if self.kind is int else _is_real(value)):
            return False
        if value != value:  # NaN
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def describe(self):
        """Return what the interval accepts, in words (str)."""
        noun = "an integer" if self.kind is int else "a number"
        lo_op = ">=" if self.closed in ("both", "left") else ">"
        hi_op = "<=" if self.closed in ("both", "right") else "<"
        if self.low is not None and self.high is not None:
            left = "[" if lo_op == ">=" else "("
            right = "]" if hi_op == "<=" else ")"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {lo_op} {self.low:g}"
        if self.high is not None:
            return f"{noun} {hi_op} {self.high:g}"
        return noun


class Options:
    """One of a fixed set of strings.

    Parameters
    ----------
    *values : str
    case_sensitive : bool, optional
    """

    def __init__(self, *values, case_sensitive=True):
        self.values = tuple(values)
        self.case_sensitive = case_sensitive

    def accepts(self, value):
        """Return whether ``value`` is one of the options (bool)."""
        if not isinstance(value, str):
            return False
        if self.case_sensitive:
            return value in self.values
        return value.lower() in {v.lower() for v in self.values}

    def describe(self):
        """Return the options, in words (str)."""
        return "one of " + ", ".join(repr(v) for v in self.values)


class SequenceOf:
    """A list or tuple whose items all satisfy one constraint.

    Parameters
    ----------
    item : type or constraint
        What each item must be.
    min_length : int, optional
    """

    def __init__(self, item, *, min_length=0):
        self.item = item
        self.min_length = int(min_length)

    def accepts(self, value):
        """Return whether ``value`` is such a sequence (bool)."""
        if hasattr(value, "tolist") and getattr(value, "ndim", None) == 1:
            value = value.tolist()  # a 1-d numpy array
        if not isinstance(value, (list, tuple)) or len(value) < self.min_length:
            return False
        return all(_accepts(self.item, v) for v in value)

    def describe(self):
        """Return what the sequence holds, in words (str)."""
        item = _describe(self.item)
        for article in ("an ", "a "):
            if item.startswith(article):
                item = item[len(article):]
                break
        plural = {"integer": "integers", "number": "numbers", "string": "strings"}
        words = item.split(" ", 1)
        words[0] = plural.get(words[0], words[0])
        what = " ".join(words)
        size = f" (at least {self.min_length})" if self.min_length else ""
        return f"a list of {what}{size}"


class InstanceOf:
    """An instance of some classes, described in words.

    Parameters
    ----------
    *classes : type
    description : str
        E.g. ``"a path"``.
    """

    def __init__(self, *classes, description):
        self.classes = classes
        self.description = description

    def accepts(self, value):
        """Return whether ``value`` is an instance of one of the classes (bool)."""
        return isinstance(value, self.classes)

    def describe(self):
        """Return the description (str)."""
        return self.description


#: Learning-rate schedules of `~astro_cl.training.trainer.lr_factor`: the keys each
#: takes and what they accept.
SCHEDULES = {
    "constant": {},
    "step": {"step_size": Interval(int, 1, None),
             "gamma": Interval(float, 0, None, closed="neither")},
    "multistep": {"milestones": SequenceOf(Interval(int, 0, None)),
                  "gamma": Interval(float, 0, None, closed="neither")},
    "cosine": {"epochs": Interval(int, 1, None), "min_factor": Interval(float, 0, 1)},
}


class Schedule:
    """A learning-rate schedule given as a table, e.g. ``{"name": "step", "gamma": 0.5}``.

    The names and keys are those of `~astro_cl.training.trainer.lr_factor`
    (`SCHEDULES`).
    """

    def problem(self, value):
        """Return what is wrong with a schedule table (str), or None if nothing is.

        Parameters
        ----------
        value : object
        """
        if not isinstance(value, Mapping):
            return f"not a table, got {value!r}"
        name = value.get("name", "constant")
        if name not in SCHEDULES:
            return (f"unknown schedule name {name!r}; expected one of "
                    f"{', '.join(repr(n) for n in SCHEDULES)}")
        keys = SCHEDULES[name]
        for key, item in value.items():
            if key == "name":
                continue
            if key not in keys:
                valid = ", ".join(repr(k) for k in keys) or "none"
                return f"schedule {name!r} has no key {key!r} (its keys: {valid})"
            constraint = keys[key]
            if not constraint.accepts(item):
                return f"{key} = {item!r}: expected {constraint.describe()}"
        return None

    def accepts(self, value):
        """Return whether ``value`` is a valid schedule table (bool)."""
        return self.problem(value) is None

    def describe(self):
        """Return what a schedule table is, in words (str)."""
        return "a schedule table (see astro_cl.training.trainer.lr_factor)"


def check_device(device):
    """Return what is wrong with a torch device on this machine (str), or None.

    Parameters
    ----------
    device : str or `torch.device` or None
        None (the default device) and ``"cpu"`` are always usable.

    Returns
    -------
    problem : str or None
        E.g. that this build of torch has no CUDA.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "cpu"):
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return "not a torch device name (e.g. 'cpu', 'cuda', 'cuda:1', 'mps')"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda is not None
            why = ("no CUDA GPU is visible to this process" if built
                   else "this build of torch has no CUDA support")
            return f"CUDA is not available ({why}); use 'cpu'"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return f"there are {count} CUDA devices (cuda:0 .. cuda:{count - 1})"
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "the Apple MPS backend is not available here; use 'cpu'"
    elif dev.type != "cpu":
        return f"astro_cl trains on 'cpu', 'cuda' or 'mps', not {dev.type!r}"
    return None


class Device:
    """A torch device that exists on this machine (checked with `check_device`)."""

    def problem(self, value):
        """Return what is wrong with the device (str), or None.

        Parameters
        ----------
        value : object
        """
        if not isinstance(value, str) and type(value).__name__ != "device":
            return None if value is None else f"expected a device name, got {value!r}"
        return check_device(value)

    def accepts(self, value):
        """Return whether ``value`` is a usable device (bool)."""
        return self.problem(value) is None

    def describe(self):
        """Return what a device is, in words (str)."""
        return "a torch device available on this machine"


_PATH = InstanceOf(str, os.PathLike, description="a path")

#: Constraints of the settings of `~astro_cl.training.trainer.Trainer` (and of
#: `~astro_cl.training.TrainerConfig`).
TRAINER_CONSTRAINTS = {
    "optimizer": [Options(*OPTIMIZERS, case_sensitive=False)],
    "lr": [Interval(float, 0, None)],
    "weight_decay": [Interval(float, 0, None)],
    "betas": [SequenceOf(Interval(float, 0, 1, closed="left"), min_length=2)],
    "schedule": [None, Options(*SCHEDULE_PRESETS), Schedule()],
    # 0 is allowed: the seeded, untrained network (a baseline)
    "epochs": [Interval(int, 0, None)],
    "batch_size": [None, Interval(int, 1, None)],
    "drop_last": [bool],
    "validation_fraction": [Interval(float, 0, 1, closed="left")],
    "patience": [None, Interval(int, 0, None)],   # 0: no early stopping (TOML has no null)
    "min_delta": [Interval(float, 0, None)],
    "restore_best": [bool],
    "seed": [Interval(int, 0, None)],
    "device": [None, Device()],
    "checkpoint_dir": [None, _PATH],
    "progress": [bool],
    "num_threads": [None, Interval(int, 1, None)],
    "precision": [Options(*PRECISIONS)],
    "prefetch": [bool],
    "prefetch_threads": [None, Interval(int, 1, None)],
    "fused": [None, bool],
    "max_batches": [None, Interval(int, 1, None)],
}

#: The training settings a model is fitted with (`~astro_cl.training.TrainerConfig`).
TRAINER_SETTINGS = ("optimizer", "lr", "weight_decay", "schedule", "epochs", "batch_size",
                    "validation_fraction", "patience", "seed", "device", "checkpoint_dir",
                    "progress", "num_threads", "precision")


def normalise_trainer_settings(settings, *, where="trainer"):
    """Return a dict of training settings with the ``bf16`` alias turned into ``precision``.

    ``bf16 = true`` / ``false``, the name of the setting in earlier
    configurations, becomes ``precision = "bf16"`` / ``"fp32"``.

    Parameters
    ----------
    settings : dict
    where : str, optional
        Names the settings in error messages.

    Returns
    -------
    settings : dict
        A new dict.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If ``bf16`` is not a bool or contradicts ``precision``.
    """
    out = dict(settings)
    if "bf16" not in out:
        return out
    bf16 = out.pop("bf16")
    if not _accepts(bool, bf16):
        msg = f"{where}: bf16 = {bf16!r}: expected true or false (or use precision)"
        raise ValidationError(msg)
    precision = "bf16" if bf16 else "fp32"
    if out.get("precision", precision) != precision:
        msg = (f"{where}: bf16 = {bool(bf16)} contradicts precision = {out['precision']!r}; "
               "give only precision")
        raise ValidationError(msg)
    out["precision"] = precision
    return out


def validate_trainer_settings(settings, *, where="", keys=None):
    """Check training settings (`TRAINER_SETTINGS`) against `TRAINER_CONSTRAINTS`.

    Parameters
    ----------
    settings : dict
        Setting name -> value.
    where : str, optional
        Prefix of messages.
    keys : dict of str to str, optional
        How each setting is spelled to the user (e.g. ``"lr"`` ->
        ``"optimizer.lr"``).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        Naming the key, the value and what was expected.
    """
    keys = keys or {}
    prefix = f"{where}: " if where else ""
    for name, value in settings.items():
        key = keys.get(name, name)
        if name not in TRAINER_SETTINGS:
            msg = (f"{prefix}{key} is not a training setting; valid settings are "
                   f"{sorted(TRAINER_SETTINGS)}")
            raise ValidationError(msg)
        problem = _problem(TRAINER_CONSTRAINTS[name], value)
        if problem is not None:
            msg = f"{prefix}{key} = {value!r}: {problem}"
            raise ValidationError(msg)


def _accepts(alternative, value):
    if alternative is None:
        return value is None
    if alternative is bool:  # numpy's bool too
        return isinstance(value, bool) or (type(value).__module__ == "numpy"
                                           and type(value).__name__ in ("bool", "bool_"))
    if alternative is int:
        return _is_int(value)
    if alternative is float:
        return _is_real(value)
    if isinstance(alternative, type):
        return isinstance(value, alternative)
    return alternative.accepts(value)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               dict: "a table", list: "a list", tuple: "a list"}


def _describe(alternative):
    if alternative is None:
        return "None (leave the key out)"
    if isinstance(alternative, type):
        return _TYPE_WORDS.get(alternative, f"a {alternative.__name__}")
    return alternative.describe()


def _from_default(default, *, numbers_only=False):
    """Constraints implied by a default value, or None (anything goes)."""
    if isinstance(default, bool):
        return [bool]
    if _is_int(default):
        return [int]
    if _is_real(default):
        return [float]
    if numbers_only:
        return None
    if isinstance(default, str):
        return [str]
    if isinstance(default, (list, tuple)) and default:
        for kind in (bool, int, float, str):
            if all(_accepts(kind, v) for v in default):
                return [SequenceOf(kind)]
    return None


def param_constraints(cls, *, numbers_only=False):
    """Return the constraints of each parameter of a component class.

    Parameters
    ----------
    cls : type
        A `~astro_cl.base.Component` subclass (or any class whose
        ``__init__`` takes keyword arguments).
    numbers_only : bool, optional
        Infer constraints from defaults only for bool, int and float defaults
        (for surveys and preprocessors, whose string and tuple parameters
        often accept more than their default's type).

    Returns
    -------
    constraints : dict of str to list or None
        Parameter name -> accepted alternatives; None: not checked.
    """
    declared = getattr(cls, "_parameter_constraints", {}) or {}
    out = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in declared:
            out[p.name] = declared[p.name]
        elif p.default is not p.empty:
            out[p.name] = _from_default(p.default, numbers_only=numbers_only)
        else:
            out[p.name] = None
    return out


def _problem(alternatives, value):
    """Return the reason a value fits no alternative (str), or None if one fits."""
    if any(_accepts(a, value) for a in alternatives):
        return None
    details = [a.problem(value) for a in alternatives if hasattr(a, "problem")
               and (isinstance(value, Mapping) or isinstance(a, Device))]
    details = [d for d in details if d]
    # None last: "an integer >= 1 or None (leave the key out)"
    ordered = [a for a in alternatives if a is not None] + [a for a in alternatives if a is None]
    expected = " or ".join(_describe(a) for a in ordered)
    if details:  # a table or a device: say what is wrong inside it
        return details[0]
    return f"expected {expected}"


def validate_params(cls, params, *, where="", keys=None, numbers_only=False, fallback=None):
    """Check parameters against a component class's schema.

    Parameters
    ----------
    cls : type
        The component class.
    params : dict
        Parameter name -> value.
    where : str, optional
        Prefix of messages (a file name, a class name).
    keys : dict of str to str, optional
        How each parameter is spelled to the user (e.g. ``"epochs"`` ->
        ``"training.epochs"``); default: its name.
    numbers_only : bool, optional
        See `param_constraints`.
    fallback : dict, optional
        Constraints of parameters that the class leaves unchecked (e.g.
        `TRAINER_CONSTRAINTS` for an encoder that does not declare its
        trainer parameters).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        Naming the key, the value and what was expected, for an unknown
        parameter or a value the parameter does not accept.

    Examples
    --------
    >>> from astro_cl.training import TrainerConfig
    >>> validate_params(TrainerConfig, {"epochs": "ten"}, where="c.toml",
    ...                 keys={"epochs": "training.epochs"})
    Traceback (most recent call last):
    ...
    astro_cl.exceptions.ValidationError: c.toml: training.epochs = 'ten': expected an integer >= 0
    """
    keys = keys or {}
    prefix = f"{where}: " if where else ""
    constraints = param_constraints(cls, numbers_only=numbers_only)
    for name, alternatives in (fallback or {}).items():
        if name in constraints and constraints[name] is None:
            constraints[name] = alternatives
    label = getattr(cls, "name", "") or cls.__name__
    open_ended = any(p.kind is p.VAR_KEYWORD
                     for p in inspect.signature(cls.__init__).parameters.values())
    for name, value in params.items():
        key = keys.get(name, name)
        if name not in constraints and open_ended:
            continue  # taken by **kwargs: the class checks it
        if name not in constraints:
            msg = (f"{prefix}{key} is not a parameter of {label!r}; valid parameters are "
                   f"{sorted(constraints)}")
            raise ValidationError(msg)
        alternatives = constraints[name]
        if alternatives is None:
            continue
        problem = _problem(alternatives, value)
        if problem is not None:
            msg = f"{prefix}{key} = {value!r}: {problem}"
            raise ValidationError(msg)


# -- configurations ------------------------------------------------------------
#: Keys of [training] that are not encoder parameters, with their constraints.
_RUN_KEYS = {
    "output": [_PATH],
    "kind": [Options("images", "cube", "maps")],   # what GalaxyRecord.as_arrays reads
    "targets": [str, SequenceOf(str, min_length=1)],
}


def _table(config, section, where):
    value = config.get(section, {})
    if not isinstance(value, Mapping):
        msg = f"{where}: [{section}] must be a table of keys, got {value!r}"
        raise ValidationError(msg)
    return dict(value)


def _name(table, section, where):
    name = table.get("name")
    if not isinstance(name, str) or not name:
        msg = f"{where}: {section}.name = {name!r}: expected the name of a registered {section}"
        raise ValidationError(msg)
    return name


def validate_config(config):
    """Check a training configuration before anything is built or read.

    Checks that the survey, preprocessor, augmenters and encoder are
    registered, that every key is one of their parameters, and that each value
    has the type and range the parameter accepts (see `validate_params`). The
    ``[optimizer]`` and ``[training]`` keys are checked as the settings of
    `~astro_cl.training.TrainerConfig` (``optimizer.name`` as its
    ``optimizer``, ``training.bf16`` as its ``precision``), or, for an encoder
    without ``default_trainer``, as its own parameters.

    Parameters
    ----------
    config : dict
        From `~astro_cl.training.config.load_config` (``_path`` names the
        file in messages).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        Naming the file, the key, the value and what was expected.
    astro_cl.exceptions.UnknownComponentError
        If a component name is not registered.
    """
    from astro_cl.plugins.registry import get_component_class

    where = str(config.get("_path", "config"))
    survey = _table(config, "survey", where)
    cls = get_component_class("survey", _name(survey, "survey", where))
    survey.pop("name")
    validate_params(cls, survey, where=where, numbers_only=True,
                    keys={k: f"survey.{k}" for k in survey})

    pre = _table(config, "preprocess", where)
    preprocessor = None
    if pre:
        from astro_cl.preprocess import build_preprocessor
        from astro_cl.preprocess.base import get_preprocessor_class

        pcls = get_preprocessor_class(_name(pre, "preprocess", where))
        validate_params(pcls, {k: v for k, v in pre.items() if k != "name"}, where=where,
                        numbers_only=True, keys={k: f"preprocess.{k}" for k in pre})
        preprocessor = build_preprocessor(pre)  # unfitted: cheap

    if config.get("augment"):
        from astro_cl.augment.config import build_training_augmenter

        # cheap (no data): checks the step names, probabilities and parameters
        kind = _table(config, "training", where).get("kind")
        build_training_augmenter(config["augment"], preprocessor=preprocessor, kind=kind,
                                 where=where)

    model = _table(config, "model", where)
    ecls = get_component_class("encoder", _name(model, "model", where))
    model.pop("name")
    _validate_model_and_trainer(ecls, model, _table(config, "optimizer", where),
                                _table(config, "training", where), where)


def _validate_model_and_trainer(ecls, model, optimizer, training, where):
    """Check [model] against the encoder and [optimizer] + [training] against TrainerConfig."""
    uses_trainer = callable(getattr(ecls, "default_trainer", None))
    names = set(param_constraints(ecls))
    params = dict(model)
    keys = {key: f"model.{key}" for key in model}
    settings, setting_keys = {}, {}
    for key, value in optimizer.items():
        name = "optimizer" if key == "name" else key
        settings[name], setting_keys[name] = value, f"optimizer.{key}"
    for key, value in training.items():
        if key in _RUN_KEYS and (uses_trainer or key not in names):  # read by build_run
            problem = _problem(_RUN_KEYS[key], value)
            if problem is not None:
                msg = f"{where}: training.{key} = {value!r}: {problem}"
                raise ValidationError(msg)
            continue
        settings[key], setting_keys[key] = value, f"training.{key}"
    if not uses_trainer:  # an encoder that takes its training settings as parameters
        validate_params(ecls, {**params, **settings}, where=where,
                        keys={**keys, **setting_keys}, fallback=TRAINER_CONSTRAINTS)
        return
    misplaced = sorted(k for k in params if k not in names and k in TRAINER_SETTINGS)
    if misplaced:
        msg = (f"{where}: {', '.join(keys[k] for k in misplaced)}: training settings belong "
               f"in [training] (or [optimizer]), not in [model]")
        raise ValidationError(msg)
    validate_params(ecls, params, where=where, keys=keys)
    if "bf16" in settings:
        setting_keys.setdefault("precision", setting_keys["bf16"])
        settings = normalise_trainer_settings(settings, where=f"{where}: {setting_keys['bf16']}")
    validate_trainer_settings(settings, where=where, keys=setting_keys)
