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
    assert set(table["property"]) == set(truth) | {"metal_mass", "age_mass"}
    np.testing.assert_allclose(table["sigma"].value, 0.0, atol=1e-12)
    np.testing.assert_allclose(table["mu"].value, 0.0, atol=1e-12)
    np.testing.assert_allclose(table["sigma_pixel"].value, 0.0, atol=1e-12)
    np.testing.assert_allclose(table["sigma_ratio"], 0.0, atol=1e-9)
    assert np.all(table["sigma_constant"].value > 0.005)
    assert table["sigma"].unit == u.dex
    row = table[table["property"] == "stellar_mass"][0]
    assert row["study_sigma"].value == PICASSSO_REFERENCE["stellar_mass"][1]
    assert row["label"] == "stellar mass"


def test_published_numbers_only_beside_the_same_definition():
    """PICASSSO's metallicity and age are summed metal mass and age x mass, not means."""
    truth, _ = _galaxies()
    task = MapMetrics().fit(truth, truth)
    table = task.evaluate()
    study = {str(r["property"]): float(r["study_sigma"].value) for r in table}
    assert study["metal_mass"] == 0.143 and study["age_mass"] == 0.086
    assert study["sfr"] == 0.220
    # the mass-weighted means are reported without a study number
    assert np.isnan(study["metallicity"]) and np.isnan(study["age_mw"])
    definition = dict(zip(table["property"], table["definition"], strict=True))
    assert definition["metallicity"] == "mean weighted by the true stellar_mass"
    assert definition["metal_mass"] == "sum of 10**metallicity x stellar_mass"
    assert definition["age_mass"] == "sum of age_mw x stellar_mass"
    assert set(task.findings()["compared_with_study"]) == {"stellar_mass", "sfr", "metal_mass",
                                                           "age_mass"}


def test_metal_mass_and_age_mass_are_summed_products_of_the_predicted_maps():
    truth, _ = _galaxies(n=8)
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.1, (8, 48, 48))
    pred = {"stellar_mass": truth["stellar_mass"] * 10**noise,
            "metallicity": truth["metallicity"] + 0.05 * u.dex,
            "age_mw": truth["age_mw"] * 1.2}
    task = MapMetrics(properties=["stellar_mass", "metallicity", "age_mw"]).fit(pred, truth)
    radius = fit_ellipses(truth["stellar_mass"].value)[1]
    r_half = task.ellipses_["r_half"].value[:, None, None]
    inside = (radius <= 2 * r_half) & (truth["stellar_mass"].value > 0)
    m_t, m_p = truth["stellar_mass"].value, pred["stellar_mass"].value

    def summed(values):
        return np.where(inside, values, 0).sum(axis=(1, 2))

    expected = (np.log10(summed(10**truth["metallicity"].value * m_t))
                - np.log10(summed(10**pred["metallicity"].value * m_p)))
    np.testing.assert_allclose(task.delta_["metal_mass"], expected, rtol=1e-10)
    expected = np.log10(summed(truth["age_mw"] * m_t)) - np.log10(summed(pred["age_mw"] * m_p))
    np.testing.assert_allclose(task.delta_["age_mass"], expected, rtol=1e-10)
    # the mass-weighted mean uses the true weights: the mass error does not enter
    np.testing.assert_allclose(task.delta_["age_mw"], -np.log10(1.2), rtol=1e-10)


@pytest.mark.parametrize("value", [1e7, 3e9])
def test_a_constant_prediction_has_a_ratio_of_one_whatever_its_value(value):
    truth, _ = _galaxies(n=20)
    const = {"stellar_mass": np.full((20, 48, 48), value) * u.Msun / u.kpc**2,
             "age_mw": np.full((20, 48, 48), value / 1e9)}
    task = MapMetrics(properties=["stellar_mass", "age_mw"]).fit(const, truth)
    table = task.evaluate()
    np.testing.assert_allclose(table["sigma_ratio"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(table["sigma"].value, table["sigma_constant"].value, rtol=1e-9)
    # the baseline by hand: log10 of the mean pixel value (sums) or of the weighted
    # mean (means) inside the apertures, scattered over galaxies
    radius = fit_ellipses(truth["stellar_mass"].value)[1]
    inside = (radius <= 2 * task.ellipses_["r_half"].value[:, None, None]) & (
        truth["stellar_mass"].value > 0)
    mass = np.where(inside, truth["stellar_mass"].value, 0)
    mean_density = mass.sum(axis=(1, 2)) / inside.sum(axis=(1, 2))
    weighted_age = (mass * truth["age_mw"]).sum(axis=(1, 2)) / mass.sum(axis=(1, 2))
    sigma = {str(r["property"]): r["sigma_constant"].value for r in table}
    assert sigma["stellar_mass"] == pytest.approx(np.std(np.log10(mean_density), ddof=1))
    assert sigma["age_mw"] == pytest.approx(np.std(np.log10(weighted_age), ddof=1))
    pixel = {str(r["property"]): r["sigma_pixel_constant"].value for r in table}
    assert pixel["age_mw"] == pytest.approx(np.std(np.log10(truth["age_mw"][inside]), ddof=1))


def test_galaxy_columns_one_row_per_galaxy():
    truth, _ = _galaxies(n=5)
    pred = dict(truth, stellar_mass=truth["stellar_mass"] * 10**-0.2)
    cols = MapMetrics().fit(pred, truth).galaxy_columns()
    assert len(cols) == 5 and cols["r_half"].unit == u.pix
    np.testing.assert_allclose(cols["delta_stellar_mass"].value, 0.2, atol=1e-9)
    assert {"delta_metal_mass", "delta_age_mass", "delta_metallicity"} <= set(cols.colnames)


def test_offset_of_0p1_dex_gives_bias_0p1():
    truth, _ = _galaxies()
    pred = {
        "stellar_mass": truth["stellar_mass"] * 10**-0.1,       # under-predicted by 0.1 dex
        "sfr": (truth["sfr"] * 10**-0.1).to(u.Msun / u.Gyr / u.kpc**2),  # other unit
        "metallicity": truth["metallicity"] - 0.1 * u.dex,
        "age_mw": truth["age_mw"] * 10**-0.1,
    }
    table = MapMetrics().fit(pred, truth).evaluate()
    # the summed metal mass and age x mass add the stellar-mass offset
    derived = np.isin(table["property"], ["metal_mass", "age_mass"])
    np.testing.assert_allclose(table["mu"].value[~derived], 0.1, atol=1e-9)
    np.testing.assert_allclose(table["mu"].value[derived], 0.2, atol=1e-9)
    np.testing.assert_allclose(table["mu_pixel"].value[~derived], 0.1, atol=1e-9)
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
    with pytest.raises(ValidationError, match=r"hold \[4\] galaxies and the true maps \[3\]"):
        MapMetrics().fit(per_galaxy, per_galaxy[:3])
    with pytest.raises(ValidationError, match="derived quantities"):
        MapMetrics(derived=("gas_metal_mass",)).fit(per_galaxy, per_galaxy)
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
