"""Checkpoints that never execute code when loaded.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python
types (dict, list, str, int, float, bool, None), read back with
``torch.load(..., weights_only=True)``: a file from a colleague cannot run code
on your machine. Its ``header`` names the astro_cl version, the model and the
model's configuration (JSON), so that loading a checkpoint into another model
or version fails with a message naming both.
"""

import json
import os
import pickletools
import warnings
import zipfile
from pathlib import Path

from astro_cl.exceptions import CheckpointError
from astro_cl.utils.io import atomic_path

__all__ = ["FORMAT_VERSION", "describe_file", "jsonable", "load_checkpoint", "make_header",
           "save_checkpoint"]

#: Layout version of the checkpoint dictionary.
FORMAT_VERSION = 1


def _version():
    from astro_cl import __version__

    return __version__


def jsonable(value):
    """Return a JSON-serialisable description of a configuration value.

    Components become ``{"name": ..., "params": {...}}``; tuples become lists;
    paths strings; other objects their ``repr``.

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
    if isinstance(value, os.PathLike):
        return os.fspath(value)
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


def make_header(model_name, config, *, trainer=None):
    """Return the header of a checkpoint.

    Parameters
    ----------
    model_name : str
        Registered name of the model (e.g. ``"simclr"``).
    config : dict
        Model configuration (made JSON-serialisable).
    trainer : dict, optional
        Training settings (`~astro_cl.training.TrainerConfig` parameters).

    Returns
    -------
    header : dict
        ``format``, ``astro_cl_version``, ``model``, ``config`` and, with
        ``trainer``, ``trainer`` (JSON strings).
    """
    header = {"format": FORMAT_VERSION, "astro_cl_version": _version(),
              "model": str(model_name), "config": json.dumps(jsonable(config), sort_keys=True)}
    if trainer is not None:
        header["trainer"] = json.dumps(jsonable(trainer), sort_keys=True)
    return header


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


#: Modules whose globals torch's safe loader may rebuild (tensors, storages, state dicts).
_SAFE_MODULES = ("torch", "collections", "numpy.core.multiarray", "numpy._core.multiarray",
                 "numpy")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
               "BINSTRING", "SHORT_BINSTRING"}


def _pickle_globals(data):
    """Return the ``module.name`` globals a pickle refers to, read without unpickling it."""
    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _STRING_OPS:
                strings.append(str(arg))
            elif op.name == "GLOBAL":
                found.append(".".join(str(arg).split(" ", 1)))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except (ValueError, TypeError, KeyError, IndexError, EOFError, UnicodeDecodeError):
        pass  # a damaged pickle: report what was read up to there
    # protocol-2 pickles (torch.save) spell the builtins module Python 2's way
    return [n.replace("__builtin__.", "builtins.", 1) if n.startswith("__builtin__.") else n
            for n in found]


def _unsafe(names):
    return sorted({n for n in names if not n.startswith(_SAFE_MODULES)
                   and n not in ("builtins.set", "builtins.frozenset", "builtins.bytearray",
                                 "builtins.slice", "builtins.complex")})


def describe_file(path):
    """Say what a file that is not a valid checkpoint contains, without loading it.

    Reads the file's first bytes, its zip directory or its pickle opcodes
    (`pickletools`); nothing in the file is executed.

    Parameters
    ----------
    path : str or `~pathlib.Path`

    Returns
    -------
    description : str
        E.g. ``"a torch archive whose pickle references builtins.print"``,
        ``"a zip archive without data.pkl (foo.txt)"``, ``"an empty file"``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"an unreadable file ({exc.strerror or exc})"
    if size == 0:
        return "an empty file"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
                if not pkl:
                    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                    return f"a zip archive without data.pkl ({shown or 'empty'})"
                data = zf.read(pkl[0])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return f"a damaged zip archive ({exc})"
        bad = _unsafe(_pickle_globals(data))
        if bad:
            return f"a torch archive whose pickle references {', '.join(bad[:5])}"
        return "a torch archive that torch cannot read (damaged, or from an incompatible torch)"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]"):
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
        bad = _unsafe(_pickle_globals(data))
        if bad:
            return f"a pickle referencing {', '.join(bad[:5])}"
        return "a plain pickle, not a torch.save archive"
    return f"not a zip archive or a pickle: starts with bytes {head!r}"


def _describe_value(value):
    if isinstance(value, dict):
        keys = [str(k) for k in list(value)[:8]]
        return f"a dict with keys {keys}" + (" ..." if len(value) > 8 else "")
    return f"a {type(value).__name__}"


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
        types, or belongs to another model, format or version; the message
        says what the file contains.
    astro_cl.exceptions.ValidationError
        If ``map_location`` names a device this machine does not have.
    FileNotFoundError
        If the file does not exist.
    """
    import torch

    from astro_cl.exceptions import ValidationError
    from astro_cl.training.schema import check_device

    if isinstance(map_location, (str, torch.device)):
        problem = check_device(map_location)
        if problem:  # else torch's error would read as a broken file
            msg = f"{path}: cannot load onto device {str(map_location)!r}: {problem}"
            raise ValidationError(msg)
    if Path(path).is_dir():
        msg = f"{path}: is a directory, not an astro_cl checkpoint file"
        raise CheckpointError(msg)
    try:
        with warnings.catch_warnings():
            # a bare pickle (not a torch.save zip) triggers a protocol warning
            warnings.filterwarnings("ignore", message="Detected pickle protocol",
                                    category=UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception:  # torch raises many kinds of errors for a foreign file
        # torch's own message advises loading with weights_only=False, which would
        # run code from the file: say what the file is instead
        msg = (f"{path}: not a valid astro_cl checkpoint: it is {describe_file(path)} "
               "(an astro_cl checkpoint holds only tensors and plain types, and no code "
               "from a file is ever run)")
        raise CheckpointError(msg) from None
    header = ckpt.get("header") if isinstance(ckpt, dict) else None
    if not isinstance(header, dict) or "model" not in header:
        msg = (f"{path}: not a valid astro_cl checkpoint: a torch file holding "
               f"{_describe_value(ckpt)}, without the astro_cl header (model name, version)")
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
    for key in ("config", "trainer"):  # "trainer": written since TrainerConfig
        if key not in header and key == "trainer":
            continue
        try:
            header[key] = json.loads(header.get(key) or "{}")
        except (TypeError, json.JSONDecodeError) as exc:
            msg = f"{path}: checkpoint header {key!r} is not valid JSON ({exc})"
            raise CheckpointError(msg) from exc
    ckpt["header"] = header
    return ckpt
