"""One TOML file describes a training run; everything is built through the registry.

Layout (see ``examples/configs/*.toml``)::

    [survey]              # name = registered survey; other keys are its parameters
    name = "sdss-mock"
    n = 256

    [preprocess]          # optional: astro_cl.preprocess.build_preprocessor spec
    name = "image-scaler"

    [[augment.steps]]     # optional: astro_cl.augment.config.build_augmenter steps
    name = "flip"
    p = 1.0

    [[augment.cube_steps]]  # optional, with [preprocess]: steps on the raw cubes; the
    name = "velocity-shift" # preprocessor then runs on every view (slower, see
                            # astro_cl.augment.PreprocessedViews)

    [model]               # name = registered encoder; other keys are its parameters
    name = "simclr"
    width = 1.0

    [optimizer]           # training settings (astro_cl.training.TrainerConfig)
    name = "adam"         # -> optimizer
    lr = 8e-4

    [training]            # training settings (TrainerConfig), except:
    epochs = 50           #   output (final model file) and kind/targets (data reading)
    output = "runs/simclr/model.pt"

The ``[optimizer]`` and ``[training]`` settings replace those of the model's
``default_trainer()`` one by one (a key left out keeps the model's study
default); ``bf16 = true`` is read as ``precision = "bf16"``.

Command-line overrides use dotted keys: ``--set model.width=0.5``,
``--set training.epochs=3``; values are parsed as TOML (strings may be bare).
"""

import copy
import tomllib
from pathlib import Path

from astro_cl.exceptions import ValidationError

__all__ = ["apply_overrides", "build_run", "load_config", "train_from_config"]

_SECTIONS = ("survey", "preprocess", "augment", "model", "optimizer", "training")


def _parse_value(text):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config, overrides):
    """Return a copy of ``config`` with dotted ``key=value`` overrides applied.

    Parameters
    ----------
    config : dict
    overrides : sequence of str
        E.g. ``"model.lr=1e-3"``, ``"survey.path='data/sdss'"``.

    Returns
    -------
    config : dict
    """
    out = copy.deepcopy(config)
    for item in overrides or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            msg = f"--set {item!r}: expected SECTION.KEY=VALUE"
            raise ValidationError(msg)
        parts = key.strip().split(".")
        if parts[0] not in _SECTIONS or len(parts) < 2:
            msg = f"--set {item!r}: the key must start with one of {list(_SECTIONS)}"
            raise ValidationError(msg)
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                msg = f"--set {item!r}: {p!r} is not a table"
                raise ValidationError(msg)
        node[parts[-1]] = _parse_value(value.strip())
    return out


def load_config(path, overrides=()):
    """Read a training configuration file and check it.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        TOML file.
    overrides : sequence of str, optional
        Dotted ``key=value`` overrides.

    Returns
    -------
    config : dict

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the file is not a TOML text file, or a section, key or value is
        not what the survey, preprocessor, augmenters or encoder accept
        (`astro_cl.training.schema.validate_config`): checked before anything
        is read or built.
    FileNotFoundError
        If the file does not exist.
    """
    from astro_cl.training.schema import validate_config

    path = Path(path)
    if path.is_dir():
        msg = f"{path}: is a directory; expected a TOML configuration file"
        raise ValidationError(msg)
    try:
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: invalid TOML ({exc})"
        raise ValidationError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = (f"{path}: not a TOML text file (byte {exc.object[exc.start:exc.start + 1]!r} at "
               f"offset {exc.start} is not UTF-8); expected a TOML configuration file")
        raise ValidationError(msg) from None
    unknown = sorted(set(config) - set(_SECTIONS))
    if unknown:
        msg = f"{path}: unknown sections {unknown}; expected {list(_SECTIONS)}"
        raise ValidationError(msg)
    for needed in ("survey", "model"):
        if "name" not in config.get(needed, {}):
            msg = f"{path}: section [{needed}] needs a 'name'"
            raise ValidationError(msg)
    config = apply_overrides(config, overrides)
    config["_path"] = str(path)
    validate_config(config)
    return config


def build_run(config):
    """Build the survey, training data and encoder described by a configuration.

    Parameters
    ----------
    config : dict
        From `load_config`.

    Returns
    -------
    run : dict
        ``survey``, ``data`` (what to pass to ``encoder.fit``), ``encoder``,
        ``trainer`` (the `~astro_cl.training.TrainerConfig` to pass to
        ``encoder.fit``; None for an encoder without ``default_trainer``,
        which then takes the settings as its own parameters), ``output``
        (path of the final model file or None), ``preprocessor`` (unfitted,
        or None), ``cache_dir`` (where preprocessed inputs are cached) and
        ``provenance`` (the configuration as given).
    """
    from astro_cl.plugins.registry import get_survey
    from astro_cl.training.schema import validate_config

    validate_config(config)  # again: a configuration may be built in Python
    survey_cfg = dict(config["survey"])
    survey = get_survey(survey_cfg.pop("name"), **survey_cfg)
    if len(survey) == 0:
        msg = (f"{config.get('_path', 'config')}: survey {config['survey']['name']!r} has no "
               f"galaxies ({survey_cfg}); nothing to train on")
        raise ValidationError(msg)
    training = dict(config.get("training", {}))
    output = training.pop("output", None)
    kind = training.pop("kind", None)
    targets = training.pop("targets", None)
    opt = dict(config.get("optimizer", {}))
    if "name" in opt:
        opt["optimizer"] = opt.pop("name")
    params = dict(config["model"])
    # -- augmentation and preprocessor. [[augment.cube_steps]] run on the raw cubes
    # before the preprocessor, which then runs on every view (astro_cl.augment.
    # PreprocessedViews, holding this same preprocessor object, fitted by encoder.fit)
    preprocessor = None
    if config.get("preprocess"):
        from astro_cl.preprocess import build_preprocessor

        preprocessor = build_preprocessor(dict(config["preprocess"]))
    if config.get("augment"):
        from astro_cl.augment.config import build_training_augmenter

        augmenter = build_training_augmenter(config["augment"], preprocessor=preprocessor,
                                             kind=kind, where=config.get("_path", "config"))
        if augmenter is not None:
            params["augmenter"] = augmenter
    # -- end of augmentation and preprocessor
    encoder, trainer = _encoder_and_trainer(params, {**opt, **training}, kind=kind,
                                            targets=targets,
                                            where=config.get("_path", "config"))
    survey_name = config["survey"]["name"]
    provenance = {
        "config_file": config.get("_path"),
        "config": {k: v for k, v in config.items() if not k.startswith("_")},
        "survey": {"name": survey_name, **survey_cfg},
    }
    checkpoint_dir = trainer.checkpoint_dir if trainer is not None else getattr(
        encoder, "checkpoint_dir", None)
    cache_dir = Path(checkpoint_dir or ".") / "cache"
    return {"survey": survey, "data": survey, "encoder": encoder, "trainer": trainer,
            "output": output, "preprocessor": preprocessor, "cache_dir": cache_dir,
            "provenance": provenance}


def _encoder_and_trainer(params, settings, *, kind, targets, where):
    """Build the encoder of ``[model]`` and the `TrainerConfig` of the training settings.

    An encoder without ``default_trainer`` (not a `~astro_cl.models.TorchEncoder`)
    takes the settings as its own parameters, and no `TrainerConfig` is built.
    """
    from astro_cl.plugins.registry import get_component_class
    from astro_cl.training.settings import TrainerConfig

    params = dict(params)
    name = params.pop("name")
    cls = get_component_class("encoder", name)
    valid = set(cls._param_names())
    if kind is not None and "kind" in valid:
        params.setdefault("kind", kind)
    uses_trainer = callable(getattr(cls, "default_trainer", None))
    if not uses_trainer:
        params.update(settings)
    bad = sorted(set(params) - valid)
    if bad:
        msg = f"{where}: {bad} are not parameters of encoder {name!r}; valid: {sorted(valid)}"
        raise ValidationError(msg)
    encoder = cls(**params)
    if targets is not None and "target_names" in valid and params.get("target_names") is None:
        encoder.set_params(target_names=tuple([targets] if isinstance(targets, str)
                                              else targets))
    if not uses_trainer:
        return encoder, None
    return encoder, TrainerConfig.from_spec(settings, defaults=encoder.default_trainer(),
                                            where=f"{where}: [training]")


def train_from_config(config, *, resume=False, fast_dev_run=False, output=None):
    """Train the encoder a configuration describes, and save it.

    Parameters
    ----------
    config : dict
        From `load_config`.
    resume : bool, optional
        Continue from the checkpoint in ``training.checkpoint_dir``.
    fast_dev_run : bool or int, optional
        Train on one (or this many) batches of one epoch, with no checkpoints
        and no cache in ``checkpoint_dir``: a check that the configuration
        runs end to end. The model is saved to ``output`` or, by default,
        beside ``training.output`` as ``<stem>-fast-dev-run.pt`` (never over
        a trained model).
    output : str or `~pathlib.Path`, optional
        Model file, replacing ``training.output``.

    Returns
    -------
    encoder : `~astro_cl.models.Encoder`
        Fitted; saved (with its preprocessor, input contract and provenance)
        to ``training.output`` when given (rank 0 only).
    """
    from astro_cl.training.distributed import init_distributed

    run = build_run(config)
    provenance = dict(run["provenance"], fast_dev_run=bool(fast_dev_run))
    fit_params = {"resume": resume, "provenance": provenance}
    if run["trainer"] is not None:
        fit_params["trainer"] = run["trainer"]
    if run["preprocessor"] is not None:
        fit_params.update(preprocessor=run["preprocessor"],
                          cache_dir=None if fast_dev_run else run["cache_dir"])
    if fast_dev_run:
        fit_params["fast_dev_run"] = int(fast_dev_run)
    encoder = run["encoder"].fit(run["data"], **fit_params)
    if output is None:
        output = run["output"]
        if output and fast_dev_run:
            # never overwrite a trained model with a plumbing check
            output = Path(output).with_name(f"{Path(output).stem}-fast-dev-run.pt")
    device = getattr(run["trainer"], "device", None) if run["trainer"] is not None \
        else getattr(encoder, "device", None)
    if output and init_distributed(device).is_main:
        encoder.save(output)
    encoder.output_path_ = None if not output else Path(output)
    return encoder
