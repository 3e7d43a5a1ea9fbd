import numpy as np
import pytest
import torch

from astro_cl.augment import ColourJitter, make_generator
from astro_cl.augment.config import build_augmenter
from astro_cl.data.batch import TensorBatch
from astro_cl.exceptions import ValidationError
from astro_cl.testing import check_augmenter


def ones_batch(b=2000, c=3, h=4, w=4):
    data = np.ones((b, c, h, w), np.float32)
    mask = np.zeros(data.shape, bool)
    mask[:, :, 0, 0] = True
    return TensorBatch.from_arrays(data, mask, uncertainty=np.full(data.shape, 0.5, np.float32))


@pytest.mark.parametrize("aug", [ColourJitter(), ColourJitter(brightness=0.3, colour=0.0),
                                 ColourJitter(brightness=0.0, colour=0.2),
                                 ColourJitter(distribution="normal")],
                         ids=["default", "brightness", "colour", "normal"])
def test_conformance(aug):
    check_augmenter(aug)


def test_registered_and_built_from_config():
    chain = build_augmenter([{"name": "colour-jitter", "p": 0.5, "brightness": 0.2,
                              "colour": 0.1}])
    (aug, p), = chain.normalised_steps()
    assert isinstance(aug, ColourJitter) and p == 0.5
    assert (aug.brightness, aug.colour) == (0.2, 0.1)


def test_same_seed_same_gains_and_generator_is_the_only_source():
    batch = ones_batch(b=16)
    aug = ColourJitter(brightness=0.2, colour=0.1)
    a = aug(batch, generator=make_generator(5))
    b = aug(batch, generator=make_generator(5))
    c = aug(batch, generator=make_generator(6))
    assert torch.equal(a.data, b.data)
    assert not torch.equal(a.data, c.data)
    # the gains drawn by log_gains are the ones transform applies
    expected = 10 ** ColourJitter(brightness=0.2, colour=0.1).log_gains(16, 3, make_generator(5))
    assert np.allclose(a.data[:, :, 1, 1].numpy(), expected.numpy(), rtol=1e-6)


def test_scales_data_and_uncertainty_alike_keeps_mask_and_shape():
    rng = np.random.default_rng(1)
    data = rng.lognormal(size=(8, 3, 10, 12)).astype(np.float32)
    mask = rng.random(data.shape) < 0.1
    batch = TensorBatch.from_arrays(data, mask, uncertainty=0.1 * data + 0.01)
    out = ColourJitter(brightness=0.3, colour=0.2)(batch, seed=3)
    assert out.data.shape == batch.data.shape
    assert torch.equal(out.mask, batch.mask)
    gain = out.data / batch.data
    # one gain per (image, channel), constant over pixels
    assert torch.allclose(gain, gain[:, :, :1, :1].expand_as(gain), rtol=1e-5)
    # signal-to-noise unchanged
    assert torch.allclose(out.data / out.uncertainty, batch.data / batch.uncertainty, rtol=1e-5)
    assert not torch.allclose(gain, torch.ones_like(gain))


def test_zero_ranges_are_identity():
    batch = ones_batch(b=8)
    out = ColourJitter(brightness=0.0, colour=0.0)(batch, seed=0)
    assert torch.equal(out.data, batch.data)


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_gains_are_symmetric_in_log(distribution):
    brightness, colour = 0.2, 0.1
    out = ColourJitter(brightness=brightness, colour=colour, distribution=distribution)(
        ones_batch(b=20000), seed=11)
    log_gain = np.log10(out.data[:, :, 1, 1].numpy().astype(np.float64))    # (B, C)
    overall = log_gain.mean(axis=1)          # the brightness part (colour part is centred)
    rel = log_gain - overall[:, None]        # the colour part
    n = len(log_gain)
    for x, scale in ((overall, brightness), (rel.ravel(), colour)):
        sem = x.std() / np.sqrt(len(x))
        assert abs(x.mean()) < 4 * sem + 1e-7
        assert abs(np.median(x)) < 0.02 * scale
        skew = np.mean((x - x.mean()) ** 3) / x.std() ** 3
        assert abs(skew) < 0.05
        # a gain and its reciprocal are equally likely: P(log g > a) = P(log g < -a)
        a = 0.5 * x.std()
        assert abs(np.mean(x > a) - np.mean(x < -a)) < 4 * np.sqrt(0.5 / n) + 0.01
    assert np.allclose(rel.sum(axis=1), 0.0, atol=1e-5)   # colour keeps the geometric mean
    if distribution == "uniform":
        # overall log gain uniform in [-b, b]: std b / sqrt(3)
        assert overall.std() == pytest.approx(brightness / np.sqrt(3), rel=0.03)
        assert np.abs(overall).max() <= brightness + 1e-6
        # a colour (ratio of two channels) changes by at most 2 * colour dex
        assert np.abs(rel[:, 0] - rel[:, 1]).max() <= 2 * colour + 1e-6
        # centred uniform draws of C = 3 channels: variance colour**2 / 3 * (1 - 1/3)
        assert rel.std() == pytest.approx(colour * np.sqrt(2 / 9), rel=0.03)
    else:
        assert overall.std() == pytest.approx(brightness, rel=0.03)
        assert rel.std() == pytest.approx(colour * np.sqrt(2 / 3), rel=0.03)


def test_colour_only_keeps_geometric_mean_and_brightness_only_keeps_colours():
    batch = ones_batch(b=64)
    out = ColourJitter(brightness=0.0, colour=0.3)(batch, seed=2)
    log_gain = np.log10(out.data[:, :, 1, 1].numpy().astype(np.float64))
    assert np.allclose(log_gain.mean(axis=1), 0.0, atol=1e-6)
    out = ColourJitter(brightness=0.3, colour=0.0)(batch, seed=2)
    g = out.data[:, :, 1, 1]
    assert torch.allclose(g, g[:, :1].expand_as(g), rtol=1e-6)
    assert g[:, 0].std() > 0


@pytest.mark.parametrize("kwargs", [{"brightness": -0.1}, {"colour": float("nan")},
                                    {"colour": "red"}, {"distribution": "cauchy"}])
def test_invalid_parameters(kwargs):
    with pytest.raises(ValidationError, match="ColourJitter"):
        ColourJitter(**kwargs)(ones_batch(b=2), seed=0)
