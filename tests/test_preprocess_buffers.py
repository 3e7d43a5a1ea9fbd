"""CubePCA without cube-sized temporaries: the same numbers, and the caller's arrays untouched."""

import numpy as np
import pytest

from astro_cl.preprocess import CubePCA
from astro_cl.preprocess.cube_pca import _interp_weights, _resample_cube, resample_spectra
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey


def _whole_cube(flux, mask, std, wave, grid):
    """The cleaning and resampling as CubePCA did it on whole cubes (the reference)."""
    lum = flux.astype(np.float32)
    bad = mask | ~np.isfinite(lum)
    lum = np.where(bad, 0.0, lum).astype(np.float32)
    res, bad_r = resample_spectra(wave, lum, grid, mask=bad)
    var = std.astype(np.float32) ** 2
    var = np.where(bad, 0.0, var).astype(np.float32)
    var_r, _ = resample_spectra(wave, var, grid, mask=bad)
    return res, bad_r, var_r


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wavelength_innermost", [False, True])
def test_block_resampling_equals_whole_cube_resampling(dtype, wavelength_innermost):
    rng = np.random.default_rng(4)
    n_l, n = 300, 37
    wave = 4000.0 * 10 ** (1e-4 * np.arange(n_l))  # log-spaced, as MaNGA
    grid = np.arange(3990.0, wave[-1] + 30.0, 2.0)  # past both ends: outside pixels
    flux = rng.normal(1.0, 0.3, (n_l, n)).astype(dtype)
    flux[rng.random(flux.shape) < 0.01] = np.nan
    flux[5, 3] = np.inf
    mask = rng.random((n_l, n)) < 0.02
    mask[:, 0] = True
    if wavelength_innermost:  # as specutils keeps a cube's mask
        mask = np.ascontiguousarray(mask.T).T
    std = rng.uniform(0.1, 0.2, (n_l, n)).astype(dtype)
    before = flux.copy()
    res_ref, bad_ref, var_ref = _whole_cube(flux, mask, std, wave, grid)
    weights = _interp_weights(wave, grid)
    res, bad, var = _resample_cube(flux, mask, weights)
    assert var is None and res.dtype == np.float32
    np.testing.assert_array_equal(res, res_ref)
    np.testing.assert_array_equal(bad, bad_ref)
    assert bad[0].all() and bad[-1].all() and bad[:, 0].all()
    win = (grid > 4300.0) & (grid < 4400.0)
    none, bad_win, var_win = _resample_cube(flux, mask, tuple(v[win] for v in weights), std=std,
                                            with_flux=False)
    assert none is None
    np.testing.assert_array_equal(var_win, var_ref[win])
    np.testing.assert_array_equal(bad_win, bad_ref[win])
    np.testing.assert_array_equal(flux, before)


def test_transform_leaves_the_cube_untouched():
    survey = ECALIFAMockSurvey(n=4, seed=2, size=10)
    pca = CubePCA(n_components=3, fit_snr=3.0, max_spectra_per_galaxy=30).fit(
        [survey[i] for i in range(3)])
    record = survey[3]
    # masked voxels with flux (the renderer writes zeros there): cleaning them in place shows
    corner = np.moveaxis(np.asarray(record.cube.mask), record.cube.spectral_axis_index, 0)[:, 0, 0]
    assert corner.all()
    np.moveaxis(record.cube.flux.value, record.cube.spectral_axis_index, 0)[:, 0, 0] = 5.0
    flux = np.array(record.cube.flux.value)
    error = np.array(record.cube.uncertainty.array)
    first = pca.transform_record(record)[0]
    np.testing.assert_array_equal(record.cube.flux.value, flux)
    np.testing.assert_array_equal(record.cube.uncertainty.array, error)
    np.testing.assert_array_equal(pca.transform_record(record)[0], first)
