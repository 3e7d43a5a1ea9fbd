import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning
from astro_cl.tasks import PropertyRegression


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    mass = 10.5 + 0.5 * X[:, 0] + 0.05 * rng.normal(size=n)      # 0.05 dex noise
    ew = 10 ** (1 + 0.6 * X[:, 1])                                 # linear, > 2 decades
    cat = QTable({"id": [f"g{i}" for i in range(n)], "log_Mass": mass * u.dex(u.Msun),
                  "EW_Ha_cen": ew * u.AA, "noise": rng.normal(size=n)})
    emb = QTable({"id": cat["id"], "embedding": X})
    return emb, cat


def test_linear_probe_recovers_linear_property():
    emb, cat = _data()
    task = PropertyRegression(n_bootstrap=20)
    assert task.fit(emb, cat) is task
    table = task.evaluate()
    ridge = table[(table["property"] == "log_Mass") & (table["model"] == "ridge")][0]
    assert ridge["r2"] > 0.95
    assert ridge["scatter"].unit == u.dex
    assert ridge["scatter"].value == pytest.approx(0.05, abs=0.015)
    assert abs(ridge["bias"].value) < 0.02
    ew = table[(table["property"] == "EW_Ha_cen") & (table["model"] == "ridge")][0]
    assert ew["log10"] and ew["r2"] > 0.95 and np.isfinite(ew["scatter"])
    noise = table[table["property"] == "noise"]
    assert np.all(noise["r2"] < 0.1) and np.all(np.isnan(noise["scatter"]))
    knn = table[(table["property"] == "log_Mass") & (table["model"] == "knn")][0]
    assert 0.3 < knn["r2"] < ridge["r2"]


def test_predict_new_embeddings():
    emb, cat = _data()
    task = PropertyRegression(properties=["log_Mass", "EW_Ha_cen"], n_bootstrap=0).fit(emb, cat)
    pred = task.predict(emb[:5])
    assert list(pred.colnames) == ["id", "log_Mass", "log10_EW_Ha_cen"]
    np.testing.assert_allclose(pred["log_Mass"], cat["log_Mass"][:5].value, atol=0.2)


def test_skips_sparse_property():
    emb, cat = _data(n=60)
    cat["sparse"] = np.where(np.arange(60) < 5, 1.0, np.nan)
    with pytest.warns(AstroCLWarning, match="sparse"):
        table = PropertyRegression(properties=["sparse", "log_Mass"], n_bootstrap=0).fit(
            emb, cat).evaluate()
    assert set(table["property"]) == {"log_Mass"}


def test_check_task():
    from astro_cl.testing import check_task

    emb, cat = _data(n=60)
    check_task(PropertyRegression(n_bootstrap=5), emb, cat)
