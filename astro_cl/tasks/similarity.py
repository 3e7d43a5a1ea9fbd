"""Similarity search: the galaxies whose embeddings are closest to a query.

Similarity is the cosine of the angle between embeddings. The search is exact:
scikit-learn's brute-force `~sklearn.neighbors.NearestNeighbors` by default, or
a faiss inner-product index on L2-normalised vectors (also exact, and much
faster for large catalogues) when faiss is installed (``pip install faiss-cpu``).
"""

import numpy as np
from astropy.table import QTable, Table

from astro_cl.exceptions import ValidationError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import _check_fitted
from astro_cl.tasks.catalogue import align as _align
from astro_cl.tasks.catalogue import as_embedding as _as_embedding

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


def _raw_embedding(embeddings):
    """Return ``(X, ids)``: the embedding array as given (no copy) and its ids (or None).

    The same checks as `astro_cl.tasks.catalogue.as_embedding` but without its
    float64 copy: `_normalised_float32` makes the one copy the index needs.
    """
    ids = None
    if isinstance(embeddings, Table):
        if "embedding" not in embeddings.colnames:
            msg = (f"embeddings table: expected an 'embedding' column (and 'id'), "
                   f"got columns {embeddings.colnames}")
            raise ValidationError(msg)
        data = embeddings["embedding"]
        if "id" in embeddings.colnames:
            ids = np.asarray(embeddings["id"])
    else:
        data = embeddings
    X = np.asarray(getattr(data, "value", data))
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] == 0:
        msg = (f"embeddings: expected a non-empty (n_galaxies, n_features) array, "
               f"got shape {X.shape}")
        raise ValidationError(msg)
    if X.dtype.kind not in "biuf":
        msg = f"embeddings: expected numbers, got an array of dtype {X.dtype}"
        raise ValidationError(msg)
    # a copy for ids too: the index must not change when the caller's table does
    ids = None if ids is None else (ids.copy() if ids.dtype.kind == "U" else ids.astype(str))
    return X, ids


def _normalised_float32(X):
    """Return a new C-contiguous float32 array of the rows of ``X`` scaled to unit length.

    One copy (the cast), then squared norms and the division in place on that
    copy: ``X`` itself is never modified. Norms are accumulated in float32,
    which is exact enough for cosine similarity; the rare rows whose float32
    squared norm overflows or underflows (or whose values do not fit in
    float32) are redone in float64 from ``X``.
    """
    # overflow and underflow are looked for below, row by row
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        V = np.array(X, dtype=np.float32, order="C", copy=True)
        sq = np.einsum("ij,ij->i", V, V)
    # NaN/inf rows, float32 overflow (huge values) and underflow (tiny ones)
    odd = ~(np.isfinite(sq) & (sq >= np.finfo(np.float32).tiny))
    if np.any(odd):
        rows = np.flatnonzero(odd)
        Xo = np.asarray(X[rows], dtype=np.float64)
        if not np.all(np.isfinite(Xo)):
            bad = int(np.sum(~np.all(np.isfinite(Xo), axis=1)))
            msg = f"embeddings: {bad} of {len(X)} rows contain NaN or inf"
            raise ValidationError(msg)
        # scaled by the largest value first, so that no square overflows even in float64
        scale = np.max(np.abs(Xo), axis=1)
        if np.any(scale == 0):
            zero = rows[scale == 0][:5].tolist()
            msg = (f"similarity-search: embeddings at rows {zero} have zero norm; cosine "
                   f"similarity is undefined")
            raise ValidationError(msg)
        Xo /= scale[:, None]
        V[rows] = Xo / np.linalg.norm(Xo, axis=1, keepdims=True)
        sq[rows] = 1.0
    V /= np.sqrt(sq, out=sq)[:, None]
    return V


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

        Notes
        -----
        The embeddings are cast to float32 in one copy and normalised in place
        in that copy, which becomes `vectors_`: the caller's array or table is
        never modified. Ids need not be unique, but a query by an id that
        labels several rows raises `~astro_cl.exceptions.ValidationError`.
        """
        if self.backend not in ("auto", "sklearn", "faiss"):
            msg = (f"similarity-search: backend must be 'auto', 'sklearn' or 'faiss', "
                   f"got {self.backend!r}")
            raise ValueError(msg)
        if catalogue is None:
            X, ids = _raw_embedding(embeddings)
        else:
            X, _, ids = _align(embeddings, catalogue)
        vectors = _normalised_float32(X)
        use_faiss = self.backend == "faiss" or (self.backend == "auto" and faiss_available())
        if use_faiss:
            import faiss

            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            backend = "faiss"
        else:
            from sklearn.neighbors import NearestNeighbors

            index = NearestNeighbors(metric="cosine", algorithm="brute").fit(vectors)
            backend = "sklearn"
        self.vectors_, self._index, self.backend_ = vectors, index, backend
        # Row-number ids and the id -> row lookup are made on first use: for
        # 10^6 galaxies either costs as much as building the index.
        self._ids = None if ids is None else np.asarray(ids).astype(str, copy=False)
        self._lookup = None
        self._fitted_on = (embeddings, catalogue)
        return self

    @property
    def ids_(self):
        """`numpy.ndarray` of str: ids of the indexed galaxies, in row order."""
        if "vectors_" not in self.__dict__:
            msg = f"{type(self).__name__} is not fitted yet; call fit() first"
            raise AttributeError(msg)
        if self._ids is None:
            self._ids = np.arange(len(self.vectors_)).astype(str)
        return self._ids

    def _rows_of(self, ids):
        """Return the rows of galaxy ids: a sorted search (vectorised), not a dict.

        Raises KeyError for ids not in the index and ValidationError for ids
        that label several rows (a query by such an id is ambiguous).
        """
        _check_fitted(self, "vectors_")
        wanted = np.asarray([ids] if isinstance(ids, str) else ids)
        wanted = wanted.astype(str, copy=False).reshape(-1)
        if self._lookup is None:
            order = np.argsort(self.ids_, kind="stable")
            self._lookup = (order, self.ids_[order])
        order, sorted_ids = self._lookup
        lo = np.searchsorted(sorted_ids, wanted, side="left")
        hi = np.searchsorted(sorted_ids, wanted, side="right")
        missing = hi == lo
        if np.any(missing):
            msg = (f"similarity-search: ids {wanted[missing][:5].tolist()} are not in the "
                   f"index ({len(sorted_ids)} galaxies)")
            raise KeyError(msg)
        repeated = hi - lo > 1
        if np.any(repeated):
            first = int(np.flatnonzero(repeated)[0])
            rows = np.sort(order[lo[first]:hi[first]])[:5].tolist()
            msg = (f"similarity-search: ids {np.unique(wanted[repeated])[:5].tolist()} label "
                   f"more than one indexed row (e.g. {wanted[first]!r} at rows {rows}), so a "
                   f"query by id is ambiguous; give unique ids or query by vectors=")
            raise ValidationError(msg)
        return order[lo].astype(np.int64, copy=False)

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
            rows = self._rows_of(ids)
            names = [ids] if isinstance(ids, str) else [str(i) for i in ids]
            queries = self.vectors_[rows]
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
        # row numbers are the ids when none were given: no need to make them all
        table["id"] = idx.ravel().astype(str) if self._ids is None else self._ids[idx.ravel()]
        table["similarity"] = np.clip(sim.ravel(), -1.0, 1.0)
        table["distance"] = 1.0 - table["similarity"]
        table.meta["backend"] = self.backend_
        return table

    def result(self):
        """Return the neighbours of ``query_ids`` (default: of every indexed galaxy).

        Returns
        -------
        table : `~astropy.table.QTable`
            As `query`.
        """
        _check_fitted(self, "vectors_")
        ids = list(self.ids_) if self.query_ids is None else list(self.query_ids)
        table = self.query(ids=ids)
        table.meta["task"] = self.name
        return table

    # -- hooks of the study layer -------------------------------------------------
    def describe(self):
        """Say how the neighbours were found.

        Returns
        -------
        text : str
        """
        backend = getattr(self, "backend_", self.backend)
        return f"exact cosine similarity search ({self.n_neighbors} neighbours, {backend})"

    @classmethod
    def figures(cls, outputs):
        """Draw query galaxies and their neighbours, when the run has thumbnails.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`
            ``options``: ``n_queries`` (default 4), ``queries`` (default: the
            first queries of the table), ``thumbnail_label`` (what the images
            show, for the caption).

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report import figures as F

        neighbours, thumbs, opts = outputs.table, outputs.thumbnails, outputs.options
        if not thumbs or neighbours is None or not len(neighbours):
            return {}, {}
        order = opts.get("queries") or list(dict.fromkeys(
            np.asarray(neighbours["query"]).astype(str)))
        shown = [q for q in order if q in thumbs][:int(opts.get("n_queries", 4))]
        if not shown:
            return {}, {}
        title = None
        caption = ("Query galaxies (left) and their nearest neighbours in the embedding "
                   "by cosine similarity (number under each id)")
        label = opts.get("thumbnail_label")
        caption += f"; images: {label}." if label else "."
        if outputs.collapsed:
            title = "COLLAPSED EMBEDDING: similarities near 1 carry no information"
            caption += (" These neighbours are not similar galaxies: "
                        + outputs.run["embedding"]["message"] + ".")
        fig = F.plot_similarity_grid(shown, neighbours, thumbs, title=title)
        return {"similarity search": fig}, {"similarity search": caption}
