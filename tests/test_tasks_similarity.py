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
