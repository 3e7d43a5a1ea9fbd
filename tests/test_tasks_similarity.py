import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import ValidationError
from astro_cl.tasks import SimilaritySearch, faiss_available


def _embedding(n=60, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[1] = 5 * X[0]            # same direction as galaxy 0: cosine similarity 1
    X[2] = X[0] + 0.05 * rng.normal(size=d)
    return QTable({"id": [f"g{i}" for i in range(n)], "embedding": X})


def test_query_by_id_excludes_self_and_orders_by_cosine():
    emb = _embedding()
    task = SimilaritySearch(n_neighbors=4, backend="sklearn")
    assert task.fit(emb) is task
    res = task.query(ids="g0")
    assert list(res["rank"]) == [1, 2, 3, 4]
    assert "g0" not in list(res["id"])
    assert list(res["id"][:2]) == ["g1", "g2"]
    assert res["similarity"][0] == pytest.approx(1.0)
    assert np.all(np.diff(res["similarity"]) <= 1e-12)
    np.testing.assert_allclose(res["distance"], 1 - res["similarity"])
    X = np.asarray(emb["embedding"])
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = Xn @ Xn[0]
    cos[0] = -np.inf
    expected = np.sort(cos)[::-1][:4]
    np.testing.assert_allclose(res["similarity"], expected, atol=1e-6)


def test_query_by_new_vector_and_table():
    emb = _embedding()
    task = SimilaritySearch(n_neighbors=3).fit(emb)
    X = np.asarray(emb["embedding"])
    res = task.query(vectors=-2 * X[5] * -1, k=1)  # a new observation of galaxy 5
    assert res["id"][0] == "g5" and res["query"][0] == "vector_0"
    new = QTable({"id": ["new"], "embedding": X[7:8] + 1e-3})
    assert task.query(vectors=new)["query"][0] == "new"
    with pytest.raises(ValidationError, match="features"):
        task.query(vectors=np.ones(3))
    with pytest.raises(ValueError):
        task.query()
    with pytest.raises(KeyError):
        task.query(ids=["nope"])


def test_evaluate_lists_neighbours_of_every_galaxy():
    emb = _embedding(n=20)
    table = SimilaritySearch(n_neighbors=2, query_ids=["g3", "g4"]).fit(emb).evaluate()
    assert list(table["query"]) == ["g3", "g3", "g4", "g4"]
    assert len(SimilaritySearch(n_neighbors=2).fit(emb).evaluate()) == 40
    with pytest.raises(ValidationError, match="zero norm"):
        SimilaritySearch().fit(np.zeros((3, 2)))


def test_faiss_matches_sklearn():
    if not faiss_available():
        with pytest.raises(ImportError):
            SimilaritySearch(backend="faiss").fit(_embedding())
        return
    emb = _embedding()
    a = SimilaritySearch(backend="faiss").fit(emb).query(ids=["g0", "g9"])
    b = SimilaritySearch(backend="sklearn").fit(emb).query(ids=["g0", "g9"])
    np.testing.assert_allclose(a["similarity"], b["similarity"], atol=1e-5)


def test_check_task():
    from astro_cl.testing import check_task

    check_task(SimilaritySearch(n_neighbors=3), _embedding(n=15))


def test_id_lookup_with_duplicate_and_unknown_ids():
    X = np.random.default_rng(1).normal(size=(5, 4))
    emb = QTable({"id": ["a", "b", "a", "c", "d"], "embedding": X})
    task = SimilaritySearch(n_neighbors=2, backend="sklearn").fit(emb)
    with pytest.raises(ValidationError, match=r"\['a'\].*rows \[0, 2\]"):
        task.query(ids=["b", "a"])
    assert list(task.query(ids=["d", "b"])["query"]) == ["d", "d", "b", "b"]
    with pytest.raises(KeyError, match=r"\['x', 'y'\] are not in the index \(5 galaxies\)"):
        task.query(ids=["b", "x", "y"])
    ids = task.query(vectors=X[0], k=5)["id"]
    assert sorted(ids) == ["a", "a", "b", "c", "d"]


def test_ids_default_to_row_numbers_and_non_string_ids():
    X = np.random.default_rng(2).normal(size=(12, 3))
    task = SimilaritySearch(n_neighbors=3, backend="sklearn").fit(X)
    assert list(task.ids_) == [str(i) for i in range(12)]
    res = task.query(ids=["7", "0"])
    assert "7" not in list(res["id"][:3]) and set(res["id"]) <= set(task.ids_)
    with pytest.raises(KeyError, match="07"):
        task.query(ids="07")
    numeric = SimilaritySearch(n_neighbors=1, backend="sklearn").fit(
        QTable({"id": np.arange(100, 112), "embedding": X}))
    assert numeric.query(ids=[103])["query"][0] == "103"
    assert not hasattr(SimilaritySearch(), "ids_")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_does_not_modify_the_callers_array(dtype):
    X = np.random.default_rng(3).normal(size=(50, 6)).astype(dtype)
    before = X.copy()
    emb = QTable({"id": [f"g{i}" for i in range(50)], "embedding": X}, copy=False)
    for data in (X, emb):
        task = SimilaritySearch(backend="sklearn").fit(data)
        np.testing.assert_array_equal(X, before)
        assert not np.shares_memory(task.vectors_, X)
    assert task.vectors_.dtype == np.float32 and task.vectors_.flags.c_contiguous
    ref = before / np.linalg.norm(before.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(task.vectors_, ref, rtol=2e-6, atol=1e-7)


def test_rows_with_extreme_norms_are_normalised_and_bad_rows_refused():
    X = np.random.default_rng(4).normal(size=(6, 8))
    X[1] *= 1e-30                 # float32 squared norm underflows
    X[2] *= 1e30                  # float32 squared norm overflows
    X[3] *= 1e300                 # does not fit in float32 at all
    task = SimilaritySearch(backend="sklearn").fit(X)
    scaled = X / np.abs(X).max(axis=1, keepdims=True)
    ref = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    np.testing.assert_allclose(task.vectors_, ref, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(task.vectors_, axis=1), 1.0, rtol=1e-6)
    bad = X.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValidationError, match="1 of 6 rows contain NaN or inf"):
        SimilaritySearch(backend="sklearn").fit(bad)
    bad[4, 2], bad[5] = 1.0, 0.0
    with pytest.raises(ValidationError, match=r"rows \[5\] have zero norm"):
        SimilaritySearch(backend="sklearn").fit(bad)
