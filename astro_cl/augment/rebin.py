"""The eCALIFA study's "redshift" augmentation: block-sum rebinning and re-padding.

A galaxy seen from further away covers fewer pixels. Summing ``f x f``
blocks of pixels shrinks the image by ``f`` while keeping every photon (the
sum is exactly flux conserving), and re-padding to the input size (centred,
with zero, masked pixels) keeps the batch shape.
"""

import torch
import torch.nn.functional as F

from astro_cl.augment._random import (
    as_range,
    multiplicative_noise,
    noise_format,
    randint,
    randn_like,
)
from astro_cl.augment._resample import memory_format
from astro_cl.augment.base import Augmenter
from astro_cl.utils.tensors import fill_pixels

__all__ = ["Rebin", "rebin_images"]


def _block_reduce(t, f, how):
    """Reduce ``t`` (B, C, H, W) over ``f x f`` blocks after zero-padding to a multiple of f.

    The padding is split around the image so that the result stays centred
    (the smaller half first). ``how`` is "sum", "mean" (over the real pixels
    of the block) or "any". The pooling itself pads, so the input is never
    copied into a padded array.
    """
    h, w = t.shape[-2:]
    # the pooling pads ph // 2 rows on top and ceil mode takes the rest of
    # the last block as it comes: the same blocks as padding ph // 2 on top
    # and ph - ph // 2 below
    padding = (((-h) % f) // 2, ((-w) % f) // 2)
    if how == "any":
        # max pooling pads with -inf: a block is flagged if any real pixel is
        return F.max_pool2d(t.to(torch.float32), f, padding=padding, ceil_mode=True).bool()
    if how == "sum":
        return F.avg_pool2d(t, f, padding=padding, ceil_mode=True, divisor_override=1)
    return F.avg_pool2d(t, f, padding=padding, ceil_mode=True, count_include_pad=False)


def _rows(idx):
    """Return a slice for consecutive row indices (a view, no copy), else the indices."""
    first, n = int(idx[0]), len(idx)
    if int(idx[-1]) - first == n - 1:  # sorted and unique (from nonzero), so consecutive
        return slice(first, first + n)
    return idx


def _fill_border(frame, top, left, hh, ww, fill):
    """Fill ``frame`` (..., H, W) outside the box ``[top:top+hh, left:left+ww]``."""
    frame[..., :top, :].fill_(fill)
    frame[..., top + hh:, :].fill_(fill)
    frame[..., top:top + hh, :left].fill_(fill)
    frame[..., top:top + hh, left + ww:].fill_(fill)


class Rebin(Augmenter):
    """Shrink each image by summing ``f x f`` pixel blocks (f random), then re-pad.

    The factor ``f`` is an integer drawn per image from ``factor`` (1..5 in the
    eCALIFA study; ``f = 1`` leaves the image unchanged). Before summing, the
    image is zero-padded (symmetrically) to a multiple of ``f``, so no pixel
    is dropped and the total flux is conserved exactly; the reduced image is
    then centred in a frame of the input size whose other pixels are zero and
    masked. A block is bad if any of its pixels is bad (its value, the sum of
    the pixels, is kept, so the sum of the data is conserved exactly even with
    masked pixels, whose values are usually zero); uncertainties add in
    quadrature (square root of the summed variances); star masks follow the
    any rule; regression targets (surface densities) are block-averaged.

    Parameters
    ----------
    factor : int or (int, int), optional
        Rebinning factor, or an inclusive range drawn per image.
    """

    name = "rebin"
    description = "'Redshift' degradation: block-sum rebinning by a random factor, then re-pad."
    conserves_flux = True

    def __init__(self, *, factor=(1, 5)):
        self.factor = factor

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        return rebin_images(batch, self.draw_factors(len(batch), generator, batch.device))

    def draw_factors(self, n, generator, device):
        """Draw the rebinning factors of ``n`` images.

        Parameters
        ----------
        n : int
        generator : `torch.Generator`
        device : `torch.device`

        Returns
        -------
        factors : `torch.Tensor`
            ``(n,)`` int64 factors on ``device``.
        """
        low, high = as_range(self.factor, "factor", "Rebin", integer=True, minimum=1)
        return randint(low, high, n, generator, device)


def rebin_images(batch, factors, *, noise_sn=None, generator=None):
    """Block-sum rebin each image by its own factor, optionally after multiplicative noise.

    See `Rebin` for the rebinning. With ``noise_sn``, the images with a
    positive value are first given the `~astro_cl.augment.photometric.MultiplicativeNoise`
    of that signal-to-noise ratio. Where an image is also rebinned (factor
    ``f > 1``), the noise is drawn on the blocks rather than on the pixels:
    over the good pixels of a block, the sum of ``x * (1 + n / SN)`` with
    independent standard normal ``n`` is ``sum(x) + z * sqrt(sum(x**2)) / SN``
    with one standard normal ``z``, exactly in distribution, so the result is
    that of the noise followed by the rebinning from ``1 / f**2`` of the
    random numbers. (`~astro_cl.augment.photometric.MultiplicativeNoise.fusion`
    uses this for a noise step directly followed by a rebinning step.)

    The work is done once per kind of image (factor, noise or not), for all
    the images of that kind at once. On the CPU the noise is drawn first, in
    batch order, one draw per run of consecutive images of the same kind, so
    the views do not depend on that grouping; on other devices it is drawn
    once per kind.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
    factors : `torch.Tensor`
        ``(B,)`` integer factors (1 leaves an image's size as it is).
    noise_sn : `torch.Tensor`, optional
        ``(B,)`` signal-to-noise ratios of the noise; 0 for no noise.
    generator : `torch.Generator`, optional
        Source of the noise (required with ``noise_sn``).

    Returns
    -------
    batch : `~astro_cl.data.batch.TensorBatch`
    """
    b, c, h, w = batch.data.shape
    factors = factors.cpu()
    noisy = (torch.zeros(b, dtype=torch.bool) if noise_sn is None
             else noise_sn.cpu() > 0)
    if bool((factors == 1).all()) and not bool(noisy.any()):
        return batch
    if noise_sn is not None:
        noise_sn = noise_sn.to(device=batch.device, dtype=batch.data.dtype)
    fields = batch.tensors()
    # one fresh output per field; images of several channels on the CPU are
    # worked on channels-last, where block pooling is many times faster
    formats = {name: (torch.channels_last if _prefers_channels_last(value)
                      else memory_format(value)) for name, value in fields.items()}
    out = {name: torch.empty_like(value, memory_format=formats[name])
           for name, value in fields.items()}
    keys = list(zip(factors.tolist(), noisy.tolist(), strict=True))
    noise = None
    if batch.device.type == "cpu" and bool(noisy.any()):
        noise = _noise_by_run(keys, (c, h, w), formats["data"], noise_sn, generator)
    for (f, with_noise), rows, idx in _groups(keys, batch.device):
        if f == 1 and not with_noise:  # unchanged
            for name, value in fields.items():
                _put_rows(out[name], rows, idx, value[rows])
            continue
        parts = {name: _take_rows(value, rows, idx, formats[name])
                 for name, value in fields.items()}
        sn = noise_sn[idx] if with_noise else None
        # the noise of these images: drawn above in batch order (CPU), or now
        z = None if noise is None or not with_noise else _join(noise[f, with_noise])
        if f == 1:
            if with_noise:
                parts["data"], unc = multiplicative_noise(
                    parts["data"], parts["mask"], parts.get("uncertainty"), sn, generator,
                    noise=z)
                if unc is not None:
                    parts["uncertainty"] = unc
            for name, part in parts.items():
                _put_rows(out[name], rows, idx, part)
            continue
        for name, red in _reduce_group(parts, f, sn, generator, z).items():
            fill = (name != "star_mask") if red.dtype == torch.bool else 0
            hh, ww = red.shape[-2:]
            top, left = (h - hh) // 2, (w - ww) // 2  # centred, as RandomRot90 pads
            in_place = isinstance(rows, slice)
            frame = out[name][rows] if in_place else torch.empty_like(parts[name])
            _fill_border(frame, top, left, hh, ww, fill)
            frame[..., top:top + hh, left:left + ww] = red
            if not in_place:
                out[name].index_copy_(0, idx, frame)
    return batch.replace(**out)


def _prefers_channels_last(value):
    """Whether ``value`` is a CPU image batch of several channels (see `rebin_images`)."""
    return value.device.type == "cpu" and value.ndim == 4 and value.shape[1] >= 4


def _groups(keys, device):
    """Yield ``(key, rows, idx)`` for each kind ``key`` of image, all images of a kind at once.

    ``rows`` is a slice when the images of a kind are consecutive (views, no
    copies), else their indices; ``idx`` are the indices on ``device``. One
    group per kind keeps the number of operations independent of the batch
    size (at most one group per factor and noise choice).
    """
    for key in sorted(set(keys)):
        idx = torch.tensor([i for i, k in enumerate(keys) if k == key])
        yield key, _rows(idx), idx.to(device)


def _runs(keys):
    """Return ``[(key, start, stop), ...]``: the runs of consecutive equal ``keys``."""
    runs, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            runs.append((keys[start], start, i))
            start = i
    return runs


def _noise_by_run(keys, image_shape, fmt, noise_sn, generator):
    """Draw the noise of every noisy image on the CPU, in batch order, one draw per run.

    The noise of `rebin_images` is drawn for each run of consecutive images
    of the same kind (``keys``, (factor, noisy) per image), in batch order, at
    the size the run needs (the rebinned blocks when ``f > 1``): so the views
    do not depend on how the work is grouped afterwards. Each draw is scaled
    by its images' ``1 / SN``.

    Returns
    -------
    noise : dict
        Kind -> the draws of its runs, in batch order.
    """
    c, h, w = image_shape
    noise = {}
    for (f, with_noise), lo, hi in _runs(keys):
        if not with_noise:
            continue
        if f == 1:
            # the draw multiplicative_noise would make for these images
            template = torch.empty((hi - lo, c, h, w), dtype=noise_sn.dtype, memory_format=fmt)
            piece = randn_like(template, generator, noise_format(template),
                               std=noise_sn[lo:hi].reciprocal())
        else:
            # the draw _reduce_group would make: one number per block
            template = torch.empty((hi - lo, c, -(-h // f), -(-w // f)), dtype=noise_sn.dtype,
                                   memory_format=fmt)
            piece = randn_like(template, generator, std=noise_sn[lo:hi].reciprocal())
        noise.setdefault((f, with_noise), []).append(piece)
    return noise


def _join(pieces):
    """Return the noise of the images of one kind (see `_noise_by_run`) as one tensor."""
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _take_rows(value, rows, idx, fmt):
    """Return the rows of ``value`` in memory format ``fmt`` (a view when possible)."""
    part = value[rows] if isinstance(rows, slice) else value.index_select(0, idx)
    return part.contiguous(memory_format=fmt)


def _put_rows(full, rows, idx, part):
    """Write ``part`` into the rows of ``full``."""
    if isinstance(rows, slice):
        full[rows] = part
    else:
        full.index_copy_(0, idx, part.to(full.dtype))


def _reduce_group(parts, f, sn, generator, z=None):
    """Block-reduce the fields of images sharing the factor ``f`` (see `rebin_images`).

    ``z``: the noise of the blocks, already drawn and scaled by ``1 / sn``
    (drawn here if None).
    """
    reduced = {}
    if sn is not None:
        data, mask = parts["data"], parts["mask"]
        good = fill_pixels(data, mask) if bool(mask.any()) else data
        total = _block_reduce(good, f, "sum")
        power = _block_reduce(good * good, f, "sum")  # sum of x**2 over the block
        if "uncertainty" in parts:
            raw = power if good is data else _block_reduce(data * data, f, "sum")
            var = _block_reduce(parts["uncertainty"].square(), f, "sum")
            inv_sn2 = sn.reciprocal().square().view(-1, 1, 1, 1)
            reduced["uncertainty"] = var.addcmul_(raw, inv_sn2).sqrt_()
        if z is None:
            z = randn_like(total, generator, std=sn.reciprocal())
        reduced["data"] = total.addcmul_(power.sqrt_(), z)
    for name, part in parts.items():
        if name in reduced:
            continue
        if name == "data":
            reduced[name] = _block_reduce(part, f, "sum")
        elif name == "uncertainty":
            reduced[name] = _block_reduce(part.square(), f, "sum").sqrt_()
        elif name == "targets":
            reduced[name] = _block_reduce(part, f, "mean")
        else:
            reduced[name] = _block_reduce(part, f, "any")
    return reduced
