"""Similarity search: the galaxies whose embeddings are closest to a query.

Similarity is the cosine of the angle between embeddings. The search is exact:
scikit-learn's brute-force `~sklearn.neighbors.NearestNeighbors` by default, or
a faiss inner-product index on L2-normalised vectors (also exact, and much
faster for large catalogues) when faiss is installed (``pip install faiss-cpu``).
"""

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import ValidationError
from astro_cl.tasks._common import _align, _as_embedding, _check_fitted
from astro_cl.tasks.base import DownstreamTask

__all__ = ["SimilaritySearch", "faiss_available"]


def faiss_available():
    """Return whether faiss can be imported.

    Returns
    -------
    available : bool
    """
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _normalise(X):
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norm == 0):
        msg = "similarity-search: an embedding has zero norm; cosine similarity is undefined"
        raise ValidationError(msg)
    return X / norm


class SimilaritySearch(DownstreamTask):
    """Find the k galaxies most similar to a query (cosine similarity, exact).

    Parameters
    ----------
    n_neighbors : int, optional
        Default number of neighbours returned per query.
    backend : {"auto", "sklearn", "faiss"}, optional
        ``"auto"`` uses faiss when it is installed and scikit-learn otherwise;
        both are exact and give the same neighbours (up to ties).
    exclude_self : bool, optional
        When querying by id, leave the query galaxy out of its neighbours.
    query_ids : list of str, optional
        Galaxies whose neighbours `evaluate` reports (default: all).

    Attributes
    ----------
    ids_ : `numpy.ndarray` of str
        Ids of the indexed galaxies (row numbers as strings when not given).
    vectors_ : `numpy.ndarray`
        L2-normalised embeddings, float32.
    backend_ : str
        The backend in use.
    """

    name = "similarity-search"
    description = "Exact cosine k-nearest-neighbour search by id or by a new embedding."

    def __init__(self, *, n_neighbors=10, backend="auto", exclude_self=True, query_ids=None):
        self.n_neighbors = n_neighbors
        self.backend = backend
        self.exclude_self = exclude_self
        self.query_ids = query_ids

    def fit(self, embeddings, catalogue=None):
        """Index the embeddings.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
        catalogue : `~astropy.table.QTable`, optional
            Used only to restrict to, and take ids from, catalogued galaxies.

        Returns
        -------
        self : `SimilaritySearch`
        """
        X, _, ids = _align(embeddings, catalogue)
        if ids is None:
            ids = np.arange(len(X)).astype(str)
        self.vectors_ = _normalise(X).astype(np.float32)
        self.ids_ = np.asarray(ids).astype(str)
        self._index_of = {key: i for i, key in enumerate(self.ids_)}
        if self.backend not in ("auto", "sklearn", "faiss"):
            msg = (f"similarity-search: backend must be 'auto', 'sklearn' or 'faiss', "
                   f"got {self.backend!r}")
            raise ValueError(msg)
        use_faiss = self.backend == "faiss" or (self.backend == "auto" and faiss_available())
        if use_faiss:
            import faiss

            index = faiss.IndexFlatIP(self.vectors_.shape[1])
            index.add(np.ascontiguousarray(self.vectors_))
            self.backend_ = "faiss"
        else:
            from sklearn.neighbors import NearestNeighbors

            index = NearestNeighbors(metric="cosine", algorithm="brute").fit(self.vectors_)
            self.backend_ = "sklearn"
        self._index = index
        self._fitted_on = (embeddings, catalogue)
        return self

    def _search(self, queries, k):
        k = min(k, len(self.vectors_))
        if self.backend_ == "faiss":
            sim, idx = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return sim.astype(np.float64), idx
        dist, idx = self._index.kneighbors(queries, n_neighbors=k)
        return 1.0 - dist.astype(np.float64), idx

    def query(self, ids=None, vectors=None, *, k=None):
        """Return the most similar galaxies to queries given by id or by embedding.

        Parameters
        ----------
        ids : str or list of str, optional
            Ids of indexed galaxies.
        vectors : array-like or `~astropy.table.QTable`, optional
            New embeddings ``(D,)`` or ``(n, D)`` (e.g. of a new observation
            embedded with the same encoder), or an embeddings table.
        k : int, optional
            Neighbours per query (default ``n_neighbors``).

        Returns
        -------
        table : `~astropy.table.QTable`
            One row per (query, neighbour): ``query`` (the id, or ``vector_<i>``),
            ``rank`` (1 = most similar), ``id``, ``similarity`` (cosine) and
            ``distance`` (1 - cosine).
        """
        _check_fitted(self, "vectors_")
        if (ids is None) == (vectors is None):
            msg = "similarity-search: give exactly one of ids= or vectors="
            raise ValueError(msg)
        k = self.n_neighbors if k is None else int(k)
        if ids is not None:
            ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
            missing = [i for i in ids if i not in self._index_of]
            if missing:
                msg = f"similarity-search: ids {missing[:5]} are not in the index"
                raise KeyError(msg)
            rows = np.array([self._index_of[i] for i in ids], dtype=np.int64)
            queries, names = self.vectors_[rows], ids
            extra = 1 if self.exclude_self else 0
        else:
            if not hasattr(vectors, "colnames") and np.ndim(vectors) == 1:
                vectors = np.asarray(vectors)[None, :]
            Q, qids = _as_embedding(vectors)
            if Q.shape[1] != self.vectors_.shape[1]:
                msg = (f"similarity-search: query vectors have {Q.shape[1]} features, the "
                       f"index has {self.vectors_.shape[1]}")
                raise ValidationError(msg)
            queries = _normalise(Q).astype(np.float32)
            names = list(qids) if qids is not None else [f"vector_{i}" for i in range(len(Q))]
            rows, extra = None, 0
        sim, idx = self._search(queries, k + extra)
        if rows is not None and extra:
            # drop the query itself wherever it appears (ties may move it from rank 1)
            keep = idx != rows[:, None]
            first = np.argsort(~keep, axis=1, kind="stable")[:, : idx.shape[1] - 1]
            sim = np.take_along_axis(sim, first, axis=1)
            idx = np.take_along_axis(idx, first, axis=1)
        kk = idx.shape[1]
        table = QTable()
        table["query"] = np.repeat(np.asarray(names, dtype=str), kk)
        table["rank"] = np.tile(np.arange(1, kk + 1, dtype=np.int64), len(names))
        table["id"] = self.ids_[idx.ravel()]
        table["similarity"] = np.clip(sim.ravel(), -1.0, 1.0)
        table["distance"] = 1.0 - table["similarity"]
        table.meta["backend"] = self.backend_
        return table

    def evaluate(self, embeddings=None, catalogue=None):
        """Return the neighbours of ``query_ids`` (default: of every galaxy).

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`, optional
            Other data to index (default: what `fit` saw).
        catalogue : `~astropy.table.QTable`, optional

        Returns
        -------
        table : `~astropy.table.QTable`
            As `query`.
        """
        _check_fitted(self, "vectors_")
        task = self
        if embeddings is not None and not (embeddings is self._fitted_on[0]
                                           and catalogue is self._fitted_on[1]):
            task = type(self)(**self.get_params(deep=False)).fit(embeddings, catalogue)
        ids = list(task.ids_) if self.query_ids is None else list(self.query_ids)
        table = task.query(ids=ids)
        table.meta["task"] = self.name
        return table
