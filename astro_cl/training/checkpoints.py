"""Checkpoints that never execute code when loaded.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python
types (dict, list, str, int, float, bool, None), read back with
``torch.load(..., weights_only=True)``: a file from a colleague cannot run code
on your machine. Its ``header`` names the astro_cl version, the model and the
model's configuration (JSON), so that loading a checkpoint into another model
or version fails with a message naming both.
"""

import json
import pickle
import warnings

from astro_cl.exceptions import CheckpointError
from astro_cl.utils.io import atomic_path

__all__ = ["FORMAT_VERSION", "jsonable", "load_checkpoint", "make_header", "save_checkpoint"]

#: Layout version of the checkpoint dictionary.
FORMAT_VERSION = 1


def _version():
    from astro_cl import __version__

    return __version__


def jsonable(value):
    """Return a JSON-serialisable description of a configuration value.

    Components become ``{"name": ..., "params": {...}}``; tuples become lists;
    other objects their ``repr``.

    Parameters
    ----------
    value : object

    Returns
    -------
    plain : object
    """
    from astro_cl.base import Component

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Component):
        return {"name": type(value).name or type(value).__qualname__,
                "params": jsonable(value.get_params(deep=False))}
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return repr(value)


def make_header(model_name, config):
    """Return the header of a checkpoint.

    Parameters
    ----------
    model_name : str
        Registered name of the model (e.g. ``"simclr"``).
    config : dict
        Model configuration (made JSON-serialisable).

    Returns
    -------
    header : dict
        ``format``, ``astro_cl_version``, ``model`` and ``config`` (a JSON string).
    """
    return {"format": FORMAT_VERSION, "astro_cl_version": _version(), "model": str(model_name),
            "config": json.dumps(jsonable(config), sort_keys=True)}


def save_checkpoint(path, state, header):
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Destination (``.pt``).
    state : dict
        Tensors and plain types only (state dicts, RNG states, history).
    header : dict
        From `make_header`.
    """
    import torch

    payload = {"header": dict(header), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _release(version):
    parts = str(version).split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return str(version)


def load_checkpoint(path, *, model_name=None, map_location="cpu", check_version=True):
    """Read a checkpoint without executing code from it.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A file written by `save_checkpoint`.
    model_name : str, optional
        Expected model name; a checkpoint of another model is refused.
    map_location : str or `torch.device`, optional
        Where to put the tensors.
    check_version : bool, optional
        Refuse a checkpoint written by another astro_cl release (major.minor).

    Returns
    -------
    checkpoint : dict
        With ``header`` (``config`` decoded into a dict) and the saved state.

    Raises
    ------
    astro_cl.exceptions.CheckpointError
        If the file is not a checkpoint, holds anything but tensors and plain
        types, or belongs to another model, format or version.
    FileNotFoundError
        If the file does not exist.
    """
    import torch

    try:
        with warnings.catch_warnings():
            # a bare pickle (not a torch.save zip) triggers a protocol warning
            warnings.filterwarnings("ignore", message="Detected pickle protocol",
                                    category=UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as exc:
        msg = (f"{path}: not a loadable astro_cl checkpoint (only tensors and plain types are "
               f"accepted, no pickled code): {type(exc).__name__}: {str(exc).splitlines()[0]}")
        raise CheckpointError(msg) from exc
    header = ckpt.get("header") if isinstance(ckpt, dict) else None
    if not isinstance(header, dict) or "model" not in header:
        msg = f"{path}: not an astro_cl checkpoint (no header with the model name)"
        raise CheckpointError(msg)
    if header.get("format") != FORMAT_VERSION:
        msg = (f"{path}: checkpoint format {header.get('format')!r}, this astro_cl "
               f"({_version()}) reads format {FORMAT_VERSION}")
        raise CheckpointError(msg)
    if model_name is not None and header["model"] != model_name:
        msg = (f"{path}: checkpoint of model {header['model']!r} (astro_cl "
               f"{header.get('astro_cl_version')}), cannot be loaded into model {model_name!r}")
        raise CheckpointError(msg)
    if check_version and _release(header.get("astro_cl_version")) != _release(_version()):
        msg = (f"{path}: checkpoint written by astro_cl {header.get('astro_cl_version')} for "
               f"model {header['model']!r}; this is astro_cl {_version()} (releases must match; "
               "pass check_version=False to try anyway)")
        raise CheckpointError(msg)
    header = dict(header)
    try:
        header["config"] = json.loads(header.get("config") or "{}")
    except json.JSONDecodeError as exc:
        msg = f"{path}: checkpoint header 'config' is not valid JSON ({exc})"
        raise CheckpointError(msg) from exc
    ckpt["header"] = header
    return ckpt
