"""Renderers of the mock surveys: records, conservation, cube/image consistency, painting."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData

from astro_cl.data.record import GalaxyRecord
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.mock import spectra
from astro_cl.surveys.mock.population import draw_galaxy
from astro_cl.surveys.mock.render import CubeRenderer, ImageRenderer
from astro_cl.surveys.mock.structure import build_state, compose, state_from_maps
from astro_cl.surveys.sdss_mock import SDSSMockSurvey


def test_sdss_record():
    survey = SDSSMockSurvey(n=3, seed=2, size=32)
    rec = survey[1]
    assert isinstance(rec, GalaxyRecord)
    assert rec.images.data.shape == (5, 32, 32)
    assert rec.images.unit == u.nanomaggy
    assert rec.bands == ("u", "g", "r", "i", "z")
    for name in ("stellar_mass", "metallicity", "age_mw", "sfr", "gas_mass", "gas_metallicity"):
        assert name in rec.maps and rec.maps[name].data.shape == (32, 32)
    assert rec.maps["stellar_mass"].unit == u.Msun / u.kpc**2
    assert rec.observing.pixel_scale == 0.396 * u.arcsec / u.pix
    assert rec.id == survey.ids[1]


def test_ecalifa_record():
    survey = ECALIFAMockSurvey(n=2, seed=2, size=16)
    rec = survey[0]
    flux = rec.cube.flux
    assert flux.shape == (1877, 16, 16)
    assert rec.cube.spectral_axis_index == 0
    wave = rec.cube.spectral_axis.to_value(u.AA)
    assert wave[0] == pytest.approx(3749) and wave[-1] == pytest.approx(7501)
    assert rec.cube.mask.shape == flux.shape and rec.cube.mask.any()  # hexagon corners
    assert rec.star_mask.shape == (16, 16)
    assert "ew_ha" in rec.maps


def test_catalogue_same_with_threads(monkeypatch):
    import astro_cl.surveys.mock.survey as mock_survey

    monkeypatch.setattr(mock_survey, "_CATALOGUE_WORKERS", 1)
    serial = SDSSMockSurvey(n=12, seed=4, size=24).catalogue
    monkeypatch.setattr(mock_survey, "_CATALOGUE_WORKERS", 3)
    threaded = SDSSMockSurvey(n=12, seed=4, size=24).catalogue
    assert serial.colnames == threaded.colnames
    for name in serial.colnames:
        np.testing.assert_array_equal(np.asarray(serial[name]), np.asarray(threaded[name]))


def test_stellar_mass_map_sums_to_catalogue():
    survey = SDSSMockSurvey(n=6, seed=5, size=48)
    for i in range(len(survey)):
        state = survey._state(survey._params(i))
        total = state.truth["stellar_mass"].sum() * state.kpc_per_pixel**2
        logm = survey.catalogue["log_Mass"][i].physical.to_value(u.Msun)
        assert total == pytest.approx(logm, rel=1e-2)


def test_compact_galaxy_holds_its_total_mass():
    params = draw_galaxy(0, 0) | {"z": 0.08, "re_kpc": 1.0, "re_disc_kpc": 1.2,
                                  "re_bulge_kpc": 0.3, "bt": 0.3, "n_bulge": 2.5}
    state = build_state(params, (96, 96), 0.396)
    total = state.truth["stellar_mass"].sum() * state.kpc_per_pixel**2
    assert np.log10(total) == pytest.approx(params["log_mass_total"], abs=0.0043)  # 1 %


def test_cube_through_r_band_matches_image():
    params = draw_galaxy(1, 7) | {"z": 0.06}
    ir, cr = ImageRenderer(noise=False), CubeRenderer(noise=False)
    img = ir.render(build_state(params, (128, 128), ir.pixel_scale))["model"]
    cube = cr.render(build_state(params, (96, 96), cr.pixel_scale))["model"]
    spec = cube.sum(axis=(1, 2)).astype(float) * 1e-16
    for b, band in ((1, "g"), (2, "r")):
        via_cube = spectra.maggies_matrix(spec[None], cr.wave, band)[0] * 1e9
        assert via_cube == pytest.approx(img[b].sum(), rel=0.03)


def test_noise_matches_uncertainty():
    params = draw_galaxy(2, 3)
    ir = ImageRenderer(star_rate=0, bad_column_rate=0)
    out = ir.render(build_state(params, (64, 64), ir.pixel_scale), np.random.default_rng(0))
    pulls = (out["data"] - out["model"]) / out["std"]
    assert np.std(pulls) == pytest.approx(1.0, abs=0.05)
    assert out["std"][2].min() == pytest.approx(ir.sky_sigma("r"), rel=0.05)


def test_truth_is_what_made_the_pixels():
    """The H-alpha flux in the cube is the Kennicutt flux of the truth SFR map, attenuated."""
    params = draw_galaxy(3, 1) | {"log_sfr_total": 0.3, "log_mass_total": 10.0}
    cr = CubeRenderer(noise=False, hexagon=False, star_rate=0)
    state = build_state(params, (40, 40), cr.pixel_scale)
    cube = cr.render(state)["model"].sum(axis=(1, 2)).astype(float) * 1e-16
    ha = 6562.8 * (1 + state.z)
    on = np.abs(cr.wave - ha) < 8
    off = (np.abs(cr.wave - ha) > 40) & (np.abs(cr.wave - ha) < 70)
    measured = (cube[on].sum() - on.sum() * np.median(cube[off])) * cr.wave_step
    sfr_pix = state.truth["sfr"].ravel() * state.kpc_per_pixel**2
    att = 10 ** (-0.4 * state.av_gas * spectra.calzetti_k(6562.8) / 4.05)
    dl_cm = spectra.luminosity_distance(state.z) * 3.0856775814913673e24
    expected = np.sum(sfr_pix * att) / 10**spectra.KENNICUTT_HA / (4 * np.pi * dl_cm**2)
    assert measured == pytest.approx(expected, rel=0.1)


def test_compose_hits_target_ssfr():
    b = spectra.load_basis()
    ssfr = np.array([1e-12, 1e-11, 1e-10, 5e-10])
    mix = compose(ssfr, np.zeros(4), np.full(4, 0.8))
    achieved = (mix @ b.m300) / 3e8 / (mix @ b.mremain)
    assert np.allclose(achieved, ssfr, rtol=1e-6)
    assert np.allclose(mix.sum(axis=1), 1)


def test_paint_external_truth():
    yy, xx = np.indices((32, 32))
    r = np.hypot(yy - 15.5, xx - 15.5)
    mass = 1e9 * np.exp(-r / 4)  # Msun/kpc2
    age = 4.8 + 1.5 * (r < 6)  # Gyr: old centre, younger disc (within the basis range)
    maps = {"stellar_mass": NDData(mass, unit=u.Msun / u.kpc**2),
            "age_mw": NDData(age, unit=u.Gyr),
            "sfr": NDData(mass * 1e-10, unit=u.Msun / u.yr / u.kpc**2)}
    state = state_from_maps(maps, z=0.03, pixel_scale=0.396)
    assert np.allclose(state.truth["stellar_mass"], mass, rtol=1e-6)
    assert np.allclose(state.truth["age_mw"], age, atol=0.05)
    assert np.allclose(state.truth["sfr"], mass * 1e-10, rtol=1e-3)
    out = ImageRenderer(noise=False, star_rate=0).render(state)
    assert out["model"].shape == (5, 32, 32) and np.all(np.isfinite(out["model"]))


def test_paint_rejects_bad_units():
    from astro_cl.exceptions import ValidationError

    maps = {"stellar_mass": NDData(np.ones((4, 4)), unit=u.Jy)}
    with pytest.raises(ValidationError, match="stellar_mass"):
        state_from_maps(maps, z=0.03, pixel_scale=0.396)
