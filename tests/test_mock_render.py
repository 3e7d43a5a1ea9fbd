"""Renderers of the mock surveys: records, conservation, cube/image consistency, morphology."""

import astropy.units as u
import numpy as np
import pytest

from astro_cl.data.record import GalaxyRecord
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.mock import spectra
from astro_cl.surveys.mock.population import draw_galaxy
from astro_cl.surveys.mock.render import (
    CubeRenderer,
    ImageRenderer,
    dust_expansion,
    weight_factors,
)
from astro_cl.surveys.mock.structure import build_state
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


def test_bar_and_arms_keep_the_mass():
    """Bars are normalised analytically and arms average to zero around the disc."""
    base = draw_galaxy(0, 4) | {"z": 0.03, "bt": 0.1, "bar_frac": 0.0, "arms": 0}
    barred = base | {"bar": 2, "bar_frac": 0.15, "bar_len": 0.8, "bar_q": 0.3, "bar_angle": 30.0,
                     "arms": 2, "arm_pitch": 15.0, "arm_amp_mass": 0.2, "arm_amp_sf": 0.8,
                     "arm_phase": 0.0}
    masses = [build_state(p, (128, 128), 0.396).summary["log_Mass"] for p in (base, barred)]
    assert masses[1] == pytest.approx(masses[0], abs=0.005)


def test_spiral_arms_hold_the_young_stars():
    """Arms are where star formation (H-alpha) concentrates, more than the mass does."""
    p = draw_galaxy(0, 4) | {"z": 0.02, "bt": 0.05, "bar_frac": 0.0, "q_disc": 1.0, "arms": 2,
                             "arm_pitch": 20.0, "arm_amp_mass": 0.1, "arm_amp_sf": 0.9,
                             "arm_phase": 0.0, "clumps": [], "sfms_state": "BC",
                             "log_sfr_total": 0.5, "log_mass_total": 10.3}
    state = build_state(p, (64, 64), 0.5)
    ha = state.lines10[:, list(spectra.LINES).index("Halpha")].reshape(64, 64)
    mass = state.truth["stellar_mass"]
    yy, xx = np.indices(mass.shape) - 31.5
    ring = np.abs(np.hypot(xx, yy) - 14) < 0.5  # face-on: one radius, all azimuths

    def contrast(m):
        v = m[ring]
        return v.max() / v.min()

    # measured: SFR 29, H-alpha 8.4 (dust in the arms tempers it), mass 1.5
    assert contrast(state.truth["sfr"]) > 10 * contrast(mass)
    assert contrast(ha) > 2 * contrast(mass)
    assert contrast(mass) > 1.2
    # the young stars are where the lines are: lower light-weighted age on the arms
    arm = ring & (ha > np.percentile(ha[ring], 75))
    inter = ring & (ha < np.percentile(ha[ring], 25))
    assert state.truth["age_lw"][arm].mean() < 0.8 * state.truth["age_lw"][inter].mean()


def test_cube_through_r_band_matches_image():
    params = draw_galaxy(1, 7) | {"z": 0.06}
    ir, cr = ImageRenderer(noise=False), CubeRenderer(noise=False)
    img = ir.render(build_state(params, (128, 128), ir.pixel_scale))["model"]
    cube = cr.render(build_state(params, (96, 96), cr.pixel_scale))["model"]
    spec = cube.sum(axis=(1, 2)).astype(float) * 1e-16
    for b, band in ((1, "g"), (2, "r")):
        via_cube = spectra.maggies_matrix(spec[None], cr.wave, band)[0] * 1e9
        assert via_cube == pytest.approx(img[b].sum(), rel=0.03)


def test_cube_factorisations_are_accurate():
    """Low-rank weights (1e-4) and dust expansion (1e-3) reproduce the direct spectra."""
    params = draw_galaxy(0, 2)
    cr = CubeRenderer(noise=False, psf_fwhm=1e-3, hexagon=False, star_rate=0)
    state = build_state(params, (16, 16), cr.pixel_scale)
    a, mix = weight_factors(state.weights)
    rel = np.linalg.norm(state.weights - a @ mix, axis=1) / np.linalg.norm(state.weights, axis=1)
    assert rel.max() <= 1e-4 and mix.shape[0] < state.weights.shape[1]
    direct = ((state.weights @ spectra.observed_templates(state.z, cr.wave))
              * spectra.attenuation(state.z, cr.wave, state.av_stellar)[np.arange(256), :])
    g, _ = dust_expansion(state.z, cr.wave, state.av_stellar)
    assert g.shape[1] <= 6
    lines = spectra.line_profiles(state.z, np.append(cr.wave - 1, cr.wave[-1] + 1), cr.fwhm)
    model = cr.render(state)["model"].reshape(cr.n_wave, -1).T * 1e-16
    stars = model - state.lines10 @ (lines * spectra._dimming(state.z))
    assert np.max(np.abs(stars - direct) / direct.max(axis=1, keepdims=True)) < 2e-3


def test_noise_matches_uncertainty():
    params = draw_galaxy(2, 3)
    ir = ImageRenderer(star_rate=0, bad_column_rate=0)
    out = ir.render(build_state(params, (64, 64), ir.pixel_scale), np.random.default_rng(0))
    pulls = (out["data"] - out["model"]) / out["std"]
    assert np.std(pulls) == pytest.approx(1.0, abs=0.05)
    assert out["std"][2].min() == pytest.approx(ir.sky_sigma("r"), rel=0.05)


def test_truth_is_what_made_the_pixels():
    """The cube's H-alpha flux is the Kennicutt flux of the truth SFR map plus the diffuse gas
    of evolved stars, both attenuated, within 10 per cent."""
    params = draw_galaxy(3, 1) | {"log_sfr_total": 0.3, "log_mass_total": 10.0,
                                  "sfms_state": "BC"}
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
    i_ha = list(spectra.LINES).index("Halpha")
    dig = state.lines10_dig[:, i_ha].sum() * spectra._dimming(state.z)
    assert 0 < dig < 0.1 * expected  # a star-forming galaxy: the old stars' gas is minor
    assert measured == pytest.approx(expected + dig, rel=0.1)


def test_quenched_galaxies_shine_by_their_old_stars():
    """Red-sequence H-alpha is mostly the evolved stars' diffuse gas: EW 0.5-1.5 A, LINER-like."""
    params = draw_galaxy(0, 0) | {"sfms_state": "RS", "log_mass_total": 10.8,
                                  "log_sfr_total": -2.3, "t_quench": 5.0}
    state = build_state(params, (32, 32), 0.5)
    i_ha = list(spectra.LINES).index("Halpha")
    frac = state.lines10_dig[:, i_ha].sum() / state.lines10[:, i_ha].sum()
    assert frac > 0.5
    assert -1.6 < state.summary["EW_Ha_cen"] < -0.4
    assert state.summary["log_NII_Ha_cen"] > -0.1


def test_ecalifa_mock_pixel_scale_sets_the_field_and_the_wcs(tmp_path):
    """pixel_scale= widens the field at a fixed size: the records, the WCS and the files agree."""
    import astropy.units as u

    from astro_cl.exceptions import ValidationError
    from astro_cl.surveys.ecalifa import ECALIFASurvey
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    fine = ECALIFAMockSurvey(n=2, seed=3, size=16)
    coarse = ECALIFAMockSurvey(n=2, seed=3, size=16, pixel_scale=2.0)
    assert fine.fov_arcsec == 8.0 and coarse.fov_arcsec == 32.0
    rec = coarse[0]
    assert rec.observing.pixel_scale == 2.0 * u.arcsec / u.pix
    cdelt = rec.cube.wcs.celestial.wcs.cdelt
    assert abs(cdelt[0]) * 3600 == pytest.approx(2.0) and abs(cdelt[1]) * 3600 == pytest.approx(2.0)
    # the fingerprint (cache key) tells the two apart
    assert fine.fingerprint() != coarse.fingerprint()
    coarse.write(tmp_path, progress=False)
    back = ECALIFASurvey(path=tmp_path)[0]
    assert back.observing.pixel_scale.to_value(u.arcsec / u.pix) == pytest.approx(2.0)
    for bad in (0.01, 10, "wide", True):
        with pytest.raises(ValidationError, match="pixel_scale: expected 0.1-5 arcsec"):
            ECALIFAMockSurvey(n=1, pixel_scale=bad)
