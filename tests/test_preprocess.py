import json

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import StdDevUncertainty
from specutils import Spectrum

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import CheckpointError, ValidationError
from astro_cl.preprocess import CubePCA, ImageScaler, Preprocessor, build_preprocessor
from astro_cl.preprocess.cube_pca import _fill_along, _nanmedian, der_snr, resample_spectra
from astro_cl.surveys.memory import InMemorySurvey

FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 Angstrom)")


def make_cube_record(gid, *, z=0.02, size=12, n_wave=700, seed=0, young=0.5, with_std=True):
    """A small cube: exponential disc of a two-template spectrum plus noise."""
    rng = np.random.default_rng(seed)
    wave = np.linspace(3650.0, 7500.0, n_wave)
    rest = wave / (1 + z)
    old = (rest / 5500.0) ** 2 * (1 - 0.3 * np.exp(-0.5 * ((rest - 3950) / 30) ** 2))
    yng = (rest / 5500.0) ** -1.5 + 2.0 * np.exp(-0.5 * ((rest - 6563) / 4) ** 2) \
        + 0.7 * np.exp(-0.5 * ((rest - 4861) / 4) ** 2)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    amp = 50.0 * np.exp(-r / 1.5)
    frac = np.clip(young + 0.05 * r, 0, 1)
    spec = (1 - frac)[None] * old[:, None, None] + frac[None] * yng[:, None, None]
    flux = amp[None] * spec
    err = np.full(flux.shape, 0.3)
    flux = flux + err * rng.standard_normal(flux.shape)
    mask = np.zeros(flux.shape, bool)
    mask[100:103, 3, 4] = True
    cube = Spectrum(flux=flux * FLUX_UNIT, spectral_axis=wave * u.AA, spectral_axis_index=0,
                    uncertainty=StdDevUncertainty(err) if with_std else None, mask=mask)
    return GalaxyRecord(id=gid, cube=cube, observing=ObservingMeta(redshift=z),
                        properties={"z": z})


@pytest.fixture(scope="module")
def cube_survey():
    recs = [make_cube_record(f"g{i}", z=0.01 + 0.005 * i, seed=i, young=0.1 + 0.2 * i)
            for i in range(4)]
    return InMemorySurvey(records=recs, default_kind="cube")


def test_resample_linear_and_flux_conserving():
    wave = np.linspace(4000, 5000, 501)
    flux = np.vstack([np.sin(wave / 50.0) + 2, np.full(wave.size, 3.0)]).T
    new = np.arange(4100, 4900, 2.0)
    lin, bad = resample_spectra(wave, flux, new)
    np.testing.assert_allclose(lin[:, 0], np.sin(new / 50.0) + 2, atol=1e-3)
    assert not bad.any()
    fc, _ = resample_spectra(wave, flux, new, method="flux")
    np.testing.assert_allclose(fc[:, 1], 3.0, rtol=1e-10)
    # the integral over the common range is kept
    coarse = np.arange(4101.0, 4899.0, 10.0)
    fc2, _ = resample_spectra(wave, flux, coarse, method="flux")
    sel = (wave > 4096) & (wave <= 4896)
    np.testing.assert_allclose((fc2[:, 0] * 10.0).sum(), (flux[sel, 0] * 2.0).sum(), rtol=2e-3)
    _, bad = resample_spectra(wave, flux, np.array([3990.0, 4500.0]))
    assert bad[0].all() and not bad[1].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 5, 40, 650])
def test_nanmedian_equals_numpy(dtype, n):
    rng = np.random.default_rng(n)
    x = (rng.normal(size=(n, 30, 4)) * 100).astype(dtype)
    x[rng.uniform(size=x.shape) < 0.3] = np.nan
    x[:, 2, 1] = np.nan  # a slice with no number
    if n > 2:
        x[0, 3, 0], x[1, 3, 1] = np.inf, -np.inf
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(x, axis=0)
    got = _nanmedian(x)  # no warning (strict warnings would fail here)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_resample_linear_blocks_equal_one_pass():
    rng = np.random.default_rng(2)
    wave = np.sort(rng.uniform(3500.0, 7500.0, 3000))
    new = np.arange(3700.0, 7300.0, 2.0)  # more rows than one block
    flux = rng.normal(size=(wave.size, 64)).astype(np.float32)
    out, _ = resample_spectra(wave, flux, new)
    i1 = np.clip(np.searchsorted(wave, new), 1, wave.size - 1)
    i0 = i1 - 1
    w1 = np.clip((new - wave[i0]) / (wave[i1] - wave[i0]), 0.0, 1.0)
    expected = (flux[i0] * (1 - w1)[:, None] + flux[i1] * w1[:, None]).astype(np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_fill_along_interpolates_between_good_neighbours():
    values = np.array([[1.0, 5.0, 7.0, 0.0],
                       [9.0, 6.0, 9.0, 0.0],
                       [3.0, 7.0, 9.0, 0.0],
                       [9.0, 8.0, 2.0, 0.0],
                       [7.0, 9.0, 9.0, 0.0]], dtype=np.float32)
    bad = np.zeros(values.shape, bool)
    bad[[1, 3], 0] = True          # interior gaps: linear between neighbours
    bad[:2, 2] = bad[3:, 2] = True  # edges: the nearest good value
    bad[:, 3] = True               # nothing good: zeros
    values[:, 3] = np.nan
    out = _fill_along(values, bad)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], [1, 2, 3, 5, 7])
    np.testing.assert_array_equal(out[:, 1], values[:, 1])  # clean spectra untouched
    np.testing.assert_array_equal(out[:, 2], [9, 9, 9, 9, 9])
    np.testing.assert_array_equal(out[:, 3], 0)


def test_der_snr_matches_known_noise():
    rng = np.random.default_rng(1)
    f = 10.0 + rng.standard_normal((4000, 3))
    snr = der_snr(f)
    np.testing.assert_allclose(snr, 10.0, rtol=0.1)


def test_cube_pca_output_channels_and_region(cube_survey):
    pca = CubePCA(n_components=5, fit_snr=20.0, seed=3).fit(cube_survey)
    assert pca.components_.shape == (5, len(pca.wave_))
    assert pca.wave_[0] == 3739.0 and pca.wave_[1] - pca.wave_[0] == 2.0
    assert pca.wave_[-1] <= 6803.0
    data, mask, std = pca.transform(cube_survey)
    assert data.shape == (4, 6, 12, 12) and data.dtype == np.float32
    assert mask.shape == (4, 1, 12, 12) and std is None
    assert np.isfinite(data).all()
    # the centre is inside the S/N >= 3 region, the corners of this disc are not
    assert not mask[:, 0, 6, 6].any()
    assert mask[:, 0, 0, 0].all()
    # luminosity channel: log10 of a luminosity density in erg/s/A
    lum = data[0, 0, 6, 6]
    assert 36 < lum < 42
    # brighter centre than outskirts inside the region
    assert data[0, 0, 6, 6] > data[0, 0, 6, 9]
    # the young fraction (varying across galaxies) is picked up by the first coefficient
    first = data[:, 1, 6, 6]
    assert np.all(np.diff(first) > 0) or np.all(np.diff(first) < 0)


def test_cube_pca_without_luminosity_channel(cube_survey):
    pca = CubePCA(n_components=4, fit_snr=20.0, luminosity_channel=False).fit(cube_survey)
    full = CubePCA(n_components=4, fit_snr=20.0).fit(cube_survey)
    d1, m1, _ = pca.transform(cube_survey)
    d2, _, _ = full.transform(cube_survey)
    assert d1.shape[1] == 4 and d2.shape[1] == 5
    good = ~m1[:, 0]
    np.testing.assert_allclose(d1[:, :, good[0]][0], d2[:, 1:, good[0]][0], rtol=1e-5, atol=1e-5)


def test_cube_pca_standardize(cube_survey, tmp_path):
    raw = CubePCA(n_components=4, fit_snr=20.0, seed=3).fit(cube_survey)
    std = CubePCA(n_components=4, fit_snr=20.0, seed=3, standardize=True).fit(cube_survey)
    # the statistics are fitted either way, on the channels transform() writes
    np.testing.assert_array_equal(raw.channel_mean_, std.channel_mean_)
    assert raw.channel_mean_.shape == raw.channel_std_.shape == (5,)
    assert 36 < raw.channel_mean_[0] < 42 and np.all(raw.channel_std_ > 0)
    d_raw, mask, _ = raw.transform(cube_survey)
    d_std, mask_std, _ = std.transform(cube_survey)
    np.testing.assert_array_equal(mask, mask_std)
    expected = (d_raw - raw.channel_mean_[None, :, None, None]) \
        / raw.channel_std_[None, :, None, None]
    np.testing.assert_allclose(d_std, expected, rtol=1e-4, atol=1e-4)
    good = ~mask[:, 0]
    inside = d_std.transpose(1, 0, 2, 3)[:, good]  # (C, in-region pixels)
    # order-unity channels inside the region: the luminosity no longer dwarfs the rest
    assert np.all(np.abs(inside.mean(axis=1)) < 1.5)
    assert np.all((inside.std(axis=1) > 0.2) & (inside.std(axis=1) < 5))
    # without the luminosity channel the PCA channels' statistics are used
    nolum = CubePCA(n_components=4, fit_snr=20.0, seed=3, standardize=True,
                    luminosity_channel=False).fit(cube_survey)
    d_nolum = nolum.transform(cube_survey)[0]
    np.testing.assert_allclose(d_nolum.transpose(1, 0, 2, 3)[:, good], inside[1:], rtol=1e-4,
                               atol=1e-4)
    # saved and loaded with the preprocessor
    std.save(tmp_path / "pp")
    back = CubePCA.load(tmp_path / "pp")
    assert back.standardize is True
    np.testing.assert_array_equal(back.transform(cube_survey)[0], d_std)


def test_cube_pca_sky_fill_is_seeded_and_per_galaxy(cube_survey):
    pca = CubePCA(n_components=3, fit_snr=20.0, seed=7).fit(cube_survey)
    a = pca.transform_record(cube_survey[0])[0]
    b = pca.transform_record(cube_survey[0])[0]
    c = pca.transform_record(cube_survey[1])[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:, 0, 0], c[:, 0, 0])


def test_cube_pca_arrays_and_errors(cube_survey):
    rec = cube_survey[0]
    flux = rec.cube.flux.value[None]
    wave = rec.cube.spectral_axis.to_value(u.AA)
    pca = CubePCA(n_components=3, fit_snr=20.0)
    pca.fit(flux, wavelength=wave, redshift=[0.01])
    data, _, _ = pca.transform(flux, wavelength=wave, redshift=[0.01])
    assert data.shape == (1, 4, 12, 12)
    with pytest.raises(ValidationError, match="wavelength"):
        pca.transform(flux)
    with pytest.raises(ValidationError, match="S/N"):
        CubePCA(n_components=3, fit_snr=1e6).fit(cube_survey)
    with pytest.raises(ValidationError, match="not fitted"):
        CubePCA().transform(cube_survey)


def test_cube_pca_without_uncertainty_uses_der_snr():
    recs = [make_cube_record(f"n{i}", seed=i, with_std=False) for i in range(2)]
    pca = CubePCA(n_components=3, fit_snr=10.0).fit(recs)
    data, mask, _ = pca.transform(recs)
    assert data.shape == (2, 4, 12, 12) and not mask[:, 0, 6, 6].any()


def test_save_load_roundtrip_and_checks(tmp_path, cube_survey):
    pca = CubePCA(n_components=3, fit_snr=20.0, luminosity_channel=False).fit(cube_survey)
    pca.save(tmp_path / "pp")
    back = Preprocessor.load(tmp_path / "pp")
    assert isinstance(back, CubePCA) and back.luminosity_channel is False
    np.testing.assert_array_equal(back.transform(cube_survey)[0], pca.transform(cube_survey)[0])
    assert CubePCA.load(tmp_path / "pp").fingerprint() == pca.fingerprint()
    with pytest.raises(CheckpointError, match="not 'image-scaler'"):
        ImageScaler.load(tmp_path / "pp")
    header = json.loads((tmp_path / "pp" / "preprocessor.json").read_text())
    header["version"] = 99
    (tmp_path / "pp" / "preprocessor.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="version"):
        Preprocessor.load(tmp_path / "pp")
    header["version"] = CubePCA.version
    header["arrays_sha256"] = "0" * 64
    (tmp_path / "pp" / "preprocessor.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="checksum"):
        Preprocessor.load(tmp_path / "pp")
    (tmp_path / "pp" / "preprocessor.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        Preprocessor.load(tmp_path / "pp")
    with pytest.raises(CheckpointError, match="no saved"):
        Preprocessor.load(tmp_path / "nothing")


@pytest.mark.parametrize("method", ["asinh", "log"])
def test_image_scaler(method, tmp_path):
    rng = np.random.default_rng(0)
    noise = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    x = rng.standard_normal((6, 5, 20, 20)) * noise[None, :, None, None]
    x[:, :, 8:12, 8:12] += 100 * noise[None, :, None, None]
    sc = ImageScaler(method=method).fit(x)
    np.testing.assert_allclose(sc.noise_, noise, rtol=0.15)
    y, m, s = sc.transform(x, std=np.ones_like(x) * noise[None, :, None, None])
    assert y.dtype == np.float32 and not m.any()
    # standardised per band: median 0 and comparable scatter in every band
    np.testing.assert_allclose(np.median(y, axis=(0, 2, 3)), 0, atol=0.1)
    assert s.shape == x.shape and np.all(s >= 0)
    if method == "asinh":
        np.testing.assert_allclose(sc.inverse_transform(y), x, rtol=1e-4, atol=1e-4)
    sc.save(tmp_path / "s")
    np.testing.assert_array_equal(Preprocessor.load(tmp_path / "s").transform(x)[0], y)


def test_image_scaler_on_real_sdss(shared_data):
    imgs = np.load(shared_data / "sdss" / "sdss_test_images.npy")
    sc = ImageScaler().fit(imgs)
    y, _, _ = sc.transform(imgs)
    assert y.shape == imgs.shape and np.isfinite(y).all()
    assert np.all(sc.noise_ > 0)


def test_build_preprocessor():
    pp = build_preprocessor({"name": "cube-pca", "luminosity_channel": False})
    assert isinstance(pp, CubePCA) and pp.n_channels == 29
    assert CubePCA().n_channels == 30
    with pytest.raises(ValidationError, match="unknown parameters"):
        build_preprocessor({"name": "cube-pca", "bogus": 1})
    with pytest.raises(ValidationError, match="unknown preprocessor 'nope'; available "
                                              "preprocessors: cube-pca, image-scaler"):
        build_preprocessor({"name": "nope"})


class _Scaler(Preprocessor):
    """A minimal array preprocessor: divide by the fitted mean."""

    name = "test-scaler"
    description = "Divide by the fitted mean."
    _state_arrays = ("mean_",)

    def __init__(self, *, flaw=None):
        self.flaw = flaw

    def _fit_arrays(self, X):
        if self.flaw != "no-state":
            noise = np.random.default_rng().normal() if self.flaw == "unseeded-fit" else 0.0
            self.mean_ = np.asarray(np.mean(X) + noise, np.float32)

    def _transform_arrays(self, X):
        out = np.asarray(X, np.float32) / self.mean_
        if self.flaw == "float64":
            out = out.astype(np.float64)
        if self.flaw == "random-transform":
            out = out + np.random.default_rng().normal(size=out.shape).astype(np.float32)
        mask = np.zeros((*out.shape[:1], 2, *out.shape[2:]), bool) if self.flaw == "mask" \
            else np.zeros(out.shape, bool)
        return out, mask, None


def test_check_preprocessor_passes_a_conforming_preprocessor():
    from astro_cl.testing import check_preprocessor

    check_preprocessor(_Scaler(), np.ones((2, 3, 4, 4), np.float32))


@pytest.mark.parametrize(("flaw", "match"), [
    ("no-state", "must set every array of _state_arrays"),
    ("float64", "float32"),
    ("mask", "mask must be boolean"),
    ("random-transform", "same input must give the same output"),
    ("unseeded-fit", "refitting with the same parameters"),
])
def test_check_preprocessor_names_what_is_wrong(flaw, match):
    from astro_cl.testing import check_preprocessor

    X = np.random.default_rng(0).lognormal(size=(2, 3, 4, 4)).astype(np.float32)
    with pytest.raises(AssertionError, match=match):
        check_preprocessor(_Scaler(flaw=flaw), X)


def test_check_preprocessor_wants_an_unfitted_preprocessor():
    from astro_cl.testing import check_preprocessor

    X = np.ones((2, 3, 4, 4), np.float32)
    with pytest.raises(AssertionError, match="give an unfitted preprocessor"):
        check_preprocessor(_Scaler().fit(X), X)
