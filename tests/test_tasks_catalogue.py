"""Which catalogue columns the tasks rank as properties, and what their messages count."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError
from astro_cl.tasks import PropertyCorrelation, PropertyRegression


def _catalogue(n=60, seed=0):
    """A survey-like catalogue: physical properties beside positions, angles, distances, ids."""
    rng = np.random.default_rng(seed)
    mass = rng.normal(10.3, 0.5, n)
    return QTable({
        "id": [f"g{i:03d}" for i in range(n)],
        "ID": np.arange(n),
        "RA": rng.uniform(0, 360, n) * u.deg,
        "DEC": rng.uniform(-10, 60, n) * u.deg,
        "z": rng.uniform(0.005, 0.08, n),
        "DL": rng.uniform(20, 350, n) * u.Mpc,
        "PA": rng.uniform(0, 180, n) * u.deg,
        "inclination": rng.uniform(0, 90, n) * u.deg,
        "Re": rng.uniform(2, 20, n) * u.arcsec,
        "QC_flag": rng.integers(0, 3, n),
        "log_Mass": mass * u.dex(u.Msun),
        "e_log_Mass": np.full(n, 0.1) * u.dex(u.Msun),
        "Re_kpc": rng.uniform(1, 10, n) * u.kpc,
        "EW_Ha_cen": -(10 ** rng.normal(1, 0.4, n)) * u.AA,
        "g-r": rng.normal(0.6, 0.1, n) * u.mag,
        "type": rng.choice(["E1", "S0", "Sb", "Sc"], n),
        "environment": rng.choice(["void", "wall", "filament", "cluster"], n),
    }), mass


PHYSICAL = {"log_Mass", "Re_kpc", "EW_Ha_cen", "g-r", "type", "environment"}
LEFT_OUT = {"id": "identifier", "ID": "identifier", "RA": "position", "DEC": "position",
            "z": "distance", "DL": "distance", "PA": "angle", "inclination": "angle",
            "Re": "angle", "QC_flag": "bookkeeping", "e_log_Mass": "uncertainty"}


def test_positions_angles_distances_and_ids_are_not_ranked_by_default():
    cat, mass = _catalogue()
    X = np.column_stack([mass - 10.3, np.random.default_rng(1).normal(0, 0.3, (len(cat), 3))])
    task = PropertyCorrelation(projection=None, n_bootstrap=0).fit(X, cat)
    table = task.evaluate()
    assert set(table["property"]) == PHYSICAL
    assert task.left_out_ == LEFT_OUT
    assert table.meta["left_out"] == LEFT_OUT
    reg = PropertyRegression(n_bootstrap=0).fit(X, cat)
    assert set(reg.evaluate()["property"]) == PHYSICAL - {"type", "environment"}
    assert reg.left_out_ == LEFT_OUT


def test_named_columns_are_ranked_whatever_their_role():
    cat, mass = _catalogue()
    X = np.column_stack([mass - 10.3, np.asarray(cat["RA"].value) / 360])
    table = PropertyCorrelation(properties=["RA", "log_Mass"], projection=None,
                                n_bootstrap=0).fit(X, cat).evaluate()
    assert set(table["property"]) == {"RA", "log_Mass"}


def test_column_role_rules():
    from astro_cl.tasks import column_role, left_out_columns, property_columns

    cat, _ = _catalogue(n=12)
    assert property_columns(cat) == [c for c in cat.colnames if c in PHYSICAL]
    assert left_out_columns(cat) == LEFT_OUT
    cat["Z"] = np.linspace(0.0, 0.3, 12)   # capital Z: a metallicity, not a redshift
    cat["counter"] = np.arange(12) * 3       # increasing unique integers: an identifier
    cat["flux_flag"] = np.zeros(12, int)
    cat["OH_N2_cen"] = np.linspace(8.2, 8.9, 12) * u.dex
    assert [column_role(cat, c) for c in ("Z", "counter", "flux_flag", "OH_N2_cen")] == [
        "property", "identifier", "bookkeeping", "property"]
    cat["RA"].info.meta = {"role": "property"}   # the catalogue's own word wins
    assert column_role(cat, "RA") == "property"
    cat["PA"].info.meta = {"role": "nonsense"}
    with pytest.raises(CatalogueError, match="meta\\['role'\\] = 'nonsense'"):
        column_role(cat, "PA")


def test_skip_message_counts_classes_and_galaxies():
    """Four environments among 20 galaxies, one with 5 or more: the message says so."""
    rng = np.random.default_rng(0)
    env = np.array(["wall"] * 11 + ["filament"] * 4 + ["cluster"] * 3 + ["void"] * 2)
    cat = QTable({"environment": env, "log_Mass": rng.normal(10, 0.5, 20)})
    X = rng.normal(size=(20, 4))
    task = PropertyCorrelation(properties=["environment", "log_Mass"], projection=None,
                               n_bootstrap=0, min_samples=10)
    with pytest.warns(AstroCLWarning) as record:
        task.fit(X, cat)
    text = " ".join(str(w.message) for w in record)
    assert ("'environment' skipped: 20 labelled galaxies in 4 classes, but 1 class(es) with "
            "the 5 members a 5-fold cross-validation needs: wall (11)") in text
    assert task.skipped_["environment"].startswith("20 labelled galaxies in 4 classes")
    assert list(task.evaluate()["property"]) == ["log_Mass"]
