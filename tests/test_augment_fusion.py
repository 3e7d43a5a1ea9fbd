"""Fused affine chains in Compose equal the step-by-step chain; fast paths equal the slow ones."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from astro_cl.augment import (
    Augmenter,
    Compose,
    RandomFlip,
    RandomRot90,
    RandomRotation,
    RandomTranslation,
    _random,
    _resample,
    ecalifa_views,
    picasso_augmentations,
)
from astro_cl.augment import rebin as rebin_module
from astro_cl.augment.photometric import MultiplicativeNoise, _separable_conv
from astro_cl.augment.rebin import Rebin
from astro_cl.data.batch import TensorBatch
from astro_cl.exceptions import ValidationError
from astro_cl.testing import check_augmenter


def batch_of(b=4, c=6, h=40, w=36, seed=0, square=False):
    """Smooth random images with a masked patch, an uncertainty and star masks."""
    rng = np.random.default_rng(seed)
    w = h if square else w
    data = rng.lognormal(size=(b, c, h, w)).astype(np.float32)
    mask = np.zeros((b, 1, h, w), bool)
    mask[:, :, 10:14, 5:9] = True
    stars = np.zeros((b, 1, h, w), bool)
    stars[:, :, 20:24, 15:19] = True
    return TensorBatch.from_arrays(np.where(mask, 0, data), mask, uncertainty=0.1 * data,
                                   star_mask=stars)


def fused_and_sequential(steps, batch, seed):
    fused = Compose(steps=steps)(batch, seed=seed)
    sequential = Compose(steps=steps, fuse=False)(batch, seed=seed)
    return fused, sequential


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_translation_fused_equals_sequential(mode, seed):
    batch = batch_of()
    steps = [RandomRotation(mode=mode), RandomTranslation(max_shift=6)]
    fused, seq = fused_and_sequential(steps, batch, seed)
    assert torch.equal(fused.mask, seq.mask)
    assert torch.equal(fused.star_mask, seq.star_mask)
    scale = float(batch.data.abs().max())
    assert torch.allclose(fused.data, seq.data, atol=1e-5 * scale, rtol=0)
    good = ~fused.mask.expand_as(fused.data)  # the uncertainty of masked pixels is moot
    assert torch.allclose(fused.uncertainty[good], seq.uncertainty[good], atol=1e-5 * scale)
    # the translation moved pixels in from outside the rotated frame: masked, zero
    assert bool(fused.mask.any())
    assert float(fused.data.masked_select(fused.mask.expand_as(fused.data)).abs().max()) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pixel_exact_chains_fuse_exactly(seed):
    batch = batch_of(square=True)
    steps = [RandomRot90(transpose=True), RandomFlip(), RandomTranslation(max_shift=5)]
    fused, seq = fused_and_sequential(steps, batch, seed)
    for name in ("data", "mask", "uncertainty", "star_mask"):
        assert torch.equal(getattr(fused, name), getattr(seq, name)), name
    chain = picasso_augmentations()
    assert torch.equal(chain(batch, seed=seed).data,
                       Compose(steps=chain.steps, fuse=False)(batch, seed=seed).data)


def test_non_square_rot90_is_not_fused():
    batch = batch_of()  # 40 x 36
    steps = [RandomRot90(), RandomFlip()]
    fused, seq = fused_and_sequential(steps, batch, 5)
    assert torch.equal(fused.data, seq.data)
    assert torch.equal(fused.mask, seq.mask)


def test_rotation_then_rotation_fused_close_to_sequential_inside():
    """Two interpolations vs one: equal up to interpolation error away from edges."""
    h = w = 48
    yy, xx = np.mgrid[:h, :w]
    prof = np.exp(-0.5 * (((yy - 23.5) / 6.0) ** 2 + ((xx - 23.5) / 5.0) ** 2))
    data = np.repeat(prof[None, None].astype(np.float32), 4, axis=1).repeat(2, axis=0)
    batch = TensorBatch.from_arrays(data, np.zeros((2, 1, h, w), bool))
    steps = [RandomRotation(angle=(10, 80)), RandomRotation(angle=(10, 80), flip=False)]
    fused, seq = fused_and_sequential(steps, batch, 0)
    good = ~(fused.mask | seq.mask).expand_as(fused.data)
    assert torch.allclose(fused.data[good], seq.data[good], atol=2e-2)  # peak is 1
    # a compact source keeps its flux through both
    assert torch.allclose(fused.data.sum(dim=(-2, -1)), batch.data.sum(dim=(-2, -1)), rtol=1e-3)


def test_channels_last_resampler_matches_grid_sample():
    x = torch.rand(3, 7, 21, 17, dtype=torch.float32)
    theta = RandomRotation().affine(tuple(x.shape), torch.Generator().manual_seed(0))
    theta[:, :, 2] = torch.tensor([0.3, -0.2], dtype=torch.float64)  # off-centre as well
    h, w = x.shape[-2:]
    gx, gy = _resample._pixel_grid(_resample._to_pixels(_resample._homogeneous(theta), h, w), h, w)
    grid = F.affine_grid(theta.float(), list(x.shape), align_corners=False)
    for mode in ("bicubic", "bilinear"):
        ref = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
        got = _resample._resample_channels_last(x, gx, gy, mode)
        assert got.shape == ref.shape
        assert torch.allclose(got, ref, atol=1e-5), mode


@pytest.mark.parametrize("shift", [0.9, 1.6, 2.5, -3.0])  # partly to wholly off the frame
def test_channels_last_resampler_off_frame_and_in_chunks(monkeypatch, shift):
    monkeypatch.setattr(_resample, "_CHUNK_ELEMENTS", 2 * 21 * 17 * 16)  # two images per chunk
    x = torch.rand(5, 6, 21, 17, dtype=torch.float32)
    theta = RandomRotation().affine(tuple(x.shape), torch.Generator().manual_seed(1))
    theta[:, 0, 2] = shift
    theta[:, 1, 2] = -0.5 * shift
    h, w = x.shape[-2:]
    gx, gy = _resample._pixel_grid(_resample._to_pixels(_resample._homogeneous(theta), h, w), h, w)
    grid = F.affine_grid(theta.float(), list(x.shape), align_corners=False)
    skip = torch.zeros(5, 1, h, w, dtype=torch.bool)
    skip[:, :, 3:6, 4:9] = True
    for mode in ("bicubic", "bilinear"):
        ref = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
        got = _resample._resample_channels_last(x, gx, gy, mode, skip=skip)
        assert torch.all(got[skip.expand_as(got)] == 0)
        ref = ref.masked_fill(skip, 0)
        assert torch.allclose(got, ref, atol=1e-5), (mode, shift)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_channels_last_resampler_works_out_only_the_kept_pixels(monkeypatch, mode):
    """Mostly skipped pixels (a rebinned image): the kept ones alone, to the same values."""
    x = torch.rand(4, 6, 21, 17, dtype=torch.float32)
    theta = RandomRotation().affine(tuple(x.shape), torch.Generator().manual_seed(2))
    h, w = x.shape[-2:]
    gx, gy = _resample._pixel_grid(_resample._to_pixels(_resample._homogeneous(theta), h, w), h, w)
    skip = torch.ones(4, 1, h, w, dtype=torch.bool)
    skip[:, :, 5:12, 4:10] = False
    skip[1, :, 0, 0] = False  # a corner rotated in from outside the frame
    skip[2] = True  # nothing kept
    monkeypatch.setattr(_resample, "_SPARSE_FRACTION", 0.0)  # every pixel worked out
    dense = _resample._resample_channels_last(x, gx, gy, mode, skip=skip)
    monkeypatch.setattr(_resample, "_SPARSE_FRACTION", 0.5)
    monkeypatch.setattr(_resample, "_CHUNK_ELEMENTS", 16 * 50)  # several chunks of pixels
    sparse = _resample._resample_channels_last(x, gx, gy, mode, skip=skip)
    assert torch.equal(sparse, dense)
    assert sparse.is_contiguous(memory_format=torch.channels_last)
    assert not bool(sparse[skip.expand_as(sparse)].any())


def test_depthwise_and_band_blur_match_grouped_convolution():
    x = torch.rand(3, 5, 19, 23, dtype=torch.float64)
    sigma = torch.tensor([0.7, 1.3, 0.7], dtype=torch.float64)
    radius = 5
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2)
    k = k / k.sum(1, keepdim=True)
    ref = torch.stack([F.conv2d(F.conv2d(x[i:i + 1], k[i].view(1, 1, -1, 1).expand(5, 1, -1, 1),
                                         padding=(radius, 0), groups=5),
                                k[i].view(1, 1, 1, -1).expand(5, 1, 1, -1),
                                padding=(0, radius), groups=5)[0] for i in range(3)])
    assert torch.allclose(_separable_conv(x, k, radius), ref, atol=1e-12)
    assert torch.allclose(_separable_conv(x[:, :1], k, radius), ref[:, :1], atol=1e-12)


def test_depthwise_and_band_blur_match_grouped_convolution_for_few_channels():
    x = torch.rand(4, 5, 19, 23, dtype=torch.float64)
    sigma = torch.tensor([0.7, 1.3, 0.7, 2.0], dtype=torch.float64)
    radius = 5
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2)
    k = k / k.sum(1, keepdim=True)
    full = _separable_conv(x, k, radius)
    for c in (2, 3):  # contiguous images of few channels go through the band path
        part = x[:, :c].contiguous()
        assert torch.allclose(_separable_conv(part, k, radius), full[:, :c], atol=1e-12), c
        cl = part.contiguous(memory_format=torch.channels_last)  # the depthwise path
        assert torch.allclose(_separable_conv(cl, k, radius), full[:, :c], atol=1e-12), c


def _rotation_grid(x, seed):
    b, _, h, w = x.shape
    theta = RandomRotation().affine(tuple(x.shape), torch.Generator().manual_seed(seed))
    theta[:, :, 2] = torch.rand(b, 2, generator=torch.Generator().manual_seed(seed)) - 0.5
    gx, gy = _resample._pixel_grid(_resample._to_pixels(_resample._homogeneous(theta), h, w), h, w)
    return _resample._normalised_grid(gx, gy, h, w, x.dtype)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest", "exact"])
def test_sampling_only_unmasked_pixels_equals_sampling_all(mode):
    """Mostly masked images are sampled at their unmasked pixels only, to the same values."""
    gen = torch.Generator().manual_seed(0)
    b, h, w = 9, 24, 20
    x = torch.rand(b, 3, h, w, generator=gen)
    grid = _rotation_grid(x, 1)
    mask = torch.rand(b, 1, h, w, generator=gen) < torch.linspace(0, 1, b).view(b, 1, 1, 1)
    mask[3] = True  # nothing left to sample
    mask[4, :, 2:20, 3:18] = True  # a rebinned image: a small unmasked box and frame
    nearest = "nearest" if mode == "exact" else mode
    full = F.grid_sample(x, grid, mode=nearest, padding_mode="zeros", align_corners=False)
    expected = full.masked_fill(mask, 0)
    for fraction in (0.0, 0.5, 1.0):  # none, some, all of the images sampled sparsely
        got = _resample._resample_unmasked(x, grid, mask, mode) if fraction == 0.5 else None
        if got is None:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(_resample, "_SPARSE_FRACTION", fraction)
                got = _resample._resample_unmasked(x, grid, mask, mode)
        assert torch.equal(got, expected), fraction
        assert got.is_contiguous()


def test_rotation_of_rebinned_images_samples_fewer_pixels(monkeypatch):
    """After a rebinning, the warp samples the unmasked pixels only (not the whole frame)."""
    sampled = []
    grid_sample = F.grid_sample

    def counting(x, grid, *args, **kwargs):
        if x.shape[1] == 3:  # the data, not the masks
            sampled.append(grid.shape[:3].numel())
        return grid_sample(x, grid, *args, **kwargs)

    monkeypatch.setattr(_resample.F, "grid_sample", counting)
    data = np.random.default_rng(0).lognormal(size=(8, 3, 40, 40)).astype(np.float32)
    batch = TensorBatch.from_arrays(data, np.zeros((8, 1, 40, 40), bool))
    chain = Compose(steps=[Rebin(factor=4), RandomRotation(), RandomTranslation(max_shift=2)])
    chain(batch, seed=0)
    assert 0 < sum(sampled) < 0.2 * 8 * 40 * 40


def test_rebin_works_once_per_kind_of_image(monkeypatch):
    """Images of the same factor and noise choice are reduced together, wherever they sit."""
    calls = []
    reduce = rebin_module._block_reduce

    def counting(t, f, how):
        calls.append(f)
        return reduce(t, f, how)

    monkeypatch.setattr(rebin_module, "_block_reduce", counting)
    batch = batch_of(b=64, c=3, h=20, w=20)
    Compose(steps=[(Rebin(factor=(1, 5)), 1.0)])(batch, seed=0)
    # one reduction per field (data, mask, uncertainty, star mask) and factor 2..5,
    # however the factors are interleaved over the batch
    assert sorted(set(calls)) == [2, 3, 4, 5]
    assert len(calls) == 4 * 4


@pytest.mark.parametrize("c", [3, 5])
def test_fused_noise_and_rebin_equal_their_runs_one_by_one(c):
    """The noise is drawn run by run in batch order: grouping the work changes no view."""
    from astro_cl.augment.rebin import rebin_images

    batch = batch_of(b=24, c=c, h=20, w=18)
    gen = torch.Generator().manual_seed(3)
    factors = torch.randint(1, 4, (24,), generator=gen)
    sn = torch.randint(0, 3, (24,), generator=gen).float() * 4  # 0: no noise
    whole = rebin_images(batch, factors, noise_sn=sn, generator=torch.Generator().manual_seed(5))
    # the same draws, one run of consecutive images alike at a time
    gen = torch.Generator().manual_seed(5)
    keys = list(zip(factors.tolist(), (sn > 0).tolist(), strict=True))
    start = 0
    for i in range(1, 25):
        if i < 24 and keys[i] == keys[start]:
            continue
        run = rebin_images(batch.chunk(start, i), factors[start:i], noise_sn=sn[start:i],
                           generator=gen)
        for name, value in run.tensors().items():
            assert torch.equal(getattr(whole, name)[start:i], value), (name, start)
        start = i


def test_ecalifa_chain_fused_is_conformant_and_seeded():
    batch = batch_of(b=3, c=5, h=32, w=30)
    chain = ecalifa_views(noise_p=1.0, blur_p=1.0, star_p=1.0, rebin_p=1.0, max_shift=4)
    check_augmenter(chain, batch)
    out = chain(batch, seed=7)
    assert out.data.shape == batch.data.shape and out.data.dtype == batch.data.dtype
    assert torch.equal(out.data, chain(batch, seed=7).data)
    assert not torch.equal(out.data, chain(batch, seed=8).data)


def noise_rebin_steps(p_noise=1.0, p_rebin=1.0, sn=4, factor=2):
    return [(MultiplicativeNoise(sn=sn), p_noise), (Rebin(factor=factor), p_rebin)]


@pytest.mark.parametrize("fuse", [True, False])
def test_noise_then_rebin_block_statistics(fuse):
    """Block sums of x (1 + n / SN): mean sum(x), standard deviation sqrt(sum(x**2)) / SN."""
    n, sn = 2000, 4
    rng = np.random.default_rng(3)
    tile = rng.uniform(1.0, 3.0, size=(1, 4, 8, 8)).astype(np.float32)
    data = np.repeat(tile, n, axis=0)
    batch = TensorBatch.from_arrays(data, np.zeros((n, 1, 8, 8), bool),
                                    uncertainty=np.full_like(data, 0.5))
    out = Compose(steps=noise_rebin_steps(sn=sn, factor=2), fuse=fuse)(batch, seed=11)
    x = torch.from_numpy(tile).double()
    total = F.avg_pool2d(x, 2, divisor_override=1)[0]
    power = F.avg_pool2d(x * x, 2, divisor_override=1)[0]
    sigma = power.sqrt() / sn
    centre = out.data[:, :, 2:6, 2:6].double()  # the 4 x 4 blocks, centred in the 8 x 8 frame
    assert float(((centre.mean(0) - total) / (sigma / n**0.5)).abs().max()) < 4.5
    assert float((centre.std(0) / sigma - 1).abs().max()) < 0.1
    assert bool(out.mask[:, :, :2].all()) and not bool(out.mask[:, :, 2:6, 2:6].any())
    # the uncertainty adds the noise to the summed variances, exactly
    expected = (4 * 0.25 + power / sn**2).sqrt().expand_as(centre)
    torch.testing.assert_close(out.uncertainty[:, :, 2:6, 2:6].double(), expected, rtol=1e-5,
                               atol=0)


def test_noise_then_rebin_draws_one_number_per_block(monkeypatch):
    drawn = []
    draw = _random.randn_like

    def counting(tensor, *args, **kwargs):
        drawn.append(tensor.numel())
        return draw(tensor, *args, **kwargs)

    monkeypatch.setattr(_random, "randn_like", counting)
    monkeypatch.setattr(rebin_module, "randn_like", counting)
    batch = batch_of(b=3, c=4, h=12, w=12)
    Compose(steps=noise_rebin_steps(factor=2))(batch, seed=0)
    assert drawn == [3 * 4 * 6 * 6]
    drawn.clear()
    Compose(steps=noise_rebin_steps(factor=2), fuse=False)(batch, seed=0)
    assert drawn == [3 * 4 * 12 * 12]


@pytest.mark.parametrize("fuse", [True, False])
def test_noise_then_rebin_leaves_masked_pixels_out(fuse):
    data = np.ones((4, 4, 6, 6), np.float32)
    data[:, :, 0, 0] = 1e6
    mask = np.zeros((4, 1, 6, 6), bool)
    mask[:, :, 0, 0] = True
    batch = TensorBatch.from_arrays(data, mask)
    out = Compose(steps=noise_rebin_steps(sn=10, factor=2), fuse=fuse)(batch, seed=0)
    # block (0, 0) of the 3 x 3 result sits at (1, 1): three good pixels of 1, one masked
    assert bool(out.mask[:, 0, 1, 1].all())
    assert float(out.data[:, :, 1, 1].abs().max()) < 10.0
    assert not bool(out.mask[:, 0, 2, 2].any())


def test_fused_noise_and_rebin_keep_their_probabilities():
    n = 800
    batch = TensorBatch.from_arrays(np.ones((n, 4, 8, 8), np.float32))
    out = Compose(steps=noise_rebin_steps(p_noise=0.3, p_rebin=0.6, sn=10, factor=2))(
        batch, seed=0)
    rebinned = out.mask[:, 0, 0, 0]  # the re-padded border is masked
    centre = out.data[:, 0, 3, 3]
    noisy = ~torch.isclose(centre, torch.where(rebinned, 4.0, 1.0))
    assert abs(float(rebinned.float().mean()) - 0.6) < 0.06
    assert abs(float(noisy.float().mean()) - 0.3) < 0.06
    assert abs(float((noisy & rebinned).float().mean()) - 0.18) < 0.05


def test_noise_and_rebin_subclasses_that_change_the_step_are_not_fused():
    class Brighter(MultiplicativeNoise):
        def transform(self, batch, generator):
            return batch.replace(data=2 * batch.data)

    class Coarser(Rebin):
        def transform(self, batch, generator):
            return batch

    shape = (2, 3, 8, 8)
    steps = [(MultiplicativeNoise(), 1.0), (Rebin(), 0.5)]
    n, _ = steps[0][0].fusion(steps, shape)
    assert n == 2
    assert Brighter().fusion([(Brighter(), 1.0), (Rebin(), 1.0)], shape) is None
    assert steps[0][0].fusion([steps[0], (Coarser(), 1.0)], shape) is None
    assert steps[0][0].fusion(steps[:1], shape) is None  # nothing follows
    assert steps[1][0].fusion(steps[1:], shape) is None  # a rebinning fuses with nothing


class _Double(Augmenter):
    """Doubles the data; two consecutive doublings fuse into one multiplication by 4."""

    name = "test-double"
    calls = []

    def transform(self, batch, generator):
        self.calls.append("step")
        return batch.replace(data=2 * batch.data)

    def fusion(self, steps, shape):
        if len(steps) < 2 or not isinstance(steps[1][0], _Double) or steps[1][1] < 1.0:
            return None

        def apply(batch, generator):
            self.calls.append(("fused", shape))
            return batch.replace(data=4 * batch.data)

        return 2, apply


def test_compose_asks_each_step_whether_it_fuses():
    _Double.calls = []
    batch = batch_of(b=2, c=2, h=6, w=6)
    steps = [_Double(), _Double(), _Double(), RandomFlip()]
    out = Compose(steps=steps, chunk_size=None)(batch, seed=0)
    assert _Double.calls == [("fused", (2, 2, 6, 6)), "step"]  # the third runs on its own
    assert torch.equal(out.data, Compose(steps=steps, fuse=False)(batch, seed=0).data)
    assert torch.allclose(out.data.abs().sum(), 8 * batch.data.sum())


@pytest.mark.parametrize("answer", [(1, lambda b, g: b), (5, lambda b, g: b), (2, None), 2,
                                    (True, lambda b, g: b)])
def test_a_bad_fusion_answer_is_named(answer):
    class Odd(_Double):
        def fusion(self, steps, shape):
            return answer

    with pytest.raises(ValidationError, match=r"Odd.fusion: expected None or \(n, apply\)"):
        Compose(steps=[Odd(), Odd()])(batch_of(b=1, c=1, h=4, w=4), seed=0)


def test_a_fused_group_must_return_a_batch():
    class Broken(_Double):
        def fusion(self, steps, shape):
            return 2, lambda batch, generator: batch.data

    with pytest.raises(ValidationError, match="Broken.fusion: its apply.*must return a TensorBatch"):
        Compose(steps=[Broken(), Broken()])(batch_of(b=1, c=1, h=4, w=4), seed=0)


def test_affine_runs_fuse_only_with_probability_one_and_fusable_shapes():
    square, wide = (2, 3, 8, 8), (2, 3, 8, 6)
    rot, flip, shift = RandomRot90(), RandomFlip(), RandomTranslation(max_shift=2)
    assert rot.fusion([(rot, 1.0), (flip, 1.0), (shift, 1.0)], square)[0] == 3
    assert rot.fusion([(rot, 1.0), (flip, 1.0), (shift, 1.0)], wide) is None  # rot90 of a rectangle
    assert flip.fusion([(flip, 1.0), (rot, 1.0), (shift, 1.0)], wide) is None
    assert flip.fusion([(flip, 1.0), (shift, 1.0), (rot, 1.0)], wide)[0] == 2
    assert flip.fusion([(flip, 1.0), (shift, 0.5)], square) is None
    assert flip.fusion([(flip, 0.5), (shift, 1.0)], square) is None
    assert flip.fusion([(flip, 1.0), (MultiplicativeNoise(), 1.0)], square) is None


def test_check_augmenter_checks_a_fusion():
    class Unseeded(_Double):
        """Draws its fused gain from torch's global generator."""

        def fusion(self, steps, shape):
            return 2, lambda batch, generator: batch.replace(data=batch.data * torch.rand(1))

    class Malformed(_Double):
        """Claims three steps of two."""

        def fusion(self, steps, shape):
            return 3, lambda batch, generator: batch

    check_augmenter(_Double(), batch_of(b=2, c=2, h=6, w=6))
    check_augmenter(RandomRot90(), batch_of(b=2, c=2, h=6, w=6, square=True))
    with pytest.raises(AssertionError, match="same output for the same seed"):
        check_augmenter(Unseeded(), batch_of(b=2, c=2, h=6, w=6))
    with pytest.raises(AssertionError, match=r"must return None or \(2, apply\)"):
        check_augmenter(Malformed(), batch_of(b=2, c=2, h=6, w=6))
