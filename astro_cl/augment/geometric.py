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

import functools
import math

import torch
import torch.nn.functional as F

from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError
from astro_cl.utils.tensors import fill_pixels

__all__ = [
    "AffineAugmenter",
    "CropResize",
    "RandomFlip",
    "RandomRot90",
    "RandomRotation",
    "RandomTranslation",
]

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


#: Elements per independently seeded block of large normal draws (see `_randn_like`).
_NORMAL_BLOCK = 1 << 19  # small enough to balance the blocks over the threads

@functools.cache
def _normal_threads():
    """Return the process's thread pool for filling noise blocks (torch drops the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()),
                              thread_name_prefix="astro_cl-noise")


def _randn_like(tensor, generator, memory_format=torch.preserve_format, std=None):
    """Draw normal noise with the shape, dtype and device of ``tensor``.

    One CPU generator fills memory on one core only; large CPU draws (more
    than two blocks of `_NORMAL_BLOCK` elements) are therefore cut into
    fixed-size blocks, each filled from its own generator seeded from
    ``generator``, on a thread pool. The blocks do not depend on the number of
    threads, so the same seed gives the same noise on every machine.

    ``std`` (a (B,) tensor) gives each image its own standard deviation,
    applied while drawing (no extra pass over the noise); default 1.
    """
    on_cpu = generator.device.type == "cpu" and tensor.device.type == "cpu"
    if not on_cpu or tensor.numel() <= 2 * _NORMAL_BLOCK:
        noise = torch.randn(tensor.shape, generator=generator, device=generator.device,
                            dtype=tensor.dtype)
        noise = noise.to(tensor.device).contiguous(memory_format=memory_format)
        if std is not None:
            noise.mul_(std.to(noise).view(-1, *([1] * (noise.ndim - 1))))
        return noise
    noise = torch.empty_like(tensor, memory_format=memory_format)
    if noise.is_contiguous():
        flat = noise.view(-1)
    else:  # channels-last: the memory is (B, H, W, C)
        flat = noise.permute(0, 2, 3, 1).reshape(-1)
    n_blocks = -(-flat.numel() // _NORMAL_BLOCK)
    seeds = torch.randint(0, 2**62, (n_blocks,), generator=generator).tolist()
    per_image = noise[0].numel()
    stds = None if std is None else std.double().cpu().tolist()

    def fill(i):
        lo, hi = i * _NORMAL_BLOCK, min((i + 1) * _NORMAL_BLOCK, flat.numel())
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
                      memory_format=_memory_format(t)).fill_(fill)
    out[..., top:top + h, left:left + w] = t
    return out


def _memory_format(t):
    """``torch.channels_last`` for a channels-last 4-D tensor, else the contiguous format."""
    if t.ndim == 4 and not t.is_contiguous() \
            and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


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


# ---------------------------------------------------------------------------
# affine resampling
#
# An affine step is described by ``theta`` (B, 2, 3), the
# `torch.nn.functional.affine_grid` convention (``align_corners=False``): it
# maps normalised *output* coordinates to normalised *input* coordinates.
# Consecutive steps compose by multiplying their 3x3 homogeneous matrices,
# first step on the left, so a chain of rotations, flips and translations is
# resampled once.

#: Interpolation order of each resampling mode ("exact" = pixel permutation).
_ORDER = {"exact": 0, "nearest": 1, "bilinear": 2, "bicubic": 3}

#: Keys (1981) cubic-convolution parameter used by ``grid_sample(mode="bicubic")``.
_CUBIC_A = -0.75

#: Tolerance, in pixels, of the in-frame test of a sampling position.
_FRAME_TOL = 1e-3

#: Index/weight elements per chunk of the embedding-bag resampler (memory bound).
_CHUNK_ELEMENTS = 1 << 22


def _homogeneous(theta):
    """(B, 2, 3) -> (B, 3, 3) homogeneous matrices."""
    last = torch.zeros(theta.shape[0], 1, 3, dtype=theta.dtype, device=theta.device)
    last[:, 0, 2] = 1.0
    return torch.cat([theta, last], dim=1)


def _to_pixels(matrix, height, width):
    """Turn normalised (B, 3, 3) output->input maps into maps between pixel coordinates.

    Pixel ``(x, y)`` has its centre at normalised ``((2x + 1) / W - 1, (2y + 1) / H - 1)``.
    """
    s = torch.tensor([[2.0 / width, 0.0, 1.0 / width - 1.0],
                      [0.0, 2.0 / height, 1.0 / height - 1.0],
                      [0.0, 0.0, 1.0]], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.inv(s) @ matrix @ s


def _pixel_grid(pix, height, width):
    """Input pixel coordinates (B, H, W) x and y of every output pixel under ``pix`` (B, 3, 3)."""
    dev, dt = pix.device, pix.dtype
    xs = torch.arange(width, device=dev, dtype=dt).view(1, 1, width)
    ys = torch.arange(height, device=dev, dtype=dt).view(1, height, 1)
    m = pix[:, :2, :, None, None]  # (B, 2, 3, 1, 1)
    gx = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    gy = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    return gx, gy


def _outside(gx, gy, height, width):
    """Flag the sampling positions that lie outside the pixel-centre frame."""
    return ((gx < -_FRAME_TOL) | (gx > width - 1 + _FRAME_TOL)
            | (gy < -_FRAME_TOL) | (gy > height - 1 + _FRAME_TOL))


def _normalised_grid(gx, gy, height, width, dtype):
    """Pixel coordinates -> `grid_sample` grid (B, H, W, 2)."""
    return torch.stack([(2 * gx + 1) / width - 1, (2 * gy + 1) / height - 1], dim=-1).to(dtype)


def _tap_coefficients(mode, dtype, device):
    """Coefficients (tap, power of t) of the 1-D interpolation weights at offset ``t``.

    Tap ``i``'s weight is ``sum_p coefficients[i, p] * t**p``: linear for
    "bilinear" (``1 - t``, ``t``), Keys' cubic for "bicubic".
    """
    if mode == "bilinear":
        return torch.tensor([[1.0, -1.0], [0.0, 1.0]], dtype=dtype, device=device)
    return _cubic_coefficients(dtype, device)


def _tap_weights_2d(tx, ty, mode, scale=None):
    """2-D interpolation weights (N, taps y * taps x) at fractional offsets ``tx``, ``ty`` (N,).

    The weight of tap ``(i, j)`` is ``wy_i * wx_j``, a polynomial in ``tx``
    and ``ty``: the products of their powers are formed along the long pixel
    axis (fast passes), and one matrix product with the Kronecker product of
    the 1-D coefficients turns them into the weights, already pixel-major
    (multiplying pixel-major (N, 4) factors instead would run along axes of
    length 4). ``scale`` (N,) multiplies every weight of a pixel.
    """
    coefficients = _tap_coefficients(mode, tx.dtype, tx.device)
    n_pow = coefficients.shape[1]
    px = torch.stack([tx ** p if p > 1 else (tx if p else torch.ones_like(tx))
                      for p in range(n_pow)])
    py = torch.stack([ty ** p if p > 1 else (ty if p else torch.ones_like(ty))
                      for p in range(n_pow)])
    if scale is not None:
        py = py * scale
    monomials = (py.unsqueeze(1) * px.unsqueeze(0)).view(n_pow * n_pow, -1)
    return monomials.t() @ torch.kron(coefficients, coefficients).t()


def _cubic_coefficients(dtype, device):
    """Coefficients (tap, power of t) of the four Keys cubic-convolution weights."""
    a = _CUBIC_A
    return torch.tensor([[0.0, a, -2 * a, a],
                         [1.0, 0.0, -(a + 3), a + 2],
                         [0.0, -a, 2 * a + 3, -(a + 2)],
                         [0.0, 0.0, a, -a]], dtype=dtype, device=device)


def _zero_padded(x, pad):
    """``x`` (B, C, H, W) framed by ``pad`` zeros on every side, channels-last.

    Only the frame is zeroed: filling the whole buffer before copying the
    image in would write every pixel twice.
    """
    b, c, h, w = x.shape
    out = torch.empty((b, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, :pad].zero_()
    out[:, :, h + pad:].zero_()
    out[:, :, pad:h + pad, :pad].zero_()
    out[:, :, pad:h + pad, w + pad:].zero_()
    out[:, :, pad:h + pad, pad:w + pad].copy_(x)
    return out


def _resample_channels_last(x, gx, gy, mode, skip=None):
    """Bilinear or bicubic resampling of ``x`` (B, C, H, W) at pixel positions (B, H, W).

    Equivalent to ``grid_sample(..., padding_mode="zeros", align_corners=False)``
    (same Keys cubic kernel), but computed channels-last: every output pixel
    is a weighted sum of 4 or 16 input pixels, each a contiguous vector of the
    C channels, which `torch.nn.functional.embedding_bag` evaluates without
    gathers across channel planes. The interpolation indices and weights are
    computed once per pixel for all channels. The input is padded with zeros
    as wide as the kernel, so taps beyond the frame read zeros and every
    pixel's taps are one base index plus fixed offsets; output pixels whose
    taps all fall outside the frame, and those flagged in ``skip``
    (B, 1, H, W), get zero weights and come out as exactly zero. The result
    is a ``torch.channels_last`` tensor.
    """
    b, c, h, w = x.shape
    n_tap = 2 if mode == "bilinear" else 4
    first = 0 if mode == "bilinear" else -1  # offset of the first tap from floor()
    pad = n_tap
    hp, wp = h + 2 * pad, w + 2 * pad
    padded = _zero_padded(x, pad)
    table = padded.permute(0, 2, 3, 1).reshape(b * hp * wp, c)  # a view
    dev = x.device
    itype = torch.int32 if b * hp * wp < 2**31 else torch.int64
    # offsets of the taps from the first one, row-major over (tap y, tap x)
    taps = torch.arange(n_tap, device=dev, dtype=itype)
    offsets = (taps.view(-1, 1) * wp + taps).view(1, -1)
    # floor() of positions whose taps can touch the frame; beyond, all taps read zeros
    lo_f = -first - n_tap + 1
    hi_x, hi_y = w - 1 - first, h - 1 - first
    chunk = max(1, _CHUNK_ELEMENTS // (h * w * n_tap * n_tap))
    chunk = -(-b // -(-b // chunk))  # balanced chunks
    pieces = []
    for lo in range(0, b, chunk):
        hi = min(b, lo + chunk)
        px, py = gx[lo:hi].reshape(-1), gy[lo:hi].reshape(-1)
        fx = torch.nan_to_num(torch.floor(px), nan=float(lo_f - 1))
        fy = torch.nan_to_num(torch.floor(py), nan=float(lo_f - 1))
        inside = (fx >= lo_f) & (fx <= hi_x) & (fy >= lo_f) & (fy <= hi_y)
        if skip is not None:
            inside &= ~skip[lo:hi].reshape(-1)
        # (pixel, tap y * n_tap + tap x), zero for the pixels left out
        weight = _tap_weights_2d((px - fx).to(x.dtype), (py - fy).to(x.dtype), mode,
                                 scale=inside.to(x.dtype))
        image = torch.arange(lo, hi, device=dev, dtype=itype).repeat_interleave(h * w)
        row = fy.clamp(lo_f, hi_y).to(itype) + (first + pad)
        col = fx.clamp(lo_f, hi_x).to(itype) + (first + pad)
        base = (image * hp + row) * wp + col
        index = base.view(-1, 1) + offsets
        pieces.append(F.embedding_bag(index, table, mode="sum", per_sample_weights=weight))
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


def _resample(x, gx, gy, mode):
    """Resample ``x`` (B, C, H, W) at pixel positions ``gx``, ``gy`` (B, H, W), zero outside."""
    h, w = x.shape[-2:]
    if mode in ("bilinear", "bicubic") and x.shape[1] >= 4:
        return _resample_channels_last(x, gx, gy, mode)
    grid = _normalised_grid(gx, gy, h, w, x.dtype)
    return F.grid_sample(x, grid, mode="nearest" if mode == "exact" else mode,
                         padding_mode="zeros", align_corners=False)


def _any_bad(bad, gx, gy, mode):
    """Any-bad propagation of a boolean mask; out-of-frame samples are bad."""
    h, w = bad.shape[-2:]
    grid = _normalised_grid(gx, gy, h, w, torch.float32)
    good = (~bad).to(torch.float32)
    if mode in ("exact", "nearest"):
        return F.grid_sample(good, grid, mode="nearest", padding_mode="zeros",
                             align_corners=False) < 0.5
    if mode == "bicubic" and bool(bad.any()):
        # bicubic reads a 4x4 neighbourhood: dilate the bad pixels by one
        # before the bilinear (2x2) read below.
        good = 1.0 - F.max_pool2d(1.0 - good, 3, stride=1, padding=1)
    return F.grid_sample(good, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False) < 1.0 - 1e-4


def _affine_warp(batch, thetas, mode):
    """Resample every spatial field of ``batch`` through a chain of affine maps.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
    thetas : (B, 2, 3) tensor or sequence of them
        Output->input maps of the steps, in the order they are applied; the
        chain is composed and resampled once.
    mode : {"exact", "nearest", "bilinear", "bicubic"}
        Interpolation of the data ("exact" for pixel permutations).

    Notes
    -----
    An output pixel is bad if its any-bad footprint in the input touches a
    bad pixel or leaves the input frame, or if it maps outside the frame at
    any intermediate step of the chain: the fused chain reproduces the masks
    of the steps applied one after the other.
    """
    if isinstance(thetas, torch.Tensor):
        thetas = [thetas]
    data = batch.data
    h, w = data.shape[-2:]
    mats = [_homogeneous(t.to(device=data.device, dtype=torch.float64)) for t in thetas]
    total = mats[0]
    for m in mats[1:]:
        total = total @ m
    gx, gy = _pixel_grid(_to_pixels(total, h, w), h, w)
    # intermediate frames: the input of step k sees the output through steps k..n
    lost, suffix = None, None
    for m in reversed(mats[1:]):
        suffix = m if suffix is None else m @ suffix
        ix, iy = _pixel_grid(_to_pixels(suffix, h, w), h, w)
        out_k = _outside(ix, iy, h, w).unsqueeze(1)
        lost = out_k if lost is None else lost | out_k
    mask = _any_bad(batch.mask, gx, gy, mode)
    if lost is not None:
        mask = mask | lost
    if mode in ("bilinear", "bicubic") and data.shape[1] >= 4 and mask.shape[1] == 1:
        # masked output pixels get zero interpolation weights: zero without another pass
        resampled = _resample_channels_last(data, gx, gy, mode, skip=mask)
    else:
        resampled = fill_pixels(_resample(data, gx, gy, mode), mask, inplace=True)
    out = {"data": resampled, "mask": mask}
    if batch.uncertainty is not None and mode in ("exact", "nearest"):
        out["uncertainty"] = _resample(batch.uncertainty, gx, gy, "exact")
    elif batch.uncertainty is not None:
        var = _resample(batch.uncertainty.square(), gx, gy, "bilinear")
        out["uncertainty"] = var.clamp_min_(0).sqrt_()
    if batch.star_mask is not None:
        grid = _normalised_grid(gx, gy, h, w, torch.float32)
        stars = F.grid_sample(batch.star_mask.to(torch.float32), grid, mode="nearest",
                              padding_mode="zeros", align_corners=False)
        out["star_mask"] = stars > 0.5
    if batch.targets is not None:
        tmode = "exact" if mode in ("exact", "nearest") else "bilinear"
        tgt = batch.targets
        out["targets"] = _resample(tgt.to(data.dtype), gx, gy, tmode).to(tgt.dtype)
        tbad = (torch.zeros(tgt.shape, dtype=torch.bool, device=tgt.device)
                if batch.target_mask is None else batch.target_mask)
        tmask = _any_bad(tbad, gx, gy, tmode)
        out["target_mask"] = tmask if lost is None else tmask | lost
    return batch.replace(**out)


def _pixel_affine(matrix, height, width):
    """Turn a (B, 2, 2) matrix acting on pixel offsets into an affine_grid ``theta``."""
    # normalised coordinate n = p / (size / 2) about the image centre
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=matrix.dtype, device=matrix.device)
    lin = matrix * scale.view(1, 1, 2) / scale.view(1, 2, 1)
    zeros = torch.zeros(matrix.shape[0], 2, 1, dtype=matrix.dtype, device=matrix.device)
    return torch.cat([lin, zeros], dim=2)


class AffineAugmenter(Augmenter):
    """Base class of augmenters that are affine maps of the pixel grid.

    Subclasses implement `affine`, which draws the random parameters of a
    batch and returns the per-image affine maps, and set `interpolation`.
    `~astro_cl.augment.base.Compose` fuses consecutive affine steps of
    probability 1 into a single resampling (composing the maps, with the
    random numbers drawn in the same order as step by step).
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

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        theta = self.affine(tuple(batch.data.shape), generator, batch.device)
        return _affine_warp(batch, theta, self.interpolation)


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
        low, high = _as_range(self.angle, "angle", "RandomRotation")
        b, _, h, w = shape
        dev = generator.device if device is None else device
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
        return _pixel_affine(rot, h, w)


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
        return [_coin(b, generator, device) if allowed else None
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
            ks = _randint(0, 3, b, generator, dev)
        else:
            ks = torch.full((b,), int(self.k) % 4, device=dev, dtype=torch.long)
        tr = (_coin(b, generator, dev) if self.transpose
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
        dy = _randint(-m, m, b, generator, dev)
        dx = _randint(-m, m, b, generator, dev)
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
