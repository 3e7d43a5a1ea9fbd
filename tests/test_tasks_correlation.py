import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import CatalogueError
from astro_cl.tasks import PropertyCorrelation, compare_rankings, compare_with_study
from astro_cl.tasks.catalogue import hubble_t_type


def _synthetic(n=240, seed=0):
    """Embedding encodes EW linearly (strong), type (a split), mass weakly; noise not at all."""
    rng = np.random.default_rng(seed)
    log_ew = rng.normal(1.0, 0.4, n)
    mass = rng.normal(10.5, 0.5, n)
    morph = np.where(rng.random(n) < 0.5, "E1", "Sb")
    X = np.column_stack([
        3 * (log_ew - 1.0),
        np.where(morph == "E1", 1.0, -1.0) + rng.normal(0, 0.7, n),
        0.4 * (mass - 10.5) + rng.normal(0, 0.4, n),
        rng.normal(0, 0.3, (n, 5)),
    ])
    cat = QTable({
        "id": [f"g{i:03d}" for i in range(n)],
        "EW_Ha_cen": -(10**log_ew) * u.AA,   # Pipe3D sign: emission is negative
        "type": morph,
        "log_Mass": mass * u.dex(u.Msun),
        "noise": rng.normal(size=n),
    })
    emb = QTable({"id": cat["id"], "embedding": X.astype(np.float32)})
    return emb, cat


def test_linear_property_ranks_first_and_noise_last():
    emb, cat = _synthetic()
    task = PropertyCorrelation(projection="pca", n_bootstrap=30)
    assert task.fit(emb, cat) is task
    table = task.evaluate()
    assert table["property"][0] == "EW_Ha_cen"
    assert list(table["property"])[-1] == "noise"
    assert table["score"][0] > 0.9
    assert table["log10"][0]  # one-signed, > 2 decades -> log10(|EW|)
    assert abs(table["score"][-1]) < 0.15
    assert np.all(np.isfinite(table["score_err"])) and np.all(table["score_err"] > 0)
    row = table[table["property"] == "type"][0]
    assert row["kind"] == "categorical" and row["balanced_accuracy"] > 0.8
    assert abs(row["spearman_axis1"]) > 0.5  # Hubble types -> T-type for the rank correlation
    assert list(table["rank"]) == list(range(1, len(table) + 1))


def test_row_matching_and_array_input():
    emb, cat = _synthetic(n=120)
    X = np.asarray(emb["embedding"])
    shuffled = cat[np.random.default_rng(1).permutation(len(cat))]
    a = PropertyCorrelation(projection=None, n_bootstrap=0).fit(emb, shuffled).evaluate()
    b = PropertyCorrelation(projection=None, n_bootstrap=0).fit(X, cat).evaluate()
    assert list(a["property"]) == list(b["property"])
    np.testing.assert_allclose(a["score"], b["score"])
    assert np.all(np.isnan(a["spearman_axis1"]))


def test_precomputed_projection_and_missing_values():
    emb, cat = _synthetic(n=120)
    cat["log_Mass"][:10] = np.nan * u.dex(u.Msun)
    proj = np.column_stack([np.asarray(emb["embedding"])[:, 0], np.zeros(len(cat))])
    task = PropertyCorrelation(properties=["EW_Ha_cen", "log_Mass"], n_bootstrap=0,
                               projection=proj)
    table = task.fit(emb, cat).evaluate()
    assert task.projection_method_ == "given" and table.meta["projection"] == "given"
    row = table[table["property"] == "log_Mass"][0]
    assert row["n_galaxies"] == 110
    ew = table[table["property"] == "EW_Ha_cen"][0]
    assert abs(ew["spearman_axis1"]) > 0.99
    with pytest.raises(ValueError, match=r"projection: expected an array of shape \(120, 2\)"):
        task.set_params(projection=proj[:5]).fit(emb, cat)


def test_compare_with_study_kendall_tau():
    names = ["EW_Ha_cen", "type", "Age_LW_Re_fit", "Sigma_Mass_cen", "log_NII_Ha_cen", "log_Mass"]
    table = QTable({"property": names, "score": np.linspace(0.9, 0.4, len(names)),
                    "score_err": np.full(len(names), 0.01)})
    same = compare_with_study(table)
    assert same.meta["kendall_tau"] == pytest.approx(1.0)
    assert same.meta["n_matched"] == 6
    assert same["measured_rank"][2] == -1  # stellar metallicity not measured
    reverse = QTable({"property": names, "score": np.linspace(0.4, 0.9, len(names))})
    assert compare_with_study(reverse).meta["kendall_tau"] == pytest.approx(-1.0)


def test_compare_rankings():
    a = QTable({"property": ["x", "y", "z"], "score": [0.9, 0.5, 0.1]})
    b = QTable({"property": ["z", "y", "x", "w"], "score": [0.2, 0.6, 0.8, 0.0]})
    cmp = compare_rankings(a, b, labels=("full", "no_lum"))
    assert list(cmp["property"]) == ["x", "y", "z"]
    assert cmp.meta["kendall_tau"] == pytest.approx(1.0)
    np.testing.assert_allclose(cmp["delta_score"], [-0.1, 0.1, 0.1])
    with pytest.raises(CatalogueError):
        compare_rankings(a, QTable({"property": ["q"], "score": [1.0]}))


def testhubble_t_type():
    t = hubble_t_type(np.array(["E3", "S0", "Sbc", None, "U"], dtype=object))
    np.testing.assert_array_equal(t[:3], [-5, -2, 4])
    assert np.isnan(t[3]) and np.isnan(t[4])
    assert hubble_t_type(np.array(["void", "wall"], dtype=object)) is None


def test_missing_catalogue_and_ids():
    emb, cat = _synthetic(n=60)
    with pytest.raises(CatalogueError):
        PropertyCorrelation(projection=None).fit(emb)
    other = cat.copy()
    other["id"] = [f"x{i}" for i in range(len(other))]
    with pytest.raises(CatalogueError, match="none of the"):
        PropertyCorrelation(projection=None).fit(emb, other)


def test_check_task():
    from astro_cl.testing import check_task

    emb, cat = _synthetic(n=80)
    check_task(PropertyCorrelation(projection="pca", n_bootstrap=5), emb, cat)


def test_real_catalogue_ranks_encoded_properties(shared_data):
    from astro_cl.studies import read_table
    from astro_cl.tasks.catalogue import float_column

    cat = read_table(shared_data / "ecalifa" / "ecalifa_global.csv")
    rng = np.random.default_rng(0)
    mass = np.nan_to_num(float_column(cat, "log_Mass"), nan=10.0)
    X = np.column_stack([mass - 10.5, rng.normal(0, 0.1, (len(cat), 3))])
    emb = QTable({"id": np.asarray(cat["Name"]), "embedding": X})
    task = PropertyCorrelation(properties=["log_Mass", "EW_Ha_cen", "type", "RA"],
                               projection="pca", n_bootstrap=10)
    table = task.fit(emb, cat).evaluate()  # joined on the real catalogue's Name column
    assert table["property"][0] == "log_Mass"
    assert table["property"][-1] == "RA"
    cmp = compare_with_study(table)
    assert cmp.meta["n_matched"] == 3


@pytest.mark.slow
def test_umap_projection_is_seeded():
    emb, cat = _synthetic(n=150)
    a = PropertyCorrelation(properties=["EW_Ha_cen"], n_bootstrap=0, seed=3).fit(emb, cat)
    b = PropertyCorrelation(properties=["EW_Ha_cen"], n_bootstrap=0, seed=3).fit(emb, cat)
    np.testing.assert_allclose(a.projection_, b.projection_)
    assert a.results_["spearman_max"][0] > 0.8


def test_exact_knn_for_umap_matches_the_distance_matrix():
    from scipy.spatial.distance import cdist

    from astro_cl.tasks.correlation import _exact_knn

    X = np.random.default_rng(4).normal(size=(60, 8))
    idx, dist, index = _exact_knn(X, 7, "cosine")
    full = cdist(X, X, "cosine")
    expected = np.argsort(full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(idx, expected)
    assert np.array_equal(idx[:, 0], np.arange(60))  # each galaxy is its own first neighbour
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected, axis=1), atol=1e-6)
    assert dist.dtype == np.float32 and index is None
    assert _exact_knn(X, 7, "no-such-metric") is None


def test_umap_compilation_is_cached_on_disk():
    """After a UMAP projection, umap-learn's numba functions keep their compilation on disk."""
    from numba.core.registry import CPUDispatcher

    from astro_cl.tasks.correlation import project_2d

    X = np.random.default_rng(0).normal(size=(30, 5))
    project_2d(X, method="umap", seed=0)
    import umap.layouts

    dispatchers = [v for v in vars(umap.layouts).values() if isinstance(v, CPUDispatcher)]
    assert dispatchers
    assert all(type(d._cache).__name__ != "NullCache" for d in dispatchers)
