"""Population draws of the mock surveys: determinism and the published relations."""

import numpy as np
import pytest

from astro_cl.surveys.mock.population import (
    ENVIRONMENTS,
    draw_galaxy,
    draw_population,
    half_mass_radius,
    sfms,
    sfms_class,
)


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
    assert logm.min() >= 8.5 and logm.max() <= 11.8
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
    assert quenched[logm > 10.8].mean() > quenched[logm < 9.8].mean() + 0.4
    mid = (logm > 9.8) & (logm < 10.9)
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
