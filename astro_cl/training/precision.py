"""Which floating-point precision training and inference run in.

``precision="fp32"`` runs everything in float32. ``"bf16"`` runs the network's
forward passes under bfloat16 autocast: the weights (and the optimiser's state)
stay float32 ("master weights"), matrix products and convolutions run in
bfloat16, and the network's outputs are cast back to float32 before the loss,
which is computed in float32. ``"auto"`` (the default of
`~astro_cl.training.TrainerConfig`) chooses bf16 where it pays:

* a CUDA GPU that supports bfloat16 natively (Ampere and later);
* a CPU with AMX (``amx_bf16``, Intel Sapphire Rapids and later), whose tile
  units multiply bfloat16 matrices several times faster than float32.

Elsewhere ``"auto"`` means fp32: on AVX2 CPUs, Apple MPS and older GPUs
bfloat16 is emulated; on CPUs with AVX512-BF16 but no AMX (Intel Cooper Lake,
AMD Zen 4) it is native (`bf16_native`) but did not pay reliably: faster
with one thread, slower with two on a loaded 2-core machine (figures in
``benchmarks/README.md``, from ``benchmarks/bench_precision.py``).
``precision="bf16"`` uses it there; `AUTO_BF16_CPU_FLAGS` is the rule.

This module does not import torch until a CUDA device is asked about.
"""

from pathlib import Path

from astro_cl.exceptions import ValidationError

__all__ = ["AUTO_BF16_CPU_FLAGS", "BF16_CPU_FLAGS", "PRECISIONS", "bf16_native",
           "cpu_bf16_flags", "cpu_flags", "precision_forward", "resolve_precision"]

#: Accepted values of a ``precision`` setting.
PRECISIONS = ("fp32", "bf16", "auto")
#: CPU feature flags (as ``/proc/cpuinfo`` spells them) that give native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: Those of them with which ``precision="auto"`` trains a CPU model in bf16.
AUTO_BF16_CPU_FLAGS = ("amx_bf16",)
#: Where the CPU's feature flags are read (Linux).
CPUINFO = "/proc/cpuinfo"


def cpu_flags(path=None):
    """Return the feature flags of this machine's CPU.

    Parameters
    ----------
    path : str or `~pathlib.Path`, optional
        The ``cpuinfo`` file (default `CPUINFO`).

    Returns
    -------
    flags : frozenset of str
        Empty where the file does not exist or has no ``flags`` line (not
        Linux, or an ARM CPU, which says ``Features``).
    """
    try:
        text = Path(path or CPUINFO).read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_bf16_flags(flags=None):
    """Return which of `BF16_CPU_FLAGS` the CPU has.

    Parameters
    ----------
    flags : iterable of str, optional
        The CPU's feature flags (default: `cpu_flags`).

    Returns
    -------
    found : tuple of str
        E.g. ``("avx512_bf16",)``; empty on a CPU without native bfloat16.
    """
    have = set(cpu_flags() if flags is None else flags)
    return tuple(f for f in BF16_CPU_FLAGS if f in have)


def bf16_native(device):
    """Return whether a device has native (not emulated) bfloat16 arithmetic.

    Parameters
    ----------
    device : str or `torch.device`
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` ...

    Returns
    -------
    bool
        True for a CPU with one of `BF16_CPU_FLAGS` and for a CUDA GPU whose
        bfloat16 is not emulated; False otherwise.
    """
    kind = str(getattr(device, "type", device)).split(":")[0].lower()
    if kind == "cpu":
        return bool(cpu_bf16_flags())
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_available()
                    and torch.cuda.is_bf16_supported(including_emulation=False))
    return False


def resolve_precision(precision, device):
    """Return the precision a run uses on a device: ``"fp32"`` or ``"bf16"``.

    Parameters
    ----------
    precision : {"fp32", "bf16", "auto"}
        ``"auto"``: bf16 on a CUDA GPU with native bfloat16 and on a CPU with
        one of `AUTO_BF16_CPU_FLAGS` (AMX), else fp32. ``"bf16"`` is honoured
        on any device that can autocast to bfloat16 (where it is emulated it
        is slow, but works).
    device : str or `torch.device`

    Returns
    -------
    str

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If ``precision`` is not one of `PRECISIONS`.
    """
    if precision not in PRECISIONS:
        msg = f"precision = {precision!r}: expected one of {', '.join(map(repr, PRECISIONS))}"
        raise ValidationError(msg)
    if precision != "auto":
        return precision
    kind = str(getattr(device, "type", device)).split(":")[0].lower()
    if kind == "cpu":
        pays = bool(set(cpu_bf16_flags()) & set(AUTO_BF16_CPU_FLAGS))
    else:
        pays = kind == "cuda" and bf16_native(device)
    return "bf16" if pays else "fp32"


def _as_float32(value):
    """Cast the floating tensors of a network output (tensor, tuple, list, dict) to float32."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_as_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_float32(v) for k, v in value.items()}
    return value


class _Autocast:
    """A network whose calls run under bfloat16 autocast and return float32 outputs."""

    def __init__(self, model, device_type):
        self._model = model
        self._device_type = device_type

    def __call__(self, *args, **kwargs):
        import torch

        with torch.autocast(device_type=self._device_type, dtype=torch.bfloat16):
            out = self._model(*args, **kwargs)
        # outside autocast: whatever the loss computes on these runs in float32
        return _as_float32(out)

    def __getattr__(self, name):
        return getattr(self._model, name)


def precision_forward(model, precision, device):
    """Return ``model`` as a callable that runs its forward pass in ``precision``.

    Parameters
    ----------
    model : callable
        A `torch.nn.Module` (or a distributed wrapper of one).
    precision : {"fp32", "bf16"}
        A resolved precision (see `resolve_precision`).
    device : str or `torch.device`
        Where the model runs.

    Returns
    -------
    forward : callable
        ``model`` itself for fp32. For bf16, a wrapper whose calls run the
        network under bfloat16 autocast and return its floating outputs as
        float32, so that the loss is computed in float32; other attributes
        are the model's. The weights are not touched (float32 master weights).
    """
    if precision == "fp32":
        return model
    if precision != "bf16":
        msg = f"precision = {precision!r}: expected a resolved precision, 'fp32' or 'bf16'"
        raise ValidationError(msg)
    return _Autocast(model, str(getattr(device, "type", device)).split(":")[0])
