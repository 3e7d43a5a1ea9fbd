import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData

from astro_cl.exceptions import AstroCLWarning, ValidationError
from astro_cl.tasks import PICASSSO_REFERENCE, MapMetrics, fit_ellipses, stack_maps


def _galaxies(n=12, size=48, seed=0):
    """Exponential discs with known centre, axis ratio, orientation and scale length."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    xc, yc = rng.uniform(20, 28, n), rng.uniform(20, 28, n)
    q, theta = rng.uniform(0.4, 0.9, n), rng.uniform(0.1, 3.0, n)
    scale = rng.uniform(2.5, 4.0, n)
    dx, dy = xx - xc[:, None, None], yy - yc[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    r = np.sqrt((dx * c + dy * s) ** 2 + ((-dx * s + dy * c) / q[:, None, None]) ** 2)
    mass = 1e8 * np.exp(-r / scale[:, None, None])
    mass[r > 22] = 0.0
    truth = {
        "stellar_mass": mass * u.Msun / u.kpc**2,
        "sfr": 1e-9 * mass * u.Msun / u.yr / u.kpc**2,
        "metallicity": (-0.1 - 0.03 * r) * u.dex,
        "age_mw": 3 + 0.2 * r,
    }
    return truth, dict(xc=xc, yc=yc, q=q, theta=theta, scale=scale)


def test_ellipse_recovers_shape():
    truth, p = _galaxies()
    ell, radius = fit_ellipses(truth["stellar_mass"].value)
    np.testing.assert_allclose(ell["x_centroid"].value, p["xc"], atol=0.3)
    np.testing.assert_allclose(ell["y_centroid"].value, p["yc"], atol=0.3)
    np.testing.assert_allclose(ell["axis_ratio"], p["q"], atol=0.06)
    # orientation modulo 180 deg
    d = (ell["orientation"].to_value(u.rad) - p["theta"] + np.pi / 2) % np.pi - np.pi / 2
    assert np.all(np.abs(d) < 0.1)
    # exponential disc (truncated at 22 px): half-mass radius ~1.68 scale lengths
    np.testing.assert_allclose(ell["r_half"].value / p["scale"], 1.68, rtol=0.12)
    assert radius.shape == truth["stellar_mass"].shape


def test_perfect_prediction_has_zero_bias_and_scatter():
    truth, _ = _galaxies()
    task = MapMetrics()
    assert task.fit(truth, truth) is task
    table = task.evaluate()
    assert set(table["property"]) == set(truth)
    np.testing.assert_allclose(table["sigma"].value, 0.0, atol=1e-12)
    np.testing.assert_allclose(table["mu"].value, 0.0, atol=1e-12)
    np.testing.assert_allclose(table["sigma_pixel"].value, 0.0, atol=1e-12)
    assert table["sigma"].unit == u.dex
    row = table[table["property"] == "stellar_mass"][0]
    assert row["study_sigma"].value == PICASSSO_REFERENCE["stellar_mass"][1]
    assert row["label"] == "stellar mass"
    assert table[table["property"] == "metallicity"]["study_sigma"].value[0] == 0.143


def test_offset_of_0p1_dex_gives_bias_0p1():
    truth, _ = _galaxies()
    pred = {
        "stellar_mass": truth["stellar_mass"] * 10**-0.1,       # under-predicted by 0.1 dex
        "sfr": (truth["sfr"] * 10**-0.1).to(u.Msun / u.Gyr / u.kpc**2),  # other unit
        "metallicity": truth["metallicity"] - 0.1 * u.dex,
        "age_mw": truth["age_mw"] * 10**-0.1,
    }
    table = MapMetrics().fit(pred, truth).evaluate()
    np.testing.assert_allclose(table["mu"].value, 0.1, atol=1e-9)
    np.testing.assert_allclose(table["mu_pixel"].value, 0.1, atol=1e-9)
    np.testing.assert_allclose(table["sigma"].value, 0.0, atol=1e-9)


def test_random_scatter_is_measured():
    truth, _ = _galaxies(n=40)
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 0.2, 40)
    pred = {"stellar_mass": truth["stellar_mass"] * 10 ** offsets[:, None, None]}
    task = MapMetrics(properties=["stellar_mass"]).fit(pred, truth)
    np.testing.assert_allclose(task.delta_["stellar_mass"], -offsets, atol=1e-9)
    row = task.evaluate()[0]
    assert row["sigma"].value == pytest.approx(np.std(offsets, ddof=1), rel=1e-6)


def test_list_of_nddata_input_and_errors():
    truth, _ = _galaxies(n=4)
    per_galaxy = [{k: NDData(np.asarray(getattr(v, "value", v))[i], unit=getattr(v, "unit", None))
                   for k, v in truth.items()} for i in range(4)]
    stacked = stack_maps(per_galaxy)
    assert stacked["stellar_mass"][0].shape == (4, 48, 48)
    table = MapMetrics().fit(per_galaxy, per_galaxy).evaluate()
    np.testing.assert_allclose(table["sigma"].value, 0.0, atol=1e-12)
    with pytest.raises(ValidationError, match="true maps"):
        MapMetrics().fit(per_galaxy)
    with pytest.raises(ValidationError, match="lack"):
        MapMetrics(mass_map="gas_mass").fit(per_galaxy, per_galaxy)
    empty = {k: v.copy() for k, v in truth.items()}
    pred = {k: v.copy() for k, v in truth.items()}
    pred["stellar_mass"][0] = 0.0
    with pytest.warns(AstroCLWarning, match="no usable"):
        MapMetrics(properties=["stellar_mass"]).fit(pred, empty)


def test_check_task():
    from astro_cl.testing import check_task

    truth, _ = _galaxies(n=3)
    check_task(MapMetrics(), truth, truth)
