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
import torch.nn.functional as F

from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError

__all__ = [
    "CropResize",
    "RandomFlip",
    "RandomRot90",
    "RandomRotation",
    "RandomTranslation",
]

_FIELDS = ("data", "mask", "uncertainty", "targets", "target_mask", "star_mask")


# ---------------------------------------------------------------------------
# shared helpers (used by the other augment modules too)
def _as_range(value, name, owner, *, integer=False, minimum=None):
    """Return ``value`` as a ``(low, high)`` pair, validating it."""
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


def _uniform(low, high, n, generator, device, dtype=torch.float32):
    """Draw ``n`` uniform numbers in ``[low, high)`` from ``generator``, moved to ``device``."""
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * u).to(device=device, dtype=dtype)


def _randint(low, high, n, generator, device):
    """Draw ``n`` integers in ``[low, high]`` (inclusive) from ``generator``."""
    out = torch.randint(int(low), int(high) + 1, (n,), generator=generator,
                        device=generator.device)
    return out.to(device)


def _coin(n, generator, device, p=0.5):
    """Draw ``n`` booleans, True with probability ``p``."""
    return (torch.rand(n, generator=generator, device=generator.device) < p).to(device)


def _randn_like(tensor, generator):
    """Draw standard normal noise with the shape, dtype and device of ``tensor``."""
    noise = torch.randn(tensor.shape, generator=generator, device=generator.device,
                        dtype=tensor.dtype)
    return noise.to(tensor.device)


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
    out = torch.full((*t.shape[:-2], height, width), fill, dtype=t.dtype, device=t.device)
    out[..., top:top + h, left:left + w] = t
    return out


def _fill_value(dtype, name):
    """Value of pixels coming from outside the frame: masks bad, stars absent, data zero."""
    if dtype == torch.bool:
        return name != "star_mask"
    return 0


# ---------------------------------------------------------------------------
def _affine_warp(batch, theta, mode):
    """Resample every spatial field of ``batch`` through the affine map ``theta`` (B, 2, 3).

    ``theta`` maps normalised output coordinates to normalised input coordinates
    (`torch.nn.functional.affine_grid` convention, ``align_corners=False``).
    """
    data = batch.data
    grid = F.affine_grid(theta.to(data.dtype), list(data.shape), align_corners=False)
    out = {"data": F.grid_sample(data, grid, mode=mode, padding_mode="zeros",
                                 align_corners=False)}
    # any-bad propagation, with out-of-frame = bad; bicubic reads a 4x4
    # neighbourhood, so dilate the bad pixels by one before a bilinear read.
    bad = batch.mask.to(data.dtype)
    if mode == "bicubic":
        bad = F.max_pool2d(bad, 3, stride=1, padding=1)
    good = F.grid_sample(1.0 - bad, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
    out["mask"] = good < 1.0 - 1e-4
    if batch.uncertainty is not None:
        var = F.grid_sample(batch.uncertainty.square(), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        out["uncertainty"] = var.clamp_min(0).sqrt()
    if batch.star_mask is not None:
        stars = F.grid_sample(batch.star_mask.to(data.dtype), grid, mode="nearest",
                              padding_mode="zeros", align_corners=False)
        out["star_mask"] = stars > 0.5
    if batch.targets is not None:
        tgt = batch.targets.to(data.dtype)
        out["targets"] = F.grid_sample(tgt, grid, mode="bilinear", padding_mode="zeros",
                                       align_corners=False).to(batch.targets.dtype)
        tbad = (torch.zeros_like(tgt) if batch.target_mask is None
                else batch.target_mask.to(data.dtype))
        tgood = F.grid_sample(1.0 - tbad, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
        out["target_mask"] = tgood < 1.0 - 1e-4
    out["data"] = torch.where(out["mask"], torch.zeros((), dtype=data.dtype, device=data.device),
                              out["data"])
    return batch.replace(**out)


def _pixel_affine(matrix, height, width):
    """Turn a (B, 2, 2) matrix acting on pixel offsets into an affine_grid ``theta``."""
    # normalised coordinate n = p / (size / 2) about the image centre
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=matrix.dtype, device=matrix.device)
    lin = matrix * scale.view(1, 1, 2) / scale.view(1, 2, 1)
    zeros = torch.zeros(matrix.shape[0], 2, 1, dtype=matrix.dtype, device=matrix.device)
    return torch.cat([lin, zeros], dim=2)


class RandomRotation(Augmenter):
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

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        if self.mode not in ("bicubic", "bilinear", "nearest"):
            msg = ("RandomRotation.mode: expected 'bicubic', 'bilinear' or 'nearest', "
                   f"got {self.mode!r}")
            raise ValidationError(msg)
        low, high = _as_range(self.angle, "angle", "RandomRotation")
        b, _, h, w = batch.data.shape
        dev = batch.device
        phi = torch.deg2rad(_uniform(low, high, b, generator, dev, torch.float64))
        cos, sin = torch.cos(phi), torch.sin(phi)
        # affine_grid maps output -> input: use the inverse rotation
        rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
        if self.flip:
            flip_x = _coin(b, generator, dev)
            sign = torch.ones(b, 2, dtype=rot.dtype, device=dev)
            sign[:, 0] = torch.where(flip_x, -1.0, 1.0)
            sign[:, 1] = torch.where(flip_x, 1.0, -1.0)
            rot = rot * sign.view(b, 1, 2)
        theta = _pixel_affine(rot, h, w)
        return _affine_warp(batch, theta, self.mode)


class RandomFlip(Augmenter):
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

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        b = len(batch)
        out = {name: getattr(batch, name) for name in _FIELDS if getattr(batch, name) is not None}
        for allowed, dim in ((self.horizontal, -1), (self.vertical, -2)):
            if not allowed:
                continue
            chosen = _coin(b, generator, batch.device)
            out = {k: _select(chosen, v.flip(dim), v) for k, v in out.items()}
        return batch.replace(**out)


class RandomRot90(Augmenter):
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

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        b, _, h, w = batch.data.shape
        dev = batch.device
        if self.k is None:
            ks = _randint(0, 3, b, generator, dev)
        else:
            ks = torch.full((b,), int(self.k) % 4, device=dev, dtype=torch.long)
        tr = (_coin(b, generator, dev) if self.transpose
              else torch.zeros(b, dtype=torch.bool, device=dev))
        code = ks + 4 * tr.long()
        fields = {name: getattr(batch, name) for name in _FIELDS
                  if getattr(batch, name) is not None}
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


class RandomTranslation(Augmenter):
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

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        m = int(self.max_shift)
        if m < 0:
            msg = f"RandomTranslation.max_shift: expected >= 0, got {self.max_shift!r}"
            raise ValidationError(msg)
        b, _, h, w = batch.data.shape
        dev = batch.device
        dy = _randint(-m, m, b, generator, dev)
        dx = _randint(-m, m, b, generator, dev)
        rows = torch.arange(h, device=dev).view(1, h) + m - dy.view(b, 1)  # (B, H)
        cols = torch.arange(w, device=dev).view(1, w) + m - dx.view(b, 1)  # (B, W)
        bidx = torch.arange(b, device=dev).view(b, 1, 1)
        out = {}
        for name in _FIELDS:
            value = getattr(batch, name)
            if value is None:
                continue
            if value.dtype == torch.bool:
                fill = name != "star_mask"  # outside the frame: bad, but not a star
                padded = F.pad(value.to(torch.uint8), (m, m, m, m), value=int(fill)).bool()
            else:
                padded = F.pad(value, (m, m, m, m), value=0.0)
            # advanced indices separated by a slice go first: (B, H, W, C)
            moved = padded[bidx, :, rows[:, :, None], cols[:, None, :]]
            out[name] = moved.permute(0, 3, 1, 2).contiguous()
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
        s_lo, s_hi = _as_range(self.scale, "scale", "CropResize")
        r_lo, r_hi = _as_range(self.ratio, "ratio", "CropResize")
        if not 0 < s_lo <= s_hi <= 1 or r_lo <= 0:
            msg = (f"CropResize: expected 0 < scale <= 1 and ratio > 0, "
                   f"got scale={self.scale!r}, ratio={self.ratio!r}")
            raise ValidationError(msg)
        b = len(batch)
        dev = batch.device
        area = _uniform(s_lo, s_hi, b, generator, dev, torch.float64)
        logr = _uniform(math.log(r_lo), math.log(r_hi), b, generator, dev, torch.float64)
        sx = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
        sy = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
        tx = (1 - sx) * (2 * _uniform(0, 1, b, generator, dev, torch.float64) - 1)
        ty = (1 - sy) * (2 * _uniform(0, 1, b, generator, dev, torch.float64) - 1)
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, tx], -1),
                             torch.stack([zero, sy, ty], -1)], -2)
        out = _affine_warp(batch, theta, self.mode)
        if self.preserve == "flux":
            factor = (sx * sy).to(batch.data.dtype).view(b, 1, 1, 1)
            out = out.replace(data=out.data * factor,
                              uncertainty=None if out.uncertainty is None
                              else out.uncertainty * factor)
        return out
