import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import CatalogueError
from astro_cl.tasks import SFMSClustering, cluster_purity, fit_main_sequence, sfms_classes


def _two_populations(n=200, seed=0):
    """Star-forming (on the SFMS) and quiescent (2 dex below) galaxies, separated in the embedding."""
    rng = np.random.default_rng(seed)
    mass = rng.uniform(9.0, 11.5, n)
    quiescent = rng.random(n) < 0.4
    sfr = 0.8 * (mass - 10.0) - 0.2 + rng.normal(0, 0.2, n) - 2.2 * quiescent
    X = np.column_stack([np.where(quiescent, 3.0, -3.0) + rng.normal(0, 0.5, n),
                         rng.normal(0, 0.5, (n, 4))])
    cat = QTable({"log_Mass": mass * u.dex(u.Msun), "log_SFR_Ha": sfr * u.dex(u.Msun / u.yr)})
    return X, cat, quiescent


def test_fit_main_sequence_recovers_line():
    rng = np.random.default_rng(1)
    mass = rng.uniform(9, 11.5, 600)
    passive = rng.random(600) < 0.35
    sfr = 0.75 * (mass - 10) - 0.3 + rng.normal(0, 0.25, 600) - 2.0 * passive
    ms = fit_main_sequence(mass, sfr)
    assert ms["slope"] == pytest.approx(0.75, abs=0.06)
    assert ms["intercept"] == pytest.approx(-0.3, abs=0.05)
    assert ms["scatter"] == pytest.approx(0.25, abs=0.05)
    assert ms["converged"]
    classes, _ = sfms_classes(mass, sfr, ms)
    assert np.mean(classes[passive] == "RS") > 0.85
    assert np.mean(classes[~passive] == "BC") > 0.95
    with pytest.raises(ValueError):
        sfms_classes(mass, sfr, ms, thresholds=(-2, -1))


def test_two_separated_populations_have_purity_one():
    X, cat, quiescent = _two_populations()
    task = SFMSClustering(n_init=3)
    assert task.fit(X, cat) is task
    table = task.evaluate()
    assert len(table) == 4
    k2 = table[table["n_clusters"] == 2]
    assert np.all(k2["purity"] > 0.97)
    assert np.all(k2["adjusted_rand"] > 0.9)
    # clusters renumbered: 0 = the most star-forming
    labels = task.labels_["kmeans-k2"]
    assert np.mean(labels[~quiescent] == 0) > 0.97
    conf = task.confusion_["kmeans-k2"]
    assert list(conf["class"]) == ["BC", "RS"]
    assert conf["cluster_0"][0] > 0 and conf["cluster_1"][1] > 0
    gal = task.galaxy_table()
    assert gal["delta_ms"].unit == u.dex and "cluster_gmm_k3" in gal.colnames


def test_existing_class_column_and_purity():
    X, cat, quiescent = _two_populations(n=100)
    cat["sfms_class"] = np.where(quiescent, "RS", "BC")
    table = SFMSClustering(class_column="sfms_class", methods=("kmeans",), n_clusters=(2,),
                           n_init=2).fit(X, cat).evaluate()
    assert table["purity"][0] > 0.97
    cat["sfms_class"][0] = "XX"
    with pytest.raises(CatalogueError, match="expected labels"):
        SFMSClustering(class_column="sfms_class").fit(X, cat)
    assert cluster_purity(["a", "a", "b", "b"], [0, 0, 1, 1]) == 1.0
    assert cluster_purity(["a", "b", "a", "b"], [0, 0, 0, 0]) == 0.5


def test_random_embedding_has_low_adjusted_rand():
    _, cat, _ = _two_populations()
    X = np.random.default_rng(5).normal(size=(len(cat), 5))
    table = SFMSClustering(methods=("kmeans",), n_init=2).fit(X, cat).evaluate()
    assert np.all(np.abs(table["adjusted_rand"]) < 0.1)


def test_check_task():
    from astro_cl.testing import check_task

    X, cat, _ = _two_populations(n=80)
    check_task(SFMSClustering(n_init=2), X, cat)


def test_real_catalogue_sfms(shared_data):
    from astro_cl.studies import read_table
    from astro_cl.tasks.catalogue import float_column

    cat = read_table(shared_data / "ecalifa" / "ecalifa_global.csv")
    mass, sfr = float_column(cat, "log_Mass"), float_column(cat, "log_SFR_Ha")
    ms = fit_main_sequence(mass, sfr)
    # CALIFA SFMS (Halpha SFRs): slope ~0.7-0.8, log SFR ~ -0.3 at 1e10 Msun, scatter ~0.3-0.4 dex
    assert 0.6 < ms["slope"] < 0.9
    assert -0.6 < ms["intercept"] < 0.0
    assert 0.2 < ms["scatter"] < 0.5
    classes, _ = sfms_classes(mass, sfr, ms)
    counts = {c: int(np.sum(classes == c)) for c in ("BC", "GV", "RS")}
    assert counts["BC"] > counts["RS"] > counts["GV"] > 50
    # an "embedding" made of mass and SFR themselves separates BC from RS
    ok = np.isfinite(mass) & np.isfinite(sfr)
    X = np.column_stack([mass, sfr])[ok]
    table = SFMSClustering(methods=("gmm",), n_clusters=(2,), n_init=2).fit(X, cat[ok]).evaluate()
    assert table["purity"][0] > 0.85
