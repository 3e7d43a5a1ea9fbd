"""Fast tensor helpers for per-pixel masks on multi-channel images.

Images of many channels (the 30 PCA channels of an IFU cube) travel
through the augmentation chain and the encoders in channels-last memory,
with masks of one channel per pixel, ``(B, 1, H, W)``. Broadcasting such a
mask over the channels (``torch.where``, ``masked_fill``) runs PyTorch's
generic broadcast loop once per pixel over a short channel axis, which is
several times slower than a copy. `fill_pixels` writes whole pixels
(all their channels, contiguous in memory) instead.
"""

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
