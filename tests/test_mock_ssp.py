"""The SSP basis of the mocks: the MaStar grid, star-formation histories, age and [Z/H] ranges."""

import numpy as np
import pytest

from astro_cl.exceptions import AstroCLWarning
from astro_cl.surveys.mock import spectra, ssp
from astro_cl.surveys.mock.population import draw_galaxy, draw_population
from astro_cl.surveys.mock.render import CubeRenderer
from astro_cl.surveys.mock.structure import build_state, history_table


@pytest.fixture(scope="module")
def basis():
    return spectra.load_basis()


def test_the_default_basis_is_the_mastar_grid(basis):
    assert basis.kind == "ssp" and basis.cell_map is None
    assert basis.n_templates == ssp.SFH_AGES.size * ssp.SFH_ZH.size == 54
    assert basis.age.min() == pytest.approx(10**-2.5) and basis.age.max() == 14.0
    assert basis.log_z.min() == pytest.approx(-1.35) and basis.log_z.max() == pytest.approx(0.35)
    # age-major cells, as the histories are binned
    assert np.allclose(basis.age.reshape(9, 6), ssp.SFH_AGES[:, None])
    assert np.allclose(basis.log_z.reshape(9, 6), ssp.SFH_ZH[None, :])
    assert np.all(np.isfinite(basis.flux)) and np.all(basis.flux > 0)
    # the u and z bands at z = 0.005-0.08 need 2760-11200 A in the rest frame
    assert basis.wave[0] <= 2760 and basis.wave[-1] >= 11200


def test_luminosity_per_mass_falls_with_age_and_metallicity(basis):
    """M11 normalisation: 5500 A luminosity per solar mass formed drops ~2.5 dex from 3 Myr to
    14 Gyr, and with [Z/H] at old ages; 14 Gyr solar matches M11-MILES (10^28.69 erg/s/A)."""
    win = (basis.wave > 5400) & (basis.wave < 5600)
    log_l = np.log10(basis.flux[:, win].mean(axis=1) * 4 * np.pi * ssp._PC10_CM**2).reshape(9, 6)
    assert np.all(np.diff(log_l, axis=0) < 0)
    assert np.all(np.diff(log_l[-1]) < 0)
    assert log_l[-1, 4] == pytest.approx(28.69, abs=0.03)
    assert 2.2 < log_l[0, 4] - log_l[-1, 4] < 3.2


def test_surviving_mass_of_a_salpeter_population():
    """Stars + remnants per solar mass formed: ~0.96 at 3 Myr, 0.70-0.72 at 13 Gyr (M05: ~0.70)."""
    f = ssp.surviving_fraction(np.array([0.003, 1.0, 13.0]))
    assert f[0] == pytest.approx(0.96, abs=0.01)
    assert 0.69 < f[2] < 0.73
    assert np.all(np.diff(ssp.surviving_fraction(ssp.SFH_AGES)) < 0)


def test_vacuum_to_air():
    """H-alpha: 6564.61 A in vacuum is 6562.80 A in air."""
    assert ssp.vacuum_to_air(6564.61) == pytest.approx(6562.80, abs=0.01)


def test_history_tables_are_ordered_and_normalised():
    for kind, args in (("active", (12.0, 3.0)), ("quenched", (13.0, 1.5, 4.0))):
        ssfr, bins = history_table(*args, kind=kind)
        assert np.all(np.diff(ssfr) > 0)
        assert np.allclose(bins @ ssp.surviving_fraction(ssp.SFH_AGES), 1.0)
        assert ssfr[0] < 1e-13 and ssfr[-1] > 1e-9  # from quiescent to starburst
    # nothing forms before the Big Bang, nor before t_form
    _, bins = history_table(2.0, 1.0, kind="active")
    assert np.all(bins[:, ssp.SFH_EDGES[:-1] >= 2.0] == 0)


def _spans(n, seed):
    states = [build_state(p, (24, 24), 1.0) for p in draw_population(n, seed, fov_arcsec=24)]
    ages = np.array([s.summary["Age_MW_int"] for s in states])
    zh = np.array([s.summary["ZH_MW_int"] for s in states])
    return ages, zh


def test_age_and_metallicity_spans_200_galaxies():
    """200 galaxies (24 x 24 pixels of 1", ~2 s) span ~1-13 Gyr in mass-weighted age and ~-1 to +0.3 in [Z/H]
    (measured, seed 0: 0.85-12.4 Gyr and -1.30 to +0.34)."""
    ages, zh = _spans(200, 0)
    assert ages.min() < 1.5 and ages.max() > 12.0
    assert zh.min() < -1.0 and zh.max() > 0.3
    # not only the extremes: a real spread between galaxies
    assert np.std(np.log10(ages)) > 0.15 and np.std(zh) > 0.25


@pytest.mark.parametrize(("seed", "index"), [(0, 1), (0, 2), (1, 5)])
def test_independent_fit_recovers_age_and_metallicity(basis, seed, index):
    """NNLS on the same SSP grid, with A_V fitted (a scan, then Brent; not the truth's),
    recovers each spaxel's mass-weighted age within 0.03 dex and [Z/H] within 0.03 dex from
    a noise-free cube with the lines masked (measured, 4 galaxies: 0.005 and 0.012 dex)."""
    from scipy.optimize import minimize_scalar, nnls

    p = draw_galaxy(seed, index)
    cr = CubeRenderer(noise=False, hexagon=False, star_rate=0, psf_fwhm=1e-3)
    state = build_state(p, (8, 8), cr.pixel_scale)
    cube = cr.render(state)["model"].reshape(cr.n_wave, -1).T.astype(float) * 1e-16
    wave = cr.wave
    templates = spectra.observed_templates(state.z, wave)
    mask = np.ones(wave.size, bool)
    for centre in spectra.LINES.values():
        mask &= np.abs(wave - centre * (1 + state.z)) > 15
    coarse = np.arange(0.0, 1.6, 0.04)
    for pix in (0, 27, 36):
        y = cube[pix][mask]

        def solve(av, y=y):
            a = (templates * spectra.attenuation(state.z, wave, [av])[0])[:, mask].T
            scale = y.max() / a.max()
            w, resid = nnls(a * scale, y)
            return resid, w * scale

        best = coarse[int(np.argmin([solve(av)[0] for av in coarse]))]
        fine = minimize_scalar(lambda av, solve=solve: solve(av)[0], method="bounded",
                               bounds=(max(best - 0.04, 0.0), best + 0.04),
                               options={"xatol": 1e-4})
        w = solve(fine.x)[1]
        m = w * basis.mremain
        age = np.log10(m @ basis.age / m.sum())
        zh = np.log10(m @ basis.metallicity / m.sum() / ssp.Z_SUN)
        assert age == pytest.approx(np.log10(state.truth["age_mw"].ravel()[pix]), abs=0.03)
        assert zh == pytest.approx(state.truth["metallicity"].ravel()[pix], abs=0.03)


def test_fallback_to_kcorrect_warns(monkeypatch):
    """Without sdss-mangadap the mocks still run, on kcorrect's templates, and say so."""
    ssp.load_basis.cache_clear()
    monkeypatch.setattr(ssp, "grid_directory", lambda: None)
    try:
        with pytest.warns(AstroCLWarning, match="MaStar SSP grid"):
            fallback = ssp.load_basis()
        assert fallback.kind == "kcorrect" and fallback.n_templates == 5
        assert fallback.cell_map.shape == (54, 5)
        assert np.allclose(fallback.cell_map.sum(axis=1), 1.0)
        state = build_state(draw_galaxy(0, 3), (16, 16), 0.5)
        # the truth is still what made the pixels: masses and SFR match the request
        total = state.truth["stellar_mass"].sum() * state.kpc_per_pixel**2
        assert np.log10(total) == pytest.approx(state.summary["log_Mass"], abs=1e-6)
        # ...but the ages are those of the five templates
        assert state.truth["age_mw"].max() <= fallback.age.max() + 1e-9
    finally:
        ssp.load_basis.cache_clear()
