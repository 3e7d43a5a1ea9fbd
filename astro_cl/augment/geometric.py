"""Geometric augmenters: rotations, flips, translations, crops, on batched tensors.

Every augmenter here moves pixels without changing their values (up to
interpolation). The data, the mask (any-bad propagation: an output pixel is
bad if any input pixel it was interpolated from is bad, or if it falls outside
the input frame), the uncertainty (resampled as a variance), the star mask
(nearest neighbour) and regression targets with their mask travel together,
so a mask keeps covering the same sky after the transformation.

All random parameters are drawn per batch element from the `torch.Generator`
passed to `~astro_cl.augment.base.Augmenter.transform`, so the same seed gives
the same views, on CPU or GPU.
"""

import math

import torch

from astro_cl.augment._random import as_range, coin, randint, uniform
from astro_cl.augment._resample import ORDER, affine_warp, memory_format, pixel_affine
from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError

__all__ = [
    "AffineAugmenter",
    "CropResize",
    "RandomFlip",
    "RandomRot90",
    "RandomRotation",
    "RandomTranslation",
]

# ---------------------------------------------------------------------------
# pixel-exact helpers of the steps below (resampling is in _resample.py)
def _select(cond, new, old):
    """Per-sample ``torch.where``: ``cond`` has shape ``(B,)``."""
    return torch.where(cond.view(-1, *([1] * (old.ndim - 1))), new, old)


def _fit_shape(t, height, width, fill):
    """Centre-crop or pad ``t`` (..., h, w) to (..., height, width) with ``fill``."""
    h, w = t.shape[-2:]
    if (h, w) == (height, width):
        return t
    top, left = (height - h) // 2, (width - w) // 2
    if top < 0 or left < 0:
        y0, x0 = max(-top, 0), max(-left, 0)
        t = t[..., y0:y0 + min(h, height), x0:x0 + min(w, width)]
        top, left = max(top, 0), max(left, 0)
        h, w = t.shape[-2:]
    if (h, w) == (height, width):
        return t
    out = torch.empty((*t.shape[:-2], height, width), dtype=t.dtype, device=t.device,
                      memory_format=memory_format(t)).fill_(fill)
    out[..., top:top + h, left:left + w] = t
    return out


def _fill_value(dtype, name):
    """Value of pixels coming from outside the frame: masks bad, stars absent, data zero."""
    if dtype == torch.bool:
        return name != "star_mask"
    return 0


def _shift_images(t, dy, dx, fill):
    """Shift each image of ``t`` (B, C, H, W) by whole pixels (lists ``dy``, ``dx``).

    Slice copies, one per image (no resampling); pixels shifted in from
    outside the frame take ``fill``. The memory format of ``t`` is kept.
    """
    h, w = t.shape[-2:]
    out = torch.empty_like(t)
    for i, (sy, sx) in enumerate(zip(dy, dx, strict=True)):
        sy, sx = max(-h, min(h, sy)), max(-w, min(w, sx))
        ys, yd = (slice(0, h - sy), slice(sy, h)) if sy >= 0 else (slice(-sy, h), slice(0, h + sy))
        xs, xd = (slice(0, w - sx), slice(sx, w)) if sx >= 0 else (slice(-sx, w), slice(0, w + sx))
        out[i, :, yd, xd] = t[i, :, ys, xs]
        if sy:
            out[i, :, slice(0, sy) if sy > 0 else slice(h + sy, h)] = fill
        if sx:
            out[i, :, :, slice(0, sx) if sx > 0 else slice(w + sx, w)] = fill
    return out


class AffineAugmenter(Augmenter):
    """Base class of augmenters that are affine maps of the pixel grid.

    Subclasses implement `affine`, which draws the random parameters of a
    batch and returns the per-image affine maps, and set `interpolation`.
    In a `~astro_cl.augment.compose.Compose` chain, consecutive affine steps
    of probability 1 are fused into a single resampling (`fusion`: their
    maps are composed, with the random numbers drawn in the same order as
    step by step).
    """

    #: Interpolation the transform needs ("exact" for pixel permutations).
    interpolation = "exact"

    def can_fuse(self, shape):
        """Whether the transform of a batch of ``shape`` can be fused with other affine steps.

        Parameters
        ----------
        shape : tuple of int
            ``(B, C, H, W)``.

        Returns
        -------
        bool
        """
        return True

    def affine(self, shape, generator, device=None):
        """Draw the random parameters and return each image's affine map.

        Parameters
        ----------
        shape : tuple of int
            Batch shape ``(B, C, H, W)``.
        generator : `torch.Generator`
            Source of the random numbers (drawn in the order `transform` draws them).
        device : `torch.device`, optional
            Device of the result.

        Returns
        -------
        theta : `torch.Tensor`
            ``(B, 2, 3)`` float64 maps from normalised output to normalised
            input coordinates (`torch.nn.functional.affine_grid` convention,
            ``align_corners=False``).
        """
        raise NotImplementedError

    def fusion(self, steps, shape):
        """Fuse the run of affine steps of probability 1 that starts here into one resampling.

        See `~astro_cl.augment.base.Augmenter.fusion`. The run takes every
        following `AffineAugmenter` of probability 1 whose `can_fuse` accepts
        ``shape``; the maps are drawn step by step (`affine`, in the order the
        steps would draw them), composed, and the batch is resampled once with
        the most demanding interpolation of the run. The result equals the
        step-by-step one up to interpolation error, and exactly for
        pixel-exact steps.

        Parameters
        ----------
        steps : list of (`~astro_cl.augment.base.Augmenter`, float)
            This step and the rest of the chain.
        shape : tuple of int
            ``(B, C, H, W)`` of the batch reaching this step.

        Returns
        -------
        fusion : (int, callable) or None
            None unless at least two steps fuse.
        """
        run = []
        for aug, p in steps:
            if p < 1.0 or not isinstance(aug, AffineAugmenter) or not aug.can_fuse(shape):
                break
            run.append(aug)
        if len(run) < 2:
            return None

        def apply(batch, generator):
            size = tuple(batch.data.shape)
            thetas = [aug.affine(size, generator, batch.device) for aug in run]
            mode = max((aug.interpolation for aug in run), key=ORDER.__getitem__)
            return affine_warp(batch, thetas, mode)

        return len(run), apply

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        theta = self.affine(tuple(batch.data.shape), generator, batch.device)
        return affine_warp(batch, theta, self.interpolation)


class RandomRotation(AffineAugmenter):
    """Rotate each image by a random angle, optionally with a random x or y flip.

    This is the eCALIFA study's rotation: an angle drawn uniformly in
    ``angle`` degrees, cubic interpolation, and a flip about the x or the y
    axis (chosen at random) on every view. The rotation is about the image
    centre and preserves pixel area, so the flux of a source that stays within
    the frame is conserved up to interpolation error; corners rotated in from
    outside the frame are zero and masked.

    Parameters
    ----------
    angle : float or (float, float), optional
        Rotation angle range in degrees, counter-clockwise as displayed with
        ``origin="lower"`` (90 deg equals ``torch.rot90(x, -1, dims=(-2, -1))``).
    flip : bool, optional
        Also flip each image about its x or its y axis (50/50).
    mode : {"bicubic", "bilinear", "nearest"}, optional
        Interpolation of the data (masks use any-bad propagation; the
        uncertainty is resampled bilinearly as a variance).
    """

    name = "random-rotation"
    description = "Arbitrary-angle rotation (bicubic) with a random x or y flip."
    conserves_flux = True

    def __init__(self, *, angle=(1.0, 359.0), flip=True, mode="bicubic"):
        self.angle = angle
        self.flip = flip
        self.mode = mode

    @property
    def interpolation(self):
        """str: the data interpolation (``mode``)."""
        return self.mode

    def affine(self, shape, generator, device=None):  # noqa: D102 - see AffineAugmenter
        if self.mode not in ("bicubic", "bilinear", "nearest"):
            msg = ("RandomRotation.mode: expected 'bicubic', 'bilinear' or 'nearest', "
                   f"got {self.mode!r}")
            raise ValidationError(msg)
        low, high = as_range(self.angle, "angle", "RandomRotation")
        b, _, h, w = shape
        dev = generator.device if device is None else device
        phi = torch.deg2rad(uniform(low, high, b, generator, dev, torch.float64))
        cos, sin = torch.cos(phi), torch.sin(phi)
        # affine_grid maps output -> input: use the inverse rotation
        rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
        if self.flip:
            flip_x = coin(b, generator, dev)
            sign = torch.ones(b, 2, dtype=rot.dtype, device=dev)
            sign[:, 0] = torch.where(flip_x, -1.0, 1.0)
            sign[:, 1] = torch.where(flip_x, 1.0, -1.0)
            rot = rot * sign.view(b, 1, 2)
        return pixel_affine(rot, h, w)


class RandomFlip(AffineAugmenter):
    """Flip each image left-right and/or up-down, each with probability 1/2.

    Pixel-exact and an involution: applying it twice with the same seed gives
    back the input.

    Parameters
    ----------
    horizontal : bool, optional
        Allow left-right flips (last axis).
    vertical : bool, optional
        Allow up-down flips (second-to-last axis).
    """

    name = "random-flip"
    description = "Random left-right and up-down flips (pixel exact)."
    conserves_flux = True

    def __init__(self, *, horizontal=True, vertical=True):
        self.horizontal = horizontal
        self.vertical = vertical

    def _coins(self, b, generator, device):
        return [coin(b, generator, device) if allowed else None
                for allowed in (self.horizontal, self.vertical)]

    def affine(self, shape, generator, device=None):  # noqa: D102 - see AffineAugmenter
        b = shape[0]
        dev = generator.device if device is None else device
        theta = torch.zeros(b, 2, 3, dtype=torch.float64, device=dev)
        for axis, chosen in enumerate(self._coins(b, generator, dev)):
            theta[:, axis, axis] = 1.0 if chosen is None else torch.where(chosen, -1.0, 1.0)
        return theta

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        out = batch.tensors()
        for chosen, dim in zip(self._coins(len(batch), generator, batch.device), (-1, -2),
                               strict=True):
            if chosen is not None:
                out = {k: _select(chosen, v.flip(dim), v) for k, v in out.items()}
        return batch.replace(**out)


class RandomRot90(AffineAugmenter):
    """Rotate by a random multiple of 90 degrees, optionally with a transpose.

    With ``transpose=True`` the eight symmetries of the square (the PICASSSO
    augmentations: 90-degree rotations, flips, transposes) are drawn with
    equal probability. Pixel exact. For non-square images a quarter turn
    changes the shape, so the result is centre-cropped/padded back to the
    input shape (padding is zero and masked).

    Parameters
    ----------
    k : int, optional
        Fixed number of quarter turns (counter-clockwise); default: random 0-3.
    transpose : bool, optional
        Also transpose each image with probability 1/2.
    """

    name = "random-rot90"
    description = "Random 90-degree rotations (and transposes): the dihedral group."
    conserves_flux = True

    def __init__(self, *, k=None, transpose=False):
        self.k = k
        self.transpose = transpose

    def _draw(self, b, generator, dev):
        if self.k is None:
            ks = randint(0, 3, b, generator, dev)
        else:
            ks = torch.full((b,), int(self.k) % 4, device=dev, dtype=torch.long)
        tr = (coin(b, generator, dev) if self.transpose
              else torch.zeros(b, dtype=torch.bool, device=dev))
        return ks, tr

    def can_fuse(self, shape):
        """Whether the images are square (a quarter turn of a rectangle is cropped).

        Parameters
        ----------
        shape : tuple of int
            ``(B, C, H, W)``.

        Returns
        -------
        bool
        """
        return shape[-1] == shape[-2]

    def affine(self, shape, generator, device=None):  # noqa: D102 - see AffineAugmenter
        if not self.can_fuse(shape):
            msg = f"RandomRot90.affine: needs square images, got shape {tuple(shape)}"
            raise ValidationError(msg)
        dev = generator.device if device is None else device
        ks, tr = self._draw(shape[0], generator, dev)
        # torch.rot90(k=1, dims=(-2, -1)): out[i, j] = in[j, n-1-i], i.e.
        # (x_in, y_in) = (-y_out, x_out) in normalised coordinates
        quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64, device=dev)
        powers = torch.stack([torch.linalg.matrix_power(quarter, k) for k in range(4)])
        lin = powers[ks.to(dev)]
        swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64, device=dev)
        lin = torch.where(tr.to(dev).view(-1, 1, 1), swap @ lin, lin)  # transpose first
        zeros = torch.zeros(shape[0], 2, 1, dtype=torch.float64, device=dev)
        return torch.cat([lin, zeros], dim=2)

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        b, _, h, w = batch.data.shape
        ks, tr = self._draw(b, generator, batch.device)
        code = ks + 4 * tr.long()
        fields = batch.tensors()
        out = {k: v.clone() for k, v in fields.items()}
        for c in torch.unique(code).tolist():
            idx = torch.nonzero(code == c).flatten()
            for name, value in fields.items():
                part = value[idx]
                if c >= 4:
                    part = part.transpose(-2, -1)
                part = torch.rot90(part, c % 4, dims=(-2, -1))
                out[name][idx] = _fit_shape(part, h, w, _fill_value(part.dtype, name))
        return batch.replace(**out)


class RandomTranslation(AffineAugmenter):
    """Shift each image by a random integer number of pixels along each axis.

    The eCALIFA study's translation (up to +-16 px). Pixel exact: pixels
    shifted in from outside the frame are zero and masked; the flux of a
    source that stays within the frame is conserved exactly.

    Parameters
    ----------
    max_shift : int, optional
        Largest shift in pixels; shifts are uniform integers in
        ``[-max_shift, max_shift]`` per axis and per image.
    """

    name = "random-translation"
    description = "Random integer shift of up to +-max_shift pixels per axis."
    conserves_flux = True

    def __init__(self, *, max_shift=16):
        self.max_shift = max_shift

    def _shifts(self, b, generator, dev):
        m = int(self.max_shift)
        if m < 0:
            msg = f"RandomTranslation.max_shift: expected >= 0, got {self.max_shift!r}"
            raise ValidationError(msg)
        dy = randint(-m, m, b, generator, dev)
        dx = randint(-m, m, b, generator, dev)
        return dy, dx

    def affine(self, shape, generator, device=None):  # noqa: D102 - see AffineAugmenter
        b, _, h, w = shape
        dev = generator.device if device is None else device
        dy, dx = self._shifts(b, generator, dev)
        theta = torch.zeros(b, 2, 3, dtype=torch.float64, device=dev)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -2.0 * dx.to(torch.float64) / w  # input = output - shift
        theta[:, 1, 2] = -2.0 * dy.to(torch.float64) / h
        return theta

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        dy, dx = self._shifts(len(batch), generator, batch.device)
        out = {name: _shift_images(value, dy.tolist(), dx.tolist(),
                                   _fill_value(value.dtype, name))
               for name, value in batch.tensors().items()}
        return batch.replace(**out)


class CropResize(Augmenter):
    """Crop a random box and resize it to the input size (a random zoom).

    Parameters
    ----------
    scale : (float, float), optional
        Range of the crop area as a fraction of the image area.
    ratio : (float, float), optional
        Range of the crop aspect ratio (width / height, relative to the image's).
    mode : {"bilinear", "bicubic", "nearest"}, optional
        Interpolation of the data.
    preserve : {"surface_brightness", "flux"}, optional
        ``"surface_brightness"`` keeps pixel values (the zoomed galaxy is
        bigger and brighter in total); ``"flux"`` multiplies by the
        output-to-input pixel area ratio so that the total flux of the crop is
        kept.
    """

    name = "crop-resize"
    description = "Random crop resized to the input size (a zoom), keeping brightness or flux."
    conserves_flux = False

    def __init__(self, *, scale=(0.5, 1.0), ratio=(0.75, 4.0 / 3.0), mode="bilinear",
                 preserve="surface_brightness"):
        self.scale = scale
        self.ratio = ratio
        self.mode = mode
        self.preserve = preserve

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        if self.preserve not in ("surface_brightness", "flux"):
            msg = ("CropResize.preserve: expected 'surface_brightness' or 'flux', "
                   f"got {self.preserve!r}")
            raise ValidationError(msg)
        s_lo, s_hi = as_range(self.scale, "scale", "CropResize")
        r_lo, r_hi = as_range(self.ratio, "ratio", "CropResize")
        if not 0 < s_lo <= s_hi <= 1 or r_lo <= 0:
            msg = (f"CropResize: expected 0 < scale <= 1 and ratio > 0, "
                   f"got scale={self.scale!r}, ratio={self.ratio!r}")
            raise ValidationError(msg)
        b = len(batch)
        dev = batch.device
        area = uniform(s_lo, s_hi, b, generator, dev, torch.float64)
        logr = uniform(math.log(r_lo), math.log(r_hi), b, generator, dev, torch.float64)
        sx = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
        sy = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
        tx = (1 - sx) * (2 * uniform(0, 1, b, generator, dev, torch.float64) - 1)
        ty = (1 - sy) * (2 * uniform(0, 1, b, generator, dev, torch.float64) - 1)
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, tx], -1),
                             torch.stack([zero, sy, ty], -1)], -2)
        out = affine_warp(batch, theta, self.mode)
        if self.preserve == "flux":
            factor = (sx * sy).to(batch.data.dtype).view(b, 1, 1, 1)
            out = out.replace(data=out.data * factor,
                              uncertainty=None if out.uncertainty is None
                              else out.uncertainty * factor)
        return out
