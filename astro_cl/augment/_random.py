"""Random draws shared by the augmenters: ranges, uniforms, integers, coins, normal noise.

Private to `astro_cl.augment`: third-party augmenters draw from the
`torch.Generator` they are given with torch's own functions. Every draw here
takes that generator, draws on its device and moves the result, so the same
seed gives the same numbers on CPU and GPU.
"""

import functools
import math

import torch

from astro_cl.exceptions import ValidationError
from astro_cl.utils.tensors import fill_pixels

__all__ = [
    "NORMAL_BLOCK",
    "as_range",
    "chosen",
    "coin",
    "multiplicative_noise",
    "noise_format",
    "randint",
    "randn_like",
    "uniform",
]


def as_range(value, name, owner, *, integer=False, minimum=None):
    """Return a parameter as a validated ``(low, high)`` pair.

    Parameters
    ----------
    value : number or (number, number)
        A single value (``low == high``) or a range.
    name : str
        Parameter name, for error messages.
    owner : str
        Class name, for error messages.
    integer : bool, optional
        Cast to int instead of float.
    minimum : number, optional
        Smallest allowed value.

    Returns
    -------
    low, high : float or int

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the value is not one or two finite numbers with ``low <= high``
        (and ``low >= minimum``).
    """
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            msg = f"{owner}.{name}: expected a number or a (low, high) pair, got {value!r}"
            raise ValidationError(msg)
        low, high = value
    else:
        low = high = value
    cast = int if integer else float
    try:
        low, high = cast(low), cast(high)
    except (TypeError, ValueError):
        msg = f"{owner}.{name}: expected numbers, got {value!r}"
        raise ValidationError(msg) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        msg = f"{owner}.{name}: expected finite low <= high, got {value!r}"
        raise ValidationError(msg)
    if minimum is not None and low < minimum:
        msg = f"{owner}.{name}: values must be >= {minimum}, got {value!r}"
        raise ValidationError(msg)
    return low, high


def uniform(low, high, n, generator, device, dtype=torch.float32):
    """Draw ``n`` uniform numbers in ``[low, high)``.

    Parameters
    ----------
    low, high : float
    n : int
    generator : `torch.Generator`
    device : `torch.device` or str
        Device of the result (the draw happens on the generator's device).
    dtype : `torch.dtype`, optional

    Returns
    -------
    values : `torch.Tensor`
        ``(n,)``, drawn in float64 and cast to ``dtype``.
    """
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * u).to(device=device, dtype=dtype)


def randint(low, high, n, generator, device):
    """Draw ``n`` integers in ``[low, high]`` (both inclusive).

    Parameters
    ----------
    low, high : int
    n : int
    generator : `torch.Generator`
    device : `torch.device` or str

    Returns
    -------
    values : `torch.Tensor`
        ``(n,)`` int64.
    """
    out = torch.randint(int(low), int(high) + 1, (n,), generator=generator,
                        device=generator.device)
    return out.to(device)


def coin(n, generator, device, p=0.5):
    """Draw ``n`` booleans, each True with probability ``p``.

    Parameters
    ----------
    n : int
    generator : `torch.Generator`
    device : `torch.device` or str
    p : float, optional

    Returns
    -------
    values : `torch.Tensor` of bool
    """
    return (torch.rand(n, generator=generator, device=generator.device) < p).to(device)


def chosen(n, p, generator):
    """Which of ``n`` galaxies a chain step of probability ``p`` acts on.

    Parameters
    ----------
    n : int
    p : float
        Probability; at 1 nothing is drawn (the generator is not advanced).
    generator : `torch.Generator`

    Returns
    -------
    chosen : `torch.Tensor` of bool
        ``(n,)``, on the CPU.
    """
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool)
    return (torch.rand(n, generator=generator, device=generator.device) < p).cpu()


#: Elements per independently seeded block of large normal draws (see `randn_like`).
NORMAL_BLOCK = 1 << 19  # small enough to balance the blocks over the threads


@functools.cache
def _normal_threads():
    """Return the process's thread pool for filling noise blocks (torch drops the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()),
                              thread_name_prefix="astro_cl-noise")


def randn_like(tensor, generator, memory_format=torch.preserve_format, std=None):
    """Draw standard normal noise with the shape, dtype and device of ``tensor``.

    One CPU generator fills memory on one core only; large CPU draws (more
    than two blocks of `NORMAL_BLOCK` elements) are therefore cut into
    fixed-size blocks, each filled from its own generator seeded from
    ``generator``, on a thread pool. The blocks do not depend on the number of
    threads, so the same seed gives the same noise on every machine.

    Parameters
    ----------
    tensor : `torch.Tensor`
        Template of the shape, dtype and device.
    generator : `torch.Generator`
    memory_format : `torch.memory_format`, optional
        Layout of the result.
    std : `torch.Tensor`, optional
        ``(B,)``: each image's own standard deviation, applied while drawing
        (no extra pass over the noise); default 1.

    Returns
    -------
    noise : `torch.Tensor`
    """
    on_cpu = generator.device.type == "cpu" and tensor.device.type == "cpu"
    if not on_cpu or tensor.numel() <= 2 * NORMAL_BLOCK:
        noise = torch.randn(tensor.shape, generator=generator, device=generator.device,
                            dtype=tensor.dtype)
        noise = noise.to(tensor.device).contiguous(memory_format=memory_format)
        if std is not None:
            noise.mul_(std.to(noise).view(-1, *([1] * (noise.ndim - 1))))
        return noise
    block = NORMAL_BLOCK
    noise = torch.empty_like(tensor, memory_format=memory_format)
    if noise.is_contiguous():
        flat = noise.view(-1)
    else:  # channels-last: the memory is (B, H, W, C)
        flat = noise.permute(0, 2, 3, 1).reshape(-1)
    n_blocks = -(-flat.numel() // block)
    seeds = torch.randint(0, 2**62, (n_blocks,), generator=generator).tolist()
    per_image = noise[0].numel()
    stds = None if std is None else std.double().cpu().tolist()

    def fill(i):
        lo, hi = i * block, min((i + 1) * block, flat.numel())
        gen = torch.Generator().manual_seed(seeds[i])
        if stds is None:
            flat[lo:hi].normal_(generator=gen)
            return
        while lo < hi:  # the block may span images: one piece per image
            image = lo // per_image
            end = min(hi, (image + 1) * per_image)
            flat[lo:end].normal_(0.0, stds[image], generator=gen)
            lo = end

    list(_normal_threads().map(fill, range(n_blocks)))
    return noise


def noise_format(data):
    """Return the memory format `multiplicative_noise` draws the noise of ``data`` in.

    Images of several channels come out channels-last, the fast layout of the
    resampling and convolution steps that usually follow.

    Parameters
    ----------
    data : `torch.Tensor`

    Returns
    -------
    format : `torch.memory_format`
    """
    return (torch.channels_last if data.ndim == 4 and data.shape[1] >= 4
            else torch.preserve_format)


def multiplicative_noise(data, mask, uncertainty, sn, generator, noise=None):
    """Return ``data * (1 + N(0, 1) / sn)`` and its uncertainty.

    The noise of `~astro_cl.augment.photometric.MultiplicativeNoise` (and of
    its fusion with a following `~astro_cl.augment.rebin.Rebin`). Masked
    pixels come out zero; the added noise ``|data| / sn`` is added in
    quadrature to ``uncertainty``.

    Parameters
    ----------
    data : `torch.Tensor`
        ``(B, C, H, W)`` images (not modified).
    mask : `torch.Tensor` of bool
        ``(B, 1, H, W)`` bad-pixel flags.
    uncertainty : `torch.Tensor` or None
        Per-pixel standard deviations like ``data``.
    sn : `torch.Tensor`
        ``(B,)`` signal-to-noise ratios.
    generator : `torch.Generator`
    noise : `torch.Tensor`, optional
        The standard normal noise already drawn (``randn_like(data,
        generator, noise_format(data), std=1 / sn)``) and no longer needed:
        the result is written over it. Drawn here when None.

    Returns
    -------
    data, uncertainty : `torch.Tensor`
        ``uncertainty`` is None when the input's is.
    """
    sn = sn.to(device=data.device, dtype=data.dtype).view(-1, 1, 1, 1)
    # data + data * N(0, 1/SN): the 1/SN scaling happens while drawing and the
    # rest is one fused pass written over the noise
    if noise is None:
        noise = randn_like(data, generator, noise_format(data), std=sn.reciprocal().flatten())
    new = torch.addcmul(data, data, noise, out=noise)
    if bool(mask.any()):
        new = fill_pixels(new, mask, inplace=True)
    if uncertainty is None:
        return new, None
    added = data / sn
    return new, added.square_().addcmul_(uncertainty, uncertainty).sqrt_()
