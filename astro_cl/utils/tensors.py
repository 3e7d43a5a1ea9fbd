"""Fast tensor helpers for per-pixel masks on multi-channel images.

Images of many channels (the 30 PCA channels of an IFU cube) travel
through the augmentation chain and the encoders in channels-last memory,
with masks of one channel per pixel, ``(B, 1, H, W)``. Broadcasting such a
mask over the channels (``torch.where``, ``masked_fill``) runs PyTorch's
generic broadcast loop once per pixel over a short channel axis, which is
several times slower than a copy. `fill_pixels` writes whole pixels
(all their channels, contiguous in memory) instead.
"""

import math

import torch

__all__ = ["fill_pixels"]


def fill_pixels(tensor, pixels, value=0.0, *, inplace=False):
    """Set every channel of the flagged pixels of ``tensor`` to ``value``.

    Equivalent to ``tensor.masked_fill(pixels, value)`` with a per-pixel mask
    broadcast over the channels, and much faster on channels-last images:
    the flagged pixels are located once and their channel vectors
    overwritten in place (``index_fill_``), so only the flagged pixels are
    touched. NaNs under the mask are overwritten too (unlike multiplying by
    a 0/1 mask). Autograd follows the operation as it does ``masked_fill``.

    Parameters
    ----------
    tensor : `torch.Tensor`
        Images ``(B, C, H, W)``, in any memory format.
    pixels : `torch.Tensor` of bool
        ``(B, 1, H, W)`` (one flag per pixel) or any shape that broadcasts
        to ``tensor`` (then plain ``masked_fill`` is used).
    value : float, optional
        Value written into the flagged pixels.
    inplace : bool, optional
        Overwrite ``tensor`` (which must not be needed unmodified elsewhere)
        instead of returning a modified copy.

    Returns
    -------
    out : `torch.Tensor`
        ``tensor`` itself when ``inplace``, otherwise a new tensor in the
        same memory format.
    """
    per_pixel = (tensor.ndim == 4 and pixels.ndim == 4 and tensor.shape[1] > 1
                 and pixels.shape == (tensor.shape[0], 1, *tensor.shape[2:]))
    channels_last = (per_pixel and not tensor.is_contiguous()
                     and tensor.is_contiguous(memory_format=torch.channels_last))
    zero_bits = _zeroes_by_bits(tensor, pixels, value)
    if zero_bits and (not channels_last or (
            tensor.shape[1] >= _BITS_MIN_CHANNELS
            and int(pixels.sum()) > _BITS_MIN_FRACTION * pixels.numel())):
        # masked_fill runs a scalar loop over the flags, and writing whole
        # pixels gathers them one by one; clearing the bits of the flagged
        # elements (+0.0 is all zero bits) is one vectorised AND over the
        # tensor (on channels-last memory only worth it with enough channels
        # per pixel and enough pixels flagged)
        bits = _SAME_SIZE_INT[tensor.dtype]
        out = tensor if inplace else tensor.clone(memory_format=torch.preserve_format)
        out.view(bits).bitwise_and_((~pixels).to(bits).neg_())  # -1: every bit set
        return out
    if not channels_last:
        # contiguous (B, C, H, W): the channel axis is an outer loop, which
        # broadcasts efficiently; any other shape is masked_fill's own business
        return tensor.masked_fill_(pixels, value) if inplace else tensor.masked_fill(pixels,
                                                                                     value)
    out = tensor if inplace else tensor.clone(memory_format=torch.channels_last)
    rows = torch.nonzero(pixels.reshape(-1)).flatten()
    if rows.numel():
        # (B, H, W, C) rows are pixels, in the order of the flattened (B, 1, H, W) mask
        out.permute(0, 2, 3, 1).view(-1, out.shape[1]).index_fill_(0, rows, value)
    return out


#: Channels per pixel and fraction of pixels flagged from which `fill_pixels`
#: zeroes a channels-last tensor by clearing bits rather than pixel by pixel.
_BITS_MIN_CHANNELS = 8
_BITS_MIN_FRACTION = 0.1


#: Integer dtype of the same size as each floating dtype (bit-level zeroing).
_SAME_SIZE_INT = {torch.float64: torch.int64, torch.float32: torch.int32,
                  torch.float16: torch.int16, torch.bfloat16: torch.int16}


def _zeroes_by_bits(tensor, pixels, value):
    """Whether `fill_pixels` may write +0.0 by clearing bits (no autograd, a plain layout)."""
    layout = tensor.is_contiguous() or tensor.is_contiguous(memory_format=torch.channels_last)
    return (tensor.dtype in _SAME_SIZE_INT and pixels.dtype == torch.bool
            and value == 0 and math.copysign(1.0, value) > 0 and layout
            and not (tensor.requires_grad and torch.is_grad_enabled())
            and torch.broadcast_shapes(pixels.shape, tensor.shape) == tensor.shape)
