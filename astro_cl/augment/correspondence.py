"""Where every pixel of an augmented view came from: pixel correspondence of two views.

Dense contrastive learning (`~astro_cl.models.dense.DenseContrastive`) matches
the same sky position in two augmented views of a galaxy, so it needs, for
each output pixel of a view, its position in the input image.
`augment_with_positions` tracks it without asking anything of the
augmenters: it appends two coordinate maps (the input pixel's ``x`` and
``y``) to the batch's ``targets``, runs the augmenter, and reads them back.
Every built-in geometric augmenter moves the targets with the pixels
(rotations and the affine warp resample them bilinearly, which is exact for a
linear coordinate map; flips, 90-degree turns and shifts permute them;
`~astro_cl.augment.rebin.Rebin` block-averages them to the block's centre)
and flags those that come from outside the frame in ``target_mask``;
photometric steps (noise, blur, masks of stars) leave them alone. A plugin
augmenter keeps the correspondence as long as it treats ``targets`` like the
data's geometry, which is what regression targets need too.

This module imports torch.
"""

import torch

from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError

__all__ = ["augment_with_positions", "coordinate_grid"]


def coordinate_grid(batch_size, height, width, *, dtype=torch.float32, device=None):
    """Return the pixel coordinates of a batch of images: ``x`` then ``y``.

    Parameters
    ----------
    batch_size, height, width : int
    dtype : `torch.dtype`, optional
    device : `torch.device`, optional

    Returns
    -------
    grid : `torch.Tensor`
        ``(batch_size, 2, height, width)``: channel 0 is the column ``x``,
        channel 1 the row ``y`` of each pixel (pixel centres at integers).
    """
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs, ys]).unsqueeze(0).expand(int(batch_size), 2, height, width)


def augment_with_positions(augmenter, batch, generator):
    """Augment a batch and return the input position of every output pixel.

    Parameters
    ----------
    augmenter : `~astro_cl.augment.base.Augmenter` or None
        None returns the batch as it is, with the identity positions.
    batch : `~astro_cl.data.batch.TensorBatch`
        Its own ``targets`` (if any) are augmented as usual and given back.
    generator : `torch.Generator`
        Source of the augmenter's random numbers.

    Returns
    -------
    views : `~astro_cl.data.batch.TensorBatch`
        The augmented batch, with its ``targets`` and ``target_mask`` as the
        augmenter made them (None if the input had none).
    positions : `torch.Tensor`
        ``(B, 2, H, W)`` float32: the ``x`` (channel 0) and ``y`` (channel 1)
        input pixel coordinates each output pixel was taken from (a block
        centre after a rebinning); NaN where the pixel came from outside the
        input frame.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the augmenter dropped the targets or changed their shape, so that
        the correspondence is lost.
    """
    b, _, h, w = batch.data.shape
    grid = coordinate_grid(b, h, w, dtype=batch.data.dtype, device=batch.device)
    if augmenter is None:
        return batch, grid.float().clone()
    own = batch.targets
    k = 0 if own is None else int(own.shape[1])
    own_mask = None if own is None else batch.target_mask
    if own is None:
        targets = grid.contiguous()
        tmask = torch.zeros((b, 2, h, w), dtype=torch.bool, device=batch.device)
    else:
        targets = torch.cat([own.to(batch.data.dtype), grid], dim=1)
        base = (torch.zeros(own.shape, dtype=torch.bool, device=batch.device)
                if own_mask is None else own_mask.to(torch.bool).expand(own.shape))
        tmask = torch.cat([base, torch.zeros((b, 2, h, w), dtype=torch.bool,
                                             device=batch.device)], dim=1)
    views = augmenter(batch.replace(targets=targets, target_mask=tmask), generator=generator)
    name = type(augmenter).__name__ if isinstance(augmenter, Augmenter) else repr(augmenter)
    got = views.targets
    if got is None or got.ndim != 4 or got.shape[1] != k + 2 or got.shape[0] != len(views):
        shape = None if got is None else tuple(got.shape)
        msg = (f"augment_with_positions: {name} returned targets of shape {shape}, expected "
               f"({len(views)}, {k + 2}, H, W); the augmenter must move 'targets' with the "
               "pixels for the correspondence of the views to be known")
        raise ValidationError(msg)
    positions = got[:, k:].float()
    if views.target_mask is not None:
        lost = views.target_mask.to(torch.bool).expand(got.shape)[:, k:].any(dim=1,
                                                                              keepdim=True)
        positions = positions.masked_fill(lost, float("nan"))
    if own is None:
        views = views.replace(targets=None, target_mask=None)
    else:
        kept_mask = None
        if own_mask is not None and views.target_mask is not None:
            kept_mask = views.target_mask.expand(got.shape)[:, :k]
            if own_mask.shape[1] == 1:
                kept_mask = kept_mask.any(dim=1, keepdim=True)
        views = views.replace(targets=got[:, :k].to(own.dtype), target_mask=kept_mask)
    return views, positions
