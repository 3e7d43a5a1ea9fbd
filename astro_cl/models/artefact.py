"""A trained model as one self-contained artefact, and `load_model`.

The model file written by ``Encoder.save`` (a weights-only-safe ``torch.save``
file, see `astro_cl.training.checkpoints`) holds, besides the network weights:

- ``preprocessor``: the fitted preprocessor's header (JSON) and arrays, so that
  new raw data go through exactly the training transformation;
- ``contract``: the `~astro_cl.models.contract.InputContract` (data kind,
  channels, bands, wavelength coverage, pixel scale, unit);
- ``provenance``: the training configuration and survey parameters as given;
- in the header, beside the model parameters, the training settings
  (`~astro_cl.training.TrainerConfig`), restored as ``trainer_``;
- ``versions``: the versions of Python and of the main packages.

`load_model` rebuilds the fitted encoder from such a file, whatever its
registered model; its ``embed`` / ``transform`` / ``predict_maps`` accept raw
surveys and records and apply the saved preprocessing. A short model card
(Markdown) is written beside the file.
"""

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from astro_cl.exceptions import CheckpointError
from astro_cl.utils.io import atomic_write

__all__ = ["artefact_state", "load_model", "package_versions", "restore_artefact",
           "write_model_card"]

_PACKAGES = ("astro_cl", "torch", "numpy", "astropy", "specutils", "scikit-learn")


def package_versions() -> dict[str, str]:
    """Return the versions of Python and the packages a model depends on.

    Returns
    -------
    versions : dict of str to str
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def artefact_state(encoder: Any) -> dict[str, Any]:
    """Return the plain-type entries that make a checkpoint self-contained.

    Parameters
    ----------
    encoder : `~astro_cl.models.Encoder`
        A fitted torch encoder (``preprocessor_``, ``contract_`` and
        ``provenance_`` are used when present).

    Returns
    -------
    state : dict
        ``preprocessor`` (or None), ``contract`` (or None), ``provenance``
        (a JSON string) and ``versions``.
    """
    import torch

    from astro_cl.training.checkpoints import jsonable

    pre = getattr(encoder, "preprocessor_", None)
    pre_state = None
    if pre is not None:
        header, arrays = pre.state_dict()
        pre_state = {"header": json.dumps(header, sort_keys=True),
                     "arrays": {k: torch.from_numpy(np.ascontiguousarray(v))
                                for k, v in arrays.items()}}
    contract = getattr(encoder, "contract_", None)
    return {
        "preprocessor": pre_state,
        "contract": None if contract is None else contract.to_dict(),
        "provenance": json.dumps(jsonable(getattr(encoder, "provenance_", {}) or {}),
                                 sort_keys=True),
        "versions": package_versions(),
    }


def restore_artefact(encoder: Any, checkpoint: dict[str, Any], *,
                     source: str = "checkpoint") -> None:
    """Set ``preprocessor_``, ``contract_``, ``provenance_`` and ``versions_`` from a checkpoint.

    Checkpoints written before these entries existed load with them set to
    None (or empty).

    Parameters
    ----------
    encoder : `~astro_cl.models.Encoder`
    checkpoint : dict
        From `~astro_cl.training.checkpoints.load_checkpoint`.
    source : str, optional
        The file, for error messages.

    Raises
    ------
    astro_cl.exceptions.CheckpointError
        If the saved preprocessor or contract is malformed or corrupt.
    """
    from astro_cl.models.contract import InputContract
    from astro_cl.preprocess.base import Preprocessor

    pre = None
    saved = checkpoint.get("preprocessor")
    if saved is not None:
        try:
            header = json.loads(saved["header"])
            arrays = {k: v.numpy() for k, v in saved["arrays"].items()}
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            msg = f"{source}: the saved preprocessor is malformed ({type(exc).__name__}: {exc})"
            raise CheckpointError(msg) from None
        pre = Preprocessor.from_state(header, arrays, source=f"{source} (preprocessor)")
    contract = checkpoint.get("contract")
    if contract is not None:
        try:
            contract = InputContract.from_dict(contract)
        except (TypeError, ValueError) as exc:
            msg = f"{source}: the saved input contract is malformed ({exc})"
            raise CheckpointError(msg) from None
    try:
        provenance = json.loads(checkpoint.get("provenance") or "{}")
    except (TypeError, json.JSONDecodeError) as exc:
        msg = f"{source}: the saved provenance is not valid JSON ({exc})"
        raise CheckpointError(msg) from None
    encoder.preprocessor_ = pre
    encoder.contract_ = contract
    encoder.provenance_ = provenance
    encoder.versions_ = dict(checkpoint.get("versions") or {})


def load_model(path: str | Path, *, device: str = "cpu", **overrides: Any) -> Any:
    """Load a trained model of any registered kind from its file.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A model file written by ``Encoder.save`` or ``astro-cl train`` (also a
        trainer's ``last.pt``).
    device : str, optional
        Where to put the network.
    **overrides
        Model parameters replacing the stored ones (e.g. ``augmenter``); for
        a `~astro_cl.models.TorchEncoder` also ``trainer``, a dict of training
        settings replacing the saved ones (e.g. ``{"precision": "fp32"}``).

    Returns
    -------
    model : `~astro_cl.models.Encoder`
        Fitted, in evaluation mode. Its ``embed`` / ``transform`` /
        ``predict_maps`` accept raw surveys and records and apply the saved
        preprocessing after checking them against ``contract_``.

    Raises
    ------
    astro_cl.exceptions.CheckpointError
        If the file is not an astro_cl model, its model is not registered, or
        the model's encoder class does not implement
        `~astro_cl.models.Encoder.load`.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import astro_cl
    >>> model = astro_cl.load_model("runs/simclr/model.pt")        # doctest: +SKIP
    >>> table = model.embed(astro_cl.get_survey("ecalifa-mock", n=8))  # doctest: +SKIP
    """
    from astro_cl.exceptions import UnknownComponentError
    from astro_cl.models.base import Encoder
    from astro_cl.plugins.registry import get_component_class
    from astro_cl.training.checkpoints import load_checkpoint

    path = Path(path)
    if path.is_dir():
        msg = f"{path}: is a directory; give the model file (e.g. {path / 'model.pt'})"
        raise CheckpointError(msg)
    name = load_checkpoint(path)["header"]["model"]
    try:
        cls = get_component_class("encoder", name)
    except UnknownComponentError as exc:
        msg = f"{path}: holds a {name!r} model, which no installed plugin provides ({exc})"
        raise CheckpointError(msg) from None
    if getattr(cls.load, "__func__", None) is vars(Encoder)["load"].__func__:
        # the interface's own load only says it cannot; name the model file's model too
        msg = (f"{path}: holds a {name!r} model, but its encoder class "
               f"{cls.__module__}.{cls.__qualname__} cannot load model files: it does not "
               "implement the class method load(path, *, device='cpu', **overrides) of "
               "astro_cl.models.Encoder")
        raise CheckpointError(msg)
    return cls.load(path, device=device, **overrides)


def _card_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix(".md") if path.suffix else path.with_name(path.name + ".md")


def write_model_card(encoder: Any, path: str | Path) -> Path:
    """Write a short Markdown model card beside a model file.

    Parameters
    ----------
    encoder : `~astro_cl.models.Encoder`
        The fitted model that was saved.
    path : str or `~pathlib.Path`
        The model file; the card is ``<stem>.md`` beside it.

    Returns
    -------
    card : `~pathlib.Path`
    """
    path = Path(path)
    history = list(getattr(encoder, "history_", []) or [])
    provenance = getattr(encoder, "provenance_", {}) or {}
    contract = getattr(encoder, "contract_", None)
    pre = getattr(encoder, "preprocessor_", None)
    lines = [f"# Model card: {path.name}", "",
             f"A `{encoder.name}` model ({type(encoder).__name__}), "
             f"output: {getattr(encoder, 'output_type', 'embedding')}.", "",
             "## Use", "", "```python", "import astro_cl",
             f'model = astro_cl.load_model("{path.name}")',
             "table = model.embed(survey)" if encoder.output_type != "maps"
             else "maps = model.predict_maps(survey)", "```", ""]
    lines += ["## Input contract", ""]
    lines += contract.describe() if contract is not None else ["- not recorded"]
    if pre is not None:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(pre.get_params(deep=False).items()))
        lines += ["", "## Preprocessing", "", f"`{pre.name}` ({params}), fitted; its state is "
                  "stored in the model file."]
    lines += ["", "## Training", ""]
    survey = provenance.get("survey")
    if survey:
        lines.append(f"- survey: `{json.dumps(survey, sort_keys=True)}`")
    if history:
        last = history[-1]
        val = last.get("val_loss")
        lines.append(f"- epochs run: {len(history)}; last train loss {last['train_loss']:.4g}"
                     + (f", validation loss {val:.4g}" if val is not None else ""))
    else:
        lines.append("- no training history recorded")
    if provenance.get("fast_dev_run"):
        lines.append("- **fast-dev-run**: a plumbing check on a few batches, not a trained model")
    params = encoder.get_params(deep=False)
    shown = {k: v for k, v in params.items() if k not in ("augmenter", "progress", "device")}
    lines.append("- model parameters: " + ", ".join(f"{k}={v!r}" for k, v in
                                                    sorted(shown.items())))
    trainer = getattr(encoder, "trainer_", None)
    if trainer is not None:
        settings = {k: v for k, v in trainer.get_params(deep=False).items() if k != "progress"}
        lines.append("- training settings: " + ", ".join(f"{k}={v!r}" for k, v in
                                                         sorted(settings.items())))
    lines += ["", "## Versions", ""]
    versions = getattr(encoder, "versions_", None) or package_versions()
    lines += [f"- {k}: {v}" for k, v in versions.items()]
    card = _card_path(path)
    with atomic_write(card) as fh:
        fh.write("\n".join(lines) + "\n")
    return card
