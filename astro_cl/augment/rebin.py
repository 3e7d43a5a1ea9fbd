"""The eCALIFA study's "redshift" augmentation: block-sum rebinning and re-padding.

A galaxy seen from further away covers fewer pixels. Summing ``f x f``
blocks of pixels shrinks the image by ``f`` while keeping every photon (the
sum is exactly flux conserving), and re-padding to the input size (centred,
with zero, masked pixels) keeps the batch shape.
"""

import torch
import torch.nn.functional as F

from astro_cl.augment.base import Augmenter
from astro_cl.augment.geometric import _as_range, _randint

__all__ = ["Rebin"]


def _block_reduce(t, f, how):
    """Reduce ``t`` (B, C, H, W) over ``f x f`` blocks after zero-padding to a multiple of f.

    The padding is split around the image so that the result stays centred.
    ``how`` is "sum", "mean" (over the real pixels of the block) or "any".
    """
    h, w = t.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    t = F.pad(t.to(torch.uint8) if how == "any" else t, pad, value=0)
    if how == "any":
        return F.max_pool2d(t.float(), f).bool()
    # avg_pool2d is the fast block mean; times f*f it is the block sum
    total = F.avg_pool2d(t, f) * float(f * f)
    if how == "sum":
        return total
    ones = F.pad(torch.ones(1, 1, h, w, dtype=t.dtype, device=t.device), pad, value=0.0)
    return total / (F.avg_pool2d(ones, f) * float(f * f))


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
        low, high = _as_range(self.factor, "factor", "Rebin", integer=True, minimum=1)
        b, _, h, w = batch.data.shape
        dev = batch.device
        factors = _randint(low, high, b, generator, dev)
        fields = batch.tensors()
        if bool((factors == 1).all()):
            return batch
        groups = [(f, torch.nonzero(factors == f).flatten()) for f in range(low, high + 1)]
        groups = [(f, idx) for f, idx in groups if len(idx)]
        out = {}
        for name, value in fields.items():
            # one fresh output in the input's memory format: each factor group's
            # reduced images are written into the centre of their (filled) frames
            new = torch.empty_like(value)
            for f, idx in groups:
                rows = _rows(idx)
                part = value[rows]  # a view when the rows are consecutive
                if f == 1:
                    new[rows] = part
                    continue
                if name == "data":
                    red = _block_reduce(part, f, "sum")
                elif name == "uncertainty":
                    red = _block_reduce(part.square(), f, "sum").sqrt_()
                elif name == "targets":
                    red = _block_reduce(part, f, "mean")
                else:
                    red = _block_reduce(part, f, "any")
                fill = (name != "star_mask") if red.dtype == torch.bool else 0
                hh, ww = red.shape[-2:]
                top, left = (h - hh) // 2, (w - ww) // 2  # as _fit_shape
                in_place = isinstance(rows, slice)
                frame = new[rows] if in_place else torch.empty_like(part)
                _fill_border(frame, top, left, hh, ww, fill)
                frame[..., top:top + hh, left:left + ww] = red
                if not in_place:
                    new.index_copy_(0, idx, frame)
            out[name] = new
        return batch.replace(**out)
