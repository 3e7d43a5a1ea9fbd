"""The warp engine of the geometric augmenters: affine resampling of whole batches.

Private to `astro_cl.augment`. `affine_warp` resamples every spatial field of
a `~astro_cl.data.batch.TensorBatch` (data, mask, uncertainty, star mask,
targets) through a chain of affine maps, composed and interpolated once;
`~astro_cl.augment.geometric.AffineAugmenter` steps and their fusion in
`~astro_cl.augment.compose.Compose` use it.
"""

import torch
import torch.nn.functional as F

from astro_cl.utils.tensors import fill_pixels

__all__ = ["ORDER", "affine_warp", "memory_format", "pixel_affine"]


def memory_format(t):
    """Return the memory format to allocate a tensor like ``t`` with.

    Parameters
    ----------
    t : `torch.Tensor`

    Returns
    -------
    format : `torch.memory_format`
        ``torch.channels_last`` for a channels-last 4-D tensor, else
        ``torch.contiguous_format``.
    """
    if t.ndim == 4 and not t.is_contiguous() \
            and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


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
ORDER = {"exact": 0, "nearest": 1, "bilinear": 2, "bicubic": 3}

#: Keys (1981) cubic-convolution parameter used by ``grid_sample(mode="bicubic")``.
_CUBIC_A = -0.75

#: Tolerance, in pixels, of the in-frame test of a sampling position.
_FRAME_TOL = 1e-3

#: Index/weight elements per chunk of the embedding-bag resampler (memory bound).
_CHUNK_ELEMENTS = 1 << 22

#: Largest fraction of unmasked (unskipped) output pixels at which the resamplers
#: work out those pixels only (`_resample_unmasked`, `_resample_channels_last`):
#: below it, gathering them costs less than it saves.
_SPARSE_FRACTION = 0.5

#: Images whose unmasked-pixel counts lie within this ratio of the largest share one
#: packed `grid_sample` call (padded to the largest count).
_BUCKET_RATIO = 0.75


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


def _outside_under(pix, height, width):
    """`_outside` of the pixel grid of ``pix`` (B, 3, 3), as a (B, 1, H, W) mask.

    Maps without rotation or shear (translations, flips: the usual steps
    after a rotation) are tested along each axis, (B, 1, W) and (B, H, 1),
    and the two tests broadcast: the same flags without a full grid.
    """
    if bool((pix[:, 0, 1] == 0).all()) and bool((pix[:, 1, 0] == 0).all()):
        dev, dt = pix.device, pix.dtype
        xs = torch.arange(width, device=dev, dtype=dt).view(1, 1, width)
        ys = torch.arange(height, device=dev, dtype=dt).view(1, height, 1)
        gx = pix[:, 0, 0, None, None] * xs + pix[:, 0, 2, None, None]
        gy = pix[:, 1, 1, None, None] * ys + pix[:, 1, 2, None, None]
        off_x = (gx < -_FRAME_TOL) | (gx > width - 1 + _FRAME_TOL)
        off_y = (gy < -_FRAME_TOL) | (gy > height - 1 + _FRAME_TOL)
        return (off_x | off_y).unsqueeze(1)
    ix, iy = _pixel_grid(pix, height, width)
    return _outside(ix, iy, height, width).unsqueeze(1)


def _normalised_grid(gx, gy, height, width, dtype):
    """Pixel coordinates -> `grid_sample` grid (B, H, W, 2).

    ``(2 * g + 1) / size - 1`` computed in the precision of ``gx`` and
    written straight into the grid of ``dtype`` (no stacked intermediate).
    """
    grid = torch.empty((*gx.shape, 2), dtype=dtype, device=gx.device)
    for axis, (g, size) in enumerate(((gx, width), (gy, height))):
        # 2 * g is exact, so 1 + 2 * g in one pass rounds as (2 * g) + 1 does
        grid[..., axis] = torch.add(1.0, g, alpha=2.0).div_(size).sub_(1.0)
    return grid


class _Grids:
    """The `grid_sample` grids of one set of sampling positions, built once per dtype."""

    def __init__(self, gx, gy, height, width):
        self.gx, self.gy, self.height, self.width = gx, gy, height, width
        self._grids = {}

    def __call__(self, dtype):
        if dtype not in self._grids:
            self._grids[dtype] = _normalised_grid(self.gx, self.gy, self.height, self.width,
                                                  dtype)
        return self._grids[dtype]


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
    (B, 1, H, W), get zero weights and come out as exactly zero; on the CPU,
    when most pixels are skipped, the others alone are worked out. The
    result is a ``torch.channels_last`` tensor.
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

    def bags(px, py, image, left_out=None):
        """Resampled rows (N, C) at positions ``px``, ``py`` (N,) of images ``image``."""
        fx = torch.nan_to_num(torch.floor(px), nan=float(lo_f - 1))
        fy = torch.nan_to_num(torch.floor(py), nan=float(lo_f - 1))
        inside = (fx >= lo_f) & (fx <= hi_x) & (fy >= lo_f) & (fy <= hi_y)
        if left_out is not None:
            inside &= ~left_out
        # (pixel, tap y * n_tap + tap x), zero for the pixels left out
        weight = _tap_weights_2d((px - fx).to(x.dtype), (py - fy).to(x.dtype), mode,
                                 scale=inside.to(x.dtype))
        row = fy.clamp(lo_f, hi_y).to(itype) + (first + pad)
        col = fx.clamp(lo_f, hi_x).to(itype) + (first + pad)
        base = (image * hp + row) * wp + col
        index = base.view(-1, 1) + offsets
        return F.embedding_bag(index, table, mode="sum", per_sample_weights=weight)

    kept = None
    if skip is not None and dev.type == "cpu":
        flags = ~skip.reshape(-1)
        if int(flags.sum()) <= _SPARSE_FRACTION * flags.numel():
            kept = flags.nonzero().view(-1)
    if kept is not None:
        # mostly skipped (a rebinned image): work out the kept pixels only
        out = torch.zeros((b * h * w, c), dtype=x.dtype, device=dev)
        step = max(1, _CHUNK_ELEMENTS // (n_tap * n_tap))
        for lo in range(0, len(kept), step):
            pixels = kept[lo:lo + step]
            image = torch.div(pixels, h * w, rounding_mode="floor").to(itype)
            out.index_copy_(0, pixels, bags(gx.reshape(-1).index_select(0, pixels),
                                             gy.reshape(-1).index_select(0, pixels), image))
        return out.view(b, h, w, c).permute(0, 3, 1, 2)
    chunk = max(1, _CHUNK_ELEMENTS // (h * w * n_tap * n_tap))
    chunk = -(-b // -(-b // chunk))  # balanced chunks
    pieces = []
    for lo in range(0, b, chunk):
        hi = min(b, lo + chunk)
        image = torch.arange(lo, hi, device=dev, dtype=itype).repeat_interleave(h * w)
        pieces.append(bags(gx[lo:hi].reshape(-1), gy[lo:hi].reshape(-1), image,
                           None if skip is None else skip[lo:hi].reshape(-1)))
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


def _resample(x, gx, gy, mode, grids=None):
    """Resample ``x`` (B, C, H, W) at pixel positions ``gx``, ``gy`` (B, H, W), zero outside.

    ``grids`` (`_Grids` of the same positions) shares the `grid_sample` grid
    between fields.
    """
    h, w = x.shape[-2:]
    if mode in ("bilinear", "bicubic") and x.shape[1] >= 4:
        return _resample_channels_last(x, gx, gy, mode)
    grid = (grids or _Grids(gx, gy, h, w))(x.dtype)
    return F.grid_sample(x, grid, mode="nearest" if mode == "exact" else mode,
                         padding_mode="zeros", align_corners=False)


def _resample_unmasked(x, grid, mask, mode):
    """``grid_sample(x, grid)`` (zeros padding) with the pixels flagged in ``mask`` zero.

    ``x`` (B, C, H, W), ``grid`` (B, H, W, 2), ``mask`` (B, 1, H, W). On the
    CPU, images whose output is mostly masked (after a rebinning most of the
    frame is) are sampled at their unmasked pixels only: the grid positions
    of those pixels are packed into short grids (images of similar counts
    share one call, padded to the longest) and the samples are put back by
    flat index. Each sample is what `grid_sample` gives at that position, so
    the result equals sampling every pixel and zeroing the masked ones.
    """
    b, c, h, w = x.shape
    hw = h * w
    dev = x.device

    def sample(images, positions):
        return F.grid_sample(images, positions, mode="nearest" if mode == "exact" else mode,
                             padding_mode="zeros", align_corners=False)

    good = ~mask.reshape(b, hw)
    counts = good.sum(1)
    n_good = counts.tolist() if dev.type == "cpu" else []
    sparse = [i for i, n in enumerate(n_good) if n <= _SPARSE_FRACTION * hw]
    if not sparse:
        return fill_pixels(sample(x, grid), mask, inplace=True)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    if len(sparse) < b:
        dense = torch.tensor(sorted(set(range(b)) - set(sparse)), device=dev)
        part = sample(x.index_select(0, dense), grid.index_select(0, dense))
        out.index_copy_(0, dense, fill_pixels(part, mask.index_select(0, dense), inplace=True))
    rows = torch.tensor(sparse, device=dev)
    out.index_fill_(0, rows, 0)
    # buckets of images of similar counts, largest first; image k's packed
    # positions start at offset[k] (in the packed grid), length[k] per image
    order = sorted(range(len(sparse)), key=lambda k: -n_good[sparse[k]])
    offset, length, buckets, total, i = [0] * len(sparse), [0] * len(sparse), [], 0, 0
    while i < len(order) and n_good[sparse[order[i]]] > 0:
        longest = n_good[sparse[order[i]]]
        j = i + 1
        while j < len(order) and n_good[sparse[order[j]]] >= _BUCKET_RATIO * longest:
            j += 1
        for r, k in enumerate(order[i:j]):
            offset[k], length[k] = total + r * longest, longest
        buckets.append(([sparse[k] for k in order[i:j]], longest, total))
        total += (j - i) * longest
        i = j
    if not buckets:  # every pixel of these images is masked
        return out
    # the unmasked pixels of the sparse images, image by image
    where = good.index_select(0, rows).view(-1).nonzero().view(-1)
    local = torch.div(where, hw, rounding_mode="floor")
    pixel = where - local * hw
    sparse_counts = counts.index_select(0, rows)
    slot = (torch.arange(len(where), device=dev)
            - (torch.cumsum(sparse_counts, 0) - sparse_counts).index_select(0, local))
    offsets = torch.tensor(offset, device=dev).index_select(0, local)
    packed = torch.zeros((total, 2), dtype=grid.dtype, device=dev)
    image = rows.index_select(0, local)
    positions = grid.reshape(b * hw, 2).index_select(0, image * hw + pixel)
    packed.index_copy_(0, offsets + slot, positions)
    samples = torch.cat([
        sample(x.index_select(0, torch.tensor(members, device=dev)),
               packed[start:start + len(members) * longest].view(len(members), 1, longest, 2))
        .reshape(-1)
        for members, longest, start in buckets])
    # sample (channel ch, slot) of sparse image k sits at c * offset[k] + ch * length[k] + slot
    src = offsets * c + slot
    step = torch.tensor(length, device=dev).index_select(0, local)
    dst = image * (c * hw) + pixel
    flat = out.view(-1)
    for ch in range(c):
        if ch:
            src += step
            dst += hw
        flat.index_copy_(0, dst, samples.index_select(0, src))
    return out


def _dilated(bad):
    """``bad`` (B, 1, H, W) grown by one pixel in the 8 directions (a 3 x 3 box)."""
    rows = bad.clone()
    rows[..., 1:, :] |= bad[..., :-1, :]
    rows[..., :-1, :] |= bad[..., 1:, :]
    out = rows.clone()
    out[..., 1:] |= rows[..., :-1]
    out[..., :-1] |= rows[..., 1:]
    return out


def _any_bad(bad, gx, gy, mode, grids=None):
    """Any-bad propagation of a boolean mask; out-of-frame samples are bad."""
    h, w = bad.shape[-2:]
    grid = (grids or _Grids(gx, gy, h, w))(torch.float32)
    if mode in ("exact", "nearest"):
        good = (~bad).to(torch.float32)
        return F.grid_sample(good, grid, mode="nearest", padding_mode="zeros",
                             align_corners=False) < 0.5
    if mode == "bicubic" and bool(bad.any()):
        # bicubic reads a 4x4 neighbourhood: dilate the bad pixels by one
        # before the bilinear (2x2) read below.
        bad = _dilated(bad)
    good = (~bad).to(torch.float32)
    return F.grid_sample(good, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False) < 1.0 - 1e-4


def affine_warp(batch, thetas, mode):
    """Resample every spatial field of ``batch`` through a chain of affine maps.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
    thetas : (B, 2, 3) tensor or sequence of them
        Output->input maps of the steps, in the order they are applied; the
        chain is composed and resampled once.
    mode : {"exact", "nearest", "bilinear", "bicubic"}
        Interpolation of the data ("exact" for pixel permutations).

    Returns
    -------
    batch : `~astro_cl.data.batch.TensorBatch`
        New tensors of the input's shape: data, mask (any-bad propagation),
        uncertainty (resampled as a variance), star mask (nearest), targets
        and their mask.

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
    grids = _Grids(gx, gy, h, w)  # each grid_sample grid is built once for all fields
    # intermediate frames: the input of step k sees the output through steps k..n
    lost, suffix = None, None
    for m in reversed(mats[1:]):
        suffix = m if suffix is None else m @ suffix
        out_k = _outside_under(_to_pixels(suffix, h, w), h, w)
        lost = out_k if lost is None else lost | out_k
    mask = _any_bad(batch.mask, gx, gy, mode, grids)
    if lost is not None:
        mask = mask | lost
    if mode in ("bilinear", "bicubic") and data.shape[1] >= 4 and mask.shape[1] == 1:
        # masked output pixels get zero interpolation weights: zero without another pass
        resampled = _resample_channels_last(data, gx, gy, mode, skip=mask)
    elif mask.shape == (data.shape[0], 1, h, w):
        # masked output pixels are not sampled at all (most of a rebinned image)
        resampled = _resample_unmasked(data, grids(data.dtype), mask, mode)
    else:
        resampled = fill_pixels(_resample(data, gx, gy, mode, grids), mask, inplace=True)
    out = {"data": resampled, "mask": mask}
    if batch.uncertainty is not None and mode in ("exact", "nearest"):
        out["uncertainty"] = _resample(batch.uncertainty, gx, gy, "exact", grids)
    elif batch.uncertainty is not None:
        var = _resample(batch.uncertainty.square(), gx, gy, "bilinear", grids)
        out["uncertainty"] = var.clamp_min_(0).sqrt_()
    if batch.star_mask is not None:
        stars = F.grid_sample(batch.star_mask.to(torch.float32), grids(torch.float32),
                              mode="nearest", padding_mode="zeros", align_corners=False)
        out["star_mask"] = stars > 0.5
    if batch.targets is not None:
        tmode = "exact" if mode in ("exact", "nearest") else "bilinear"
        tgt = batch.targets
        out["targets"] = _resample(tgt.to(data.dtype), gx, gy, tmode, grids).to(tgt.dtype)
        tbad = (torch.zeros(tgt.shape, dtype=torch.bool, device=tgt.device)
                if batch.target_mask is None else batch.target_mask)
        tmask = _any_bad(tbad, gx, gy, tmode, grids)
        out["target_mask"] = tmask if lost is None else tmask | lost
    return batch.replace(**out)


def pixel_affine(matrix, height, width):
    """Turn a matrix acting on pixel offsets about the image centre into an affine map.

    Parameters
    ----------
    matrix : `torch.Tensor`
        ``(B, 2, 2)`` linear maps of pixel offsets (output -> input).
    height, width : int
        Image size.

    Returns
    -------
    theta : `torch.Tensor`
        ``(B, 2, 3)`` maps in the `torch.nn.functional.affine_grid`
        convention (normalised coordinates, ``align_corners=False``).
    """
    # normalised coordinate n = p / (size / 2) about the image centre
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=matrix.dtype, device=matrix.device)
    lin = matrix * scale.view(1, 1, 2) / scale.view(1, 2, 1)
    zeros = torch.zeros(matrix.shape[0], 2, 1, dtype=matrix.dtype, device=matrix.device)
    return torch.cat([lin, zeros], dim=2)
