"""Population draws of the mock surveys: determinism and the published relations."""

import numpy as np
import pytest

from astro_cl.exceptions import ValidationError
from astro_cl.surveys.mock.population import (
    ENVIRONMENTS,
    draw_galaxy,
    draw_population,
    half_mass_radius,
    sfms,
    sfms_class,
)
from astro_cl.surveys.mock.spectra import kpc_per_arcsec


@pytest.fixture(scope="module")
def population():
    return draw_population(1500, seed=11)


def test_galaxy_depends_only_on_seed_and_index():
    a = draw_population(5, seed=3)
    b = draw_population(3, seed=3, start=2)
    assert a[2:] == b
    assert draw_galaxy(3, 4) == a[4]
    assert draw_galaxy(4, 4) != a[4]


def test_ranges(population):
    logm = np.array([p["log_mass_total"] for p in population])
    z = np.array([p["z"] for p in population])
    assert logm.min() >= 8.0 and logm.max() <= 12.0
    assert z.min() >= 0.005 and z.max() <= 0.08
    assert {p["environment"] for p in population} == set(ENVIRONMENTS)


def test_main_sequence_scatter(population):
    bc = [p for p in population if p["sfms_state"] == "BC"]
    offsets = np.array([p["log_sfr_total"] - sfms(p["log_mass_total"]) for p in bc])
    assert abs(np.median(offsets)) < 0.05
    assert 0.22 < np.std(offsets) < 0.32  # 0.3 dex drawn, clipped at -0.65 dex
    classes = sfms_class([p["log_mass_total"] for p in population],
                         [p["log_sfr_total"] for p in population])
    assert np.array_equal(classes, [p["sfms_state"] for p in population])


def test_quenching_depends_on_mass_and_environment(population):
    logm = np.array([p["log_mass_total"] for p in population])
    quenched = np.array([p["sfms_state"] != "BC" for p in population])
    env = np.array([p["environment"] for p in population])
    assert quenched[logm > 11.0].mean() > quenched[logm < 10.0].mean() + 0.4
    mid = (logm > 10.0) & (logm < 11.1)
    assert quenched[mid & (env == "cluster")].mean() > quenched[mid & (env == "void")].mean() + 0.15


def test_morphology_follows_bulge_fraction_and_quenching(population):
    bt = np.array([p["bt"] for p in population])
    early = np.array([p["type"].startswith(("E", "S0")) for p in population])
    quenched = np.array([p["sfms_state"] != "BC" for p in population])
    assert bt[early].mean() > bt[~early].mean() + 0.3
    assert quenched[early].mean() > 0.9


def test_mass_size_relation(population):
    logm = np.array([p["log_mass_total"] for p in population])
    re = np.log10([p["re_kpc"] for p in population])
    slope = np.polyfit(logm, re, 1)[0]
    assert 0.1 < slope < 0.5


def test_half_mass_radius_of_pure_components():
    assert half_mass_radius(0.0, 4.0, 1.0, 3.0) == pytest.approx(3.0, rel=2e-3)
    assert half_mass_radius(1.0, 4.0, 1.5, 3.0) == pytest.approx(1.5, rel=2e-3)


def test_unknown_selection_is_refused():
    with pytest.raises(ValidationError, match="selection"):
        draw_galaxy(0, 0, selection="volume")


def test_diameter_selection_matches_ecalifa(shared_data, population):
    """Masses and sizes follow the eCALIFA catalogue (KS < 0.08; measured 0.03 and 0.04 on
    800 galaxies; calibrated on it), and so do the shares of the Hubble types (within 0.1)."""
    from astropy.table import QTable
    from scipy.stats import ks_2samp

    table = QTable.read(shared_data / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
    mass, size = table["log_Mass"].value, table["Re_kpc"].value
    ok = np.isfinite(mass) & np.isfinite(size)
    logm = np.array([p["log_mass_total"] for p in population])
    re = np.array([p["re_kpc"] for p in population])
    assert ks_2samp(logm, mass[ok]).statistic < 0.08
    assert ks_2samp(np.log10(re), np.log10(size[ok])).statistic < 0.08

    def groups(types):
        types = np.asarray(types).astype(str)
        early = np.char.startswith(types, "E")
        lenticular = np.isin(types, ["S0", "S0a"])
        return np.array([early.mean(), lenticular.mean(), (~early & ~lenticular).mean()])

    real = groups(table["type"])
    assert np.allclose(groups([p["type"] for p in population]), real, atol=0.1)


@pytest.fixture(scope="module")
def flux_population():
    return draw_population(800, seed=11, fov_arcsec=64 * 0.396, selection="flux")


def test_flux_selection_holds_large_massive_quenched_galaxies_at_low_redshift(flux_population):
    """SDSS-like cutouts (r < 17.77, z < 0.08) include massive red galaxies nearby: more than
    2 per cent have log M > 11, are quenched, lie at z < 0.04 and have half-mass radii above
    15 pixels of 0.396" (the painted Illustris galaxies had 12-22 px); the diameter-selected
    eCALIFA-like population put its large galaxies at high redshift instead."""
    logm = np.array([p["log_mass_total"] for p in flux_population])
    z = np.array([p["z"] for p in flux_population])
    quenched = np.array([p["sfms_state"] != "BC" for p in flux_population])
    re_px = np.array([p["re_kpc"] for p in flux_population]) / kpc_per_arcsec(z) / 0.396
    big = (logm > 11) & quenched & (z < 0.04) & (re_px > 15)
    assert big.mean() > 0.02
    assert np.percentile(re_px, 90) > 15


def test_flux_selection_redshifts_follow_sdss(flux_population):
    """Redshifts of real SDSS galaxies (kcorrect's test set) by construction: KS < 0.1."""
    from scipy.stats import ks_2samp

    from astro_cl.surveys.mock.population import _sdss_sample

    z = np.array([p["z"] for p in flux_population])
    assert ks_2samp(z, _sdss_sample()[0]).statistic < 0.1


def test_bars_and_arms_by_type(population):
    """Bars in roughly half the spirals (CALIFA: 40-65 per cent by type), none in ellipticals;
    spiral arms in every Sa-Sdm, none in E/S0; pitch angles open from Sa to Sd."""
    types = np.array([p["type"] for p in population])
    spiral = np.isin(types, ["Sa", "Sab", "Sb", "Sbc", "Sc", "Scd", "Sd", "Sdm"])
    elliptical = np.char.startswith(types, "E")
    bars = np.array([p["bar"] for p in population])
    arms = np.array([p["arms"] for p in population])
    assert 0.35 < (bars[spiral] > 0).mean() < 0.75
    assert not bars[elliptical].any() and not arms[elliptical | (types == "S0")].any()
    assert (arms[spiral] >= 2).all()
    pitch = np.array([p["arm_pitch"] for p in population])
    assert pitch[np.isin(types, ["Sa", "Sab"])].mean() + 5 < pitch[np.isin(types, ["Sd", "Sdm"])].mean()


def test_twin_reads_ellip_as_the_eccentricity():
    """eCALIFA's ``ellip`` is sqrt(1 - (b/a)**2) (the study's table calls it ``ecc``).

    Read as 1 - b/a it made the median twin galaxy 80 degrees inclined; the mock
    catalogue writes the same definition, so a mock's row twins back to its
    own axis ratio.
    """
    from astropy.table import QTable

    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.surveys.mock.population import twin_population

    ellip = [0.0, 0.6, 0.8]
    cat = QTable({"log_Mass": [10.5] * 3, "z": [0.02] * 3, "type": ["Sc"] * 3, "ellip": ellip})
    q = [p["q_disc"] for p in twin_population(cat, seed=0)]
    np.testing.assert_allclose(q, np.sqrt(1 - np.square(ellip)), atol=1e-6)
    mock = ECALIFAMockSurvey(n=6, size=16, seed=4).catalogue
    again = twin_population(mock, seed=4)
    observed_q = np.sqrt(1 - np.asarray(mock["ellip"], float) ** 2)
    np.testing.assert_allclose([p["q_disc"] for p in again], np.clip(observed_q, 0.2, 1),
                               atol=0.02)
