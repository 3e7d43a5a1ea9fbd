"""Property-based tests of the augmenters (hypothesis)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astro_cl.augment import (
    GaussianBlur,
    MultiplicativeNoise,
    RandomFlip,
    RandomRot90,
    RandomRotation,
    RandomTranslation,
    Rebin,
    StarMask,
    ecalifa_views,
)
from astro_cl.data.batch import TensorBatch

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def batches(draw, square=False, max_size=24):
    b = draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(4, max_size))
    w = h if square else draw(st.integers(4, max_size))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    data = rng.lognormal(size=(b, c, h, w)).astype(np.float32)
    mask = rng.random((b, 1, h, w)) < 0.1
    return TensorBatch.from_arrays(np.where(mask, 0, data), mask,
                                   uncertainty=(0.1 * data).astype(np.float32))


seeds = st.integers(0, 2**31 - 1)


@SETTINGS
@given(batches(square=True), st.integers(0, 3), st.booleans())
def test_four_quarter_turns_are_identity(batch, k, transpose):
    out = batch
    for _ in range(4):
        out = RandomRot90(k=1)(out)
    assert torch.equal(out.data, batch.data) and torch.equal(out.mask, batch.mask)
    # a random dihedral element and its inverse
    aug = RandomRot90(k=k, transpose=transpose)
    once = aug(batch, seed=0)
    assert once.data.shape == batch.data.shape
    torch.testing.assert_close(once.data.sum((2, 3)), batch.data.sum((2, 3)))
    assert int(once.mask.sum()) == int(batch.mask.sum())


@SETTINGS
@given(batches(), seeds)
def test_flips_are_involutions(batch, seed):
    aug = RandomFlip()
    twice = aug(aug(batch, seed=seed), seed=seed)
    assert torch.equal(twice.data, batch.data)
    assert torch.equal(twice.mask, batch.mask)
    assert torch.equal(twice.uncertainty, batch.uncertainty)


@SETTINGS
@given(batches(square=True), seeds)
def test_masks_move_with_their_pixels(batch, seed):
    # mark masked pixels by a sentinel value in the data; pixel-exact transforms keep them paired
    sentinel = batch.replace(data=torch.where(batch.mask, -1.0, batch.data))
    for aug in (RandomFlip(), RandomRot90(transpose=True), RandomTranslation(max_shift=3)):
        out = aug(sentinel, seed=seed)
        moved_bad = (out.data == -1.0).any(1, keepdim=True)
        # every sentinel pixel is still masked; new masked pixels come from outside the frame
        assert torch.all(out.mask[moved_bad])
        assert int(moved_bad.sum()) == int(sentinel.mask.sum()) or aug.name == "random-translation"


@SETTINGS
@given(batches(square=True, max_size=20), seeds)
def test_rotation_masks_follow_a_masked_blob(batch, seed):
    h = batch.data.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(h), indexing="ij")
    blob = ((yy - h // 2) ** 2 + (xx - h // 2) ** 2 <= (h // 4) ** 2)[None, None]
    mask = blob.expand(len(batch), 1, h, h).clone()
    b = batch.replace(mask=mask, data=torch.where(mask, 0.0, batch.data))
    out = RandomRotation()(b, seed=seed)
    # a centred disc maps onto itself under any rotation about the centre
    inner = ((yy - h // 2) ** 2 + (xx - h // 2) ** 2 <= (h // 4 - 1.5) ** 2)
    assert torch.all(out.mask[:, 0][:, inner])


@SETTINGS
@given(st.integers(16, 40), st.floats(0, 360), seeds)
def test_rotation_conserves_interior_flux(size, angle, seed):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    img = np.exp(-0.5 * (yy**2 + xx**2) / (size / 10) ** 2)[None, None].astype(np.float32)
    b = TensorBatch.from_arrays(img)
    out = RandomRotation(angle=angle)(b, seed=seed)
    assert float(out.data.sum()) == pytest.approx(float(b.data.sum()), rel=0.01)


@SETTINGS
@given(batches(), st.integers(1, 5))
def test_rebin_conserves_flux_exactly(batch, factor):
    b64 = batch.replace(data=batch.data.double(), uncertainty=batch.uncertainty.double())
    out = Rebin(factor=factor)(b64, seed=0)
    torch.testing.assert_close(out.data.sum((2, 3)), b64.data.sum((2, 3)), rtol=1e-12, atol=1e-9)
    # variances add
    torch.testing.assert_close(out.uncertainty.square().sum((2, 3)),
                               b64.uncertainty.square().sum((2, 3)), rtol=1e-12, atol=1e-9)
    # a block is bad iff it had a bad pixel: never fewer bad pixels-worth of area
    assert int(out.mask.sum()) * 1 >= int(batch.mask.any(1).sum()) // (factor * factor)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 10), seeds)
def test_noisy_view_has_requested_sn(sn, seed):
    b = TensorBatch.from_arrays(np.full((2, 1, 64, 64), 7.0, np.float32))
    out = MultiplicativeNoise(sn=sn)(b, seed=seed)
    x = out.data.flatten(1).double()
    measured = x.mean(1) / x.std(1)
    # standard error of the S/N estimate for 4096 pixels is about SN * sqrt(1/(2 n)) ~ 1.1%
    np.testing.assert_allclose(measured.numpy(), sn, rtol=0.06)


ALL = [RandomRotation(), RandomFlip(), RandomRot90(transpose=True), RandomTranslation(),
       GaussianBlur(sigma=(0.5, 1.5)), MultiplicativeNoise(), Rebin(), StarMask()]


@SETTINGS
@given(batches(), seeds, st.sampled_from(ALL), st.sampled_from([torch.float32, torch.float64]))
def test_same_seed_same_batch_and_types_kept(batch, seed, aug, dtype):
    batch = batch.replace(data=batch.data.to(dtype), uncertainty=batch.uncertainty.to(dtype))
    a = aug(batch, seed=seed)
    b = aug(batch, seed=seed)
    assert torch.equal(a.data, b.data) and torch.equal(a.mask, b.mask)
    assert a.data.shape == batch.data.shape and a.data.dtype == dtype
    assert a.mask.dtype == torch.bool and a.data.device == batch.data.device
    assert a.uncertainty.dtype == dtype and a.ids == batch.ids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_runs_on_gpu():
    rng = np.random.default_rng(0)
    b = TensorBatch.from_arrays(rng.random((2, 3, 16, 16))).to("cuda")
    v1, _ = ecalifa_views().two_views(b, seed=0)
    assert v1.data.device.type == "cuda"
