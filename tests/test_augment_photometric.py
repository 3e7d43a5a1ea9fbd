import numpy as np
import pytest
import torch

from astro_cl.augment import (
    GaussianBlur,
    MultiplicativeNoise,
    NoiseToDepth,
    PSFDegradation,
    RandomCutout,
    Reddening,
    StarMask,
    SurfaceBrightnessDimming,
    VelocityShift,
)
from astro_cl.augment.masking import star_catalogue
from astro_cl.augment.photometric import SDSS_EXTINCTION, ccm89_extinction
from astro_cl.data.batch import TensorBatch
from astro_cl.exceptions import ValidationError
from astro_cl.testing import check_augmenter


def flat_batch(value=10.0, b=4, c=2, h=40, w=40, unc=1.0, **meta):
    data = np.full((b, c, h, w), value, np.float32)
    batch = TensorBatch.from_arrays(data, np.zeros(data.shape, bool),
                                    uncertainty=np.full(data.shape, unc, np.float32))
    return batch.replace(meta=meta)


PHOTOMETRIC = [GaussianBlur(), GaussianBlur(sigma=(0.5, 2.0)), MultiplicativeNoise(),
               PSFDegradation(target_fwhm=(2, 4)), NoiseToDepth(sigma=(0.5, 1.0)),
               NoiseToDepth(factor=(1.0, 3.0)), NoiseToDepth(mode="resample"),
               Reddening(coefficients=[1.0, 2.0, 3.0]), SurfaceBrightnessDimming(),
               StarMask(), RandomCutout()]


@pytest.mark.parametrize("aug", PHOTOMETRIC, ids=lambda a: a.name)
def test_conformance(aug):
    check_augmenter(aug)


def test_blur_of_point_source_is_gaussian_and_conserves_flux():
    data = np.zeros((1, 1, 41, 41), np.float32)
    data[0, 0, 20, 20] = 100.0
    b = TensorBatch.from_arrays(data, uncertainty=np.ones_like(data))
    out = GaussianBlur(sigma=2.0)(b, seed=0)
    img = out.data[0, 0].numpy()
    assert img.sum() == pytest.approx(100.0, rel=1e-5)
    xx = np.mgrid[:41, :41][1] - 20
    assert np.sqrt((img * xx**2).sum() / img.sum()) == pytest.approx(2.0, rel=0.02)
    # variance through the squared kernel: white noise of sigma 1 -> 1/(2 sqrt(pi) s)
    assert float(out.uncertainty[0, 0, 20, 20]) == pytest.approx(1 / (2 * np.sqrt(np.pi) * 2),
                                                                 rel=0.02)


def test_blur_ignores_masked_pixels():
    b = flat_batch(value=5.0)
    mask = b.mask.clone()
    mask[:, :, 10, 10] = True
    b = b.replace(data=torch.where(mask, 0, b.data), mask=mask)
    out = GaussianBlur(sigma=1.5)(b, seed=0)
    good = ~out.mask
    torch.testing.assert_close(out.data[good], torch.full_like(out.data[good], 5.0))
    assert out.mask[:, :, 10, 10].all()


def test_multiplicative_noise_sn_statistics():
    b = flat_batch(value=10.0, b=8, c=1, h=64, w=64, unc=0.0)
    out = MultiplicativeNoise(sn=(4, 4))(b, seed=0)
    x = out.data.flatten(1)
    sn = (x.mean(1) / x.std(1)).numpy()
    np.testing.assert_allclose(sn, 4.0, rtol=0.05)
    torch.testing.assert_close(out.uncertainty, torch.full_like(out.uncertainty, 2.5))


def test_psf_degradation_adds_only_the_difference():
    data = np.zeros((2, 1, 41, 41), np.float32)
    data[:, 0, 20, 20] = 1.0
    b = TensorBatch.from_arrays(data).replace(meta={"psf_fwhm": [0.0, 3.0]})
    out = PSFDegradation(target_fwhm=5.0)(b, seed=0)
    xx = np.mgrid[:41, :41][1] - 20
    for i, expected in enumerate([5.0, 4.0]):  # sqrt(25 - 0), sqrt(25 - 9)
        img = out.data[i, 0].numpy()
        sigma = np.sqrt((img * xx**2).sum() / img.sum())
        assert sigma * 2.3548 == pytest.approx(expected, rel=0.03)
    assert out.meta["psf_fwhm"] == [5.0, 5.0]
    same = PSFDegradation(target_fwhm=2.0, fwhm=3.0)(b, seed=0)
    torch.testing.assert_close(same.data, b.data)
    arcsec = PSFDegradation(target_fwhm=2.5, fwhm=0.0, pixel_scale=0.5)(b, seed=0)
    img = arcsec.data[0, 0].numpy()
    assert np.sqrt((img * xx**2).sum() / img.sum()) * 2.3548 == pytest.approx(5.0, rel=0.03)


def test_noise_to_depth_reaches_target():
    b = flat_batch(value=0.0, b=4, c=1, h=64, w=64, unc=1.0)
    # noise already present in the data: simulate it
    gen = torch.Generator().manual_seed(5)
    b = b.replace(data=torch.randn(b.data.shape, generator=gen))
    out = NoiseToDepth(sigma=3.0)(b, seed=1)
    assert float(out.data.std()) == pytest.approx(3.0, rel=0.03)
    torch.testing.assert_close(out.uncertainty, torch.full_like(out.uncertainty, 3.0))
    res = NoiseToDepth(mode="resample")(b, seed=1)
    assert float(res.data.std()) == pytest.approx(np.sqrt(2), rel=0.03)
    with pytest.raises(ValidationError, match="exactly one"):
        NoiseToDepth()(b)
    with pytest.raises(ValidationError, match="uncertainty"):
        NoiseToDepth(mode="resample")(b.replace(uncertainty=None))


def test_reddening_coefficients():
    b = flat_batch(value=1.0, c=5, bands=["u", "g", "r", "i", "z"])
    out = Reddening(ebv=0.1)(b, seed=0)
    expected = [10 ** (-0.4 * SDSS_EXTINCTION[k] * 0.1) for k in "ugriz"]
    np.testing.assert_allclose(out.data[0, :, 0, 0].numpy(), expected, rtol=1e-5)
    assert torch.all(out.data[:, 0] < out.data[:, 4])  # u is reddened most
    cube = flat_batch(value=1.0, c=3, wavelength=[4000.0, 5500.0, 7000.0])
    out = Reddening(ebv=0.2)(cube, seed=0)
    a_v = ccm89_extinction([5500.0])[0]
    assert a_v == pytest.approx(3.1, rel=0.02)  # A_V / E(B-V) = R_V at V
    assert float(out.data[0, 1, 0, 0]) == pytest.approx(10 ** (-0.4 * a_v * 0.2), rel=1e-5)
    with pytest.raises(ValidationError, match="extinction"):
        Reddening()(flat_batch())


def test_sb_dimming_factor_and_noise_kept():
    b = flat_batch(value=100.0, b=2, c=1, h=64, w=64, unc=1.0, redshift=[0.0, 0.0])
    out = SurfaceBrightnessDimming(redshift=0.1, exponent=4, keep_noise=False)(b, seed=0)
    np.testing.assert_allclose(out.data.numpy(), 100 / 1.1**4, rtol=1e-5)
    torch.testing.assert_close(out.uncertainty, b.uncertainty / 1.1**4)
    kept = SurfaceBrightnessDimming(redshift=0.1)(b, seed=0)
    added = (kept.data - 100 / 1.1**4).std()
    assert float(added) == pytest.approx(np.sqrt(1 - 1.1**-8), rel=0.05)


def test_star_mask_synthetic_and_fitted():
    b = flat_batch(value=1.0, b=16, c=2, h=64, w=64)
    out = StarMask(n_stars=(2, 2), radius=(3, 3))(b, seed=0)
    assert out.star_mask is not None and out.star_mask.shape == (16, 1, 64, 64)
    assert torch.all(out.mask[:, 0] == out.star_mask[:, 0])
    assert (out.data[out.mask] == 0).all()
    _, _, radius, counts = star_catalogue(out.star_mask)
    assert counts.max() <= 2 and np.all(radius <= 3.5)
    # fit on 'real' stars: one radius-5 star at the same relative place in every image
    real = np.zeros((8, 1, 64, 64), bool)
    yy, xx = np.mgrid[:64, :64]
    real[:, 0] = (yy - 16) ** 2 + (xx - 48) ** 2 <= 25
    aug = StarMask(source="synthetic", jitter=0.0).fit(TensorBatch.from_arrays(
        np.ones((8, 1, 64, 64)), star_mask=real))
    np.testing.assert_allclose(aug.star_radius_, np.sqrt(real[0, 0].sum() / np.pi))
    np.testing.assert_array_equal(aug.star_counts_, 1)
    out = aug(flat_batch(value=1.0, b=4, h=64, w=64), seed=1)
    assert out.star_mask[:, 0, 16, 48].all() and not out.star_mask[:, 0, 48, 16].any()


def test_star_mask_real_donors():
    b = flat_batch(value=1.0, b=6, c=1, h=32, w=32)
    sm = torch.zeros(6, 1, 32, 32, dtype=torch.bool)
    sm[:, :, 5:9, 5:9] = True
    out = StarMask(source="real")(b.replace(star_mask=sm), seed=0)
    assert out.mask[:, 0, 5:9, 5:9].all() and out.mask.sum() == 6 * 16
    with pytest.raises(ValidationError, match="no star_mask"):
        StarMask(source="real")(b)


def test_cutout():
    b = flat_batch(value=1.0, b=8)
    out = RandomCutout(n=(2, 2), size=(5, 5))(b, seed=0)
    per = out.mask[:, 0].sum((1, 2))
    assert torch.all((per >= 25) & (per <= 50))


def test_velocity_shift():
    wave = np.linspace(6000, 7000, 501)
    line = np.exp(-0.5 * ((wave - 6500) / 3) ** 2).astype(np.float32)
    data = np.broadcast_to(line[None, :, None, None], (2, 501, 3, 3)).copy()
    b = TensorBatch.from_arrays(data, uncertainty=np.ones_like(data)).replace(
        meta={"wavelength": wave})
    out = VelocityShift(velocity=300.0)(b, seed=0)
    spec = out.data[0, :, 1, 1].numpy()
    centre = (spec * wave).sum() / spec.sum()
    assert centre == pytest.approx(6500 * (1 + 300 / 299792.458), abs=0.05)
    assert out.mask[:, 0].all()  # the bluest channel reads from outside the range
    assert (out.uncertainty[~out.mask] <= 1.0).all()
    check_augmenter(VelocityShift(), b)
    with pytest.raises(ValidationError, match="wavelength"):
        VelocityShift()(b.replace(meta={}))
