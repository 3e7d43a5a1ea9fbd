"""Region search: the spaxels of a survey whose resolved embeddings are closest to a query region.

`RegionSearch` indexes the per-spaxel embedding cubes of a whole survey
(`~astro_cl.models.dense.DenseContrastive.embed_maps`: one
`~astropy.nddata.NDData` ``(D, ny, nx)`` per galaxy, with its WCS and mask)
and answers "regions like this one" for a spaxel given as ``(galaxy, x, y)``
or as a sky position ``(galaxy, SkyCoord)``. Similarity is the cosine of the
angle between embeddings. With faiss installed (the ``all`` extra) the index
is exact (``IndexFlatIP``) below ``exact_below`` spaxels and approximate above
(HNSW graph, ``IndexHNSWFlat``, inner product); without faiss an exact numpy
search (a chunked matrix product) is used.

`truth_regimes` and `region_precision` check a search against truth maps
(e.g. of `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey`): spaxels of a
regime (star-forming, retired, old, ...) are used as queries, and the
precision at k (the share of hits in the same regime) is compared with
chance (the regime's share of all indexed spaxels).
"""

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import ValidationError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.similarity import faiss_available

__all__ = ["REGIMES", "RegionSearch", "region_precision", "truth_regimes"]

#: Default regimes of `truth_regimes`: name -> (truth map, comparison, threshold, what it is).
#: EW(H-alpha) follows the mock's convention (negative in emission); the thresholds
#: are the WHAN classes of Cid Fernandes et al. (2011): star-forming above 6 A of
#: emission, retired below 3 A.
REGIMES = {
    "star-forming": ("ew_ha", "<=", -6.0, "EW(Halpha) emission >= 6 A"),
    "retired": ("ew_ha", ">", -3.0, "EW(Halpha) emission < 3 A"),
    "old": ("age_mw", ">=", 9.0, "mass-weighted age >= 9 Gyr"),
    "young": ("age_mw", "<", 5.0, "mass-weighted age < 5 Gyr"),
}

_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _as_cubes(maps):
    """Return ``(ids, cubes)``: galaxy ids and `NDData` embedding cubes from the accepted inputs."""
    from astropy.nddata import NDData

    if hasattr(maps, "items"):
        items = [(str(k), v) for k, v in maps.items()]
    else:
        items = []
        for i, m in enumerate(maps):
            if isinstance(m, dict) and not isinstance(m, NDData):
                m = m.get("embedding")
            gid = (getattr(m, "meta", None) or {}).get("id", str(i))
            items.append((str(gid), m))
    if not items:
        msg = "region-search: no embedding maps given"
        raise ValidationError(msg)
    ids = [gid for gid, _ in items]
    if len(set(ids)) != len(ids):
        dup = sorted({g for g in ids if ids.count(g) > 1})[:5]
        msg = f"region-search: galaxy ids {dup} appear more than once in the embedding maps"
        raise ValidationError(msg)
    cubes = []
    for gid, m in items:
        if not isinstance(m, NDData):
            m = NDData(np.asarray(m))
        if m.data.ndim != 3:
            msg = (f"region-search: the embedding map of galaxy {gid!r} has shape "
                   f"{m.data.shape}; expected (n_dim, ny, nx)")
            raise ValidationError(msg)
        cubes.append(m)
    dims = {c.data.shape[0] for c in cubes}
    if len(dims) != 1:
        msg = f"region-search: embedding maps have different sizes {sorted(dims)}; expected one"
        raise ValidationError(msg)
    return ids, cubes


def _valid(cube):
    """``(ny, nx)`` True where a spaxel is unmasked and its vector finite and non-zero."""
    data = np.asarray(cube.data)
    ok = np.all(np.isfinite(data), axis=0) & np.any(data != 0, axis=0)
    if cube.mask is not None:
        mask = np.asarray(cube.mask, dtype=bool)
        ok &= ~(mask.any(axis=0) if mask.ndim == 3 else mask)
    return ok


class RegionSearch(DownstreamTask):
    """Find the spaxels (regions) most similar to a query spaxel, across a survey.

    Parameters
    ----------
    n_neighbors : int, optional
        Default number of hits per query.
    backend : {"auto", "faiss", "numpy"}, optional
        ``"auto"``: faiss when installed, else numpy (exact).
    exact_below : int, optional
        With faiss: an exact index for fewer indexed spaxels than this, an
        approximate (HNSW) one above.
    hnsw_neighbors : int, optional
        Graph degree (``M``) of the HNSW index.
    ef_search : int, optional
        Search depth of the HNSW index (at least ``2 k`` is used).
    exclude_galaxy : bool, optional
        Leave hits in the query's own galaxy out (default False: the query
        spaxel itself is then the first hit).

    Attributes
    ----------
    ids_ : list of str
        Indexed galaxies.
    vectors_ : `numpy.ndarray`
        ``(n_spaxels, D)`` float32 unit vectors of the valid spaxels.
    galaxy_, x_, y_ : `numpy.ndarray`
        Galaxy number (into ``ids_``) and pixel column and row of each row.
    backend_, index_kind_ : str
        ``"faiss"`` or ``"numpy"``; ``"exact"`` or ``"hnsw"``.
    """

    name = "region-search"
    description = "Spaxels with the most similar resolved embeddings, by (galaxy, x, y) or sky."
    input_kind = "maps"

    def __init__(self, *, n_neighbors=10, backend="auto", exact_below=200_000,
                 hnsw_neighbors=32, ef_search=128, exclude_galaxy=False):
        self.n_neighbors = n_neighbors
        self.backend = backend
        self.exact_below = exact_below
        self.hnsw_neighbors = hnsw_neighbors
        self.ef_search = ef_search
        self.exclude_galaxy = exclude_galaxy

    def fit(self, maps, reference=None):
        """Index the valid spaxels of every embedding cube.

        Parameters
        ----------
        maps : sequence or mapping
            `~astropy.nddata.NDData` embedding cubes ``(D, ny, nx)`` (ids in
            ``meta["id"]``, else their position), a mapping id -> cube, or
            dicts with an ``"embedding"`` cube.
        reference : None
            Unused (truth maps go to `region_precision`).

        Returns
        -------
        self : `RegionSearch`
        """
        if self.backend not in ("auto", "faiss", "numpy"):
            msg = f"region-search: backend must be 'auto', 'faiss' or 'numpy', got {self.backend!r}"
            raise ValidationError(msg)
        if self.backend == "faiss" and not faiss_available():
            msg = ("region-search: backend='faiss' but faiss is not installed "
                   "(pip install 'astro_cl[all]' or faiss-cpu)")
            raise ValidationError(msg)
        ids, cubes = _as_cubes(maps)
        rows, gal, xs, ys = [], [], [], []
        for g, cube in enumerate(cubes):
            ok = _valid(cube)
            yy, xx = np.nonzero(ok)
            rows.append(np.asarray(cube.data, dtype=np.float32)[:, yy, xx].T)
            gal.append(np.full(len(yy), g, dtype=np.int32))
            xs.append(xx.astype(np.int32))
            ys.append(yy.astype(np.int32))
        vectors = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)
        if len(vectors) == 0:
            msg = f"region-search: every spaxel of the {len(ids)} embedding maps is masked"
            raise ValidationError(msg)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self.ids_ = ids
        self.vectors_ = vectors
        self.galaxy_ = np.concatenate(gal)
        self.x_ = np.concatenate(xs)
        self.y_ = np.concatenate(ys)
        self.wcs_ = [c.wcs for c in cubes]
        self.shapes_ = [tuple(c.data.shape[1:]) for c in cubes]
        # row of every valid spaxel, -1 elsewhere: queries by pixel are one look-up
        self._row_of = []
        start = 0
        for g, shape in enumerate(self.shapes_):
            lookup = np.full(shape, -1, dtype=np.int64)
            n = int(np.sum(self.galaxy_ == g))
            lookup[self.y_[start:start + n], self.x_[start:start + n]] = np.arange(start,
                                                                                 start + n)
            self._row_of.append(lookup)
            start += n
        self._galaxy_number = {gid: g for g, gid in enumerate(ids)}
        use_faiss = self.backend == "faiss" or (self.backend == "auto" and faiss_available())
        self.index_kind_ = "exact"
        if use_faiss:
            import faiss

            d = vectors.shape[1]
            if len(vectors) >= int(self.exact_below):
                index = faiss.IndexHNSWFlat(d, int(self.hnsw_neighbors),
                                            faiss.METRIC_INNER_PRODUCT)
                self.index_kind_ = "hnsw"
            else:
                index = faiss.IndexFlatIP(d)
            index.add(vectors)
            self._index, self.backend_ = index, "faiss"
        else:
            self._index, self.backend_ = None, "numpy"
        self.results_ = QTable({"n_galaxies": [len(ids)], "n_spaxels": [len(vectors)],
                                "embedding_dim": [vectors.shape[1]],
                                "backend": [self.backend_], "index": [self.index_kind_]})
        self.results_.meta["task"] = self.name
        self._fitted_on = (maps, reference)
        return self

    # -- queries --------------------------------------------------------------
    def _check_fitted(self):
        if "vectors_" not in self.__dict__:
            msg = f"{type(self).__name__} is not fitted yet; call fit() first"
            raise ValidationError(msg)

    def row_of(self, galaxy, x, y):
        """Return the index row of spaxel ``(x, y)`` of a galaxy.

        Parameters
        ----------
        galaxy : str
            Galaxy id.
        x, y : int
            Pixel column and row (rounded to the nearest pixel).

        Returns
        -------
        row : int

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the galaxy is not indexed, or the spaxel is outside its map or
            masked.
        """
        self._check_fitted()
        g = self._galaxy_number.get(str(galaxy))
        if g is None:
            msg = (f"region-search: galaxy {galaxy!r} is not indexed "
                   f"({len(self.ids_)} galaxies, e.g. {self.ids_[:3]})")
            raise ValidationError(msg)
        ny, nx = self.shapes_[g]
        xi, yi = round(float(x)), round(float(y))
        if not (0 <= xi < nx and 0 <= yi < ny):
            msg = (f"region-search: spaxel (x={x}, y={y}) is outside the {nx} x {ny} map of "
                   f"galaxy {galaxy!r}")
            raise ValidationError(msg)
        row = int(self._row_of[g][yi, xi])
        if row < 0:
            msg = (f"region-search: spaxel (x={xi}, y={yi}) of galaxy {galaxy!r} is masked; "
                   "query an unmasked spaxel")
            raise ValidationError(msg)
        return row

    def pixel_of(self, galaxy, coord):
        """Return the pixel ``(x, y)`` of a sky position in a galaxy's map (through its WCS).

        Parameters
        ----------
        galaxy : str
        coord : `~astropy.coordinates.SkyCoord`

        Returns
        -------
        x, y : float

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the galaxy's map has no WCS.
        """
        self._check_fitted()
        g = self._galaxy_number.get(str(galaxy))
        if g is None:
            msg = f"region-search: galaxy {galaxy!r} is not indexed"
            raise ValidationError(msg)
        wcs = self.wcs_[g]
        if wcs is None:
            msg = (f"region-search: the embedding map of galaxy {galaxy!r} has no WCS; "
                   "query by pixel (x, y)")
            raise ValidationError(msg)
        x, y = wcs.world_to_pixel(coord)
        return float(x), float(y)

    def _search(self, queries, k):
        """Return ``(similarity, rows)`` of the ``k`` nearest rows of each query (best first)."""
        k = min(int(k), len(self.vectors_))
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.backend_ == "faiss":
            if self.index_kind_ == "hnsw":
                self._index.hnsw.efSearch = max(int(self.ef_search), 2 * k)
            sim, idx = self._index.search(q, k)
            return sim.astype(np.float64), idx.astype(np.int64)
        sims, rows = [], []
        step = max(1, 2**24 // max(len(self.vectors_), 1))  # ~64 MB of scores per chunk
        for s in range(0, len(q), step):
            score = q[s:s + step] @ self.vectors_.T
            top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < score.shape[1] \
                else np.tile(np.arange(score.shape[1]), (len(score), 1))
            val = np.take_along_axis(score, top, axis=1)
            order = np.argsort(-val, axis=1, kind="stable")
            rows.append(np.take_along_axis(top, order, axis=1))
            sims.append(np.take_along_axis(val, order, axis=1).astype(np.float64))
        return np.concatenate(sims), np.concatenate(rows).astype(np.int64)

    def _hits(self, rows, k, exclude):
        """Return ``(similarity, rows)`` of ``k`` hits of index rows (-1: none).

        With ``exclude``, only hits in other galaxies than the query row's.
        """
        extra = 0
        if exclude:
            # enough to survive dropping the query galaxy's own spaxels
            extra = int(max(np.bincount(self.galaxy_).max(), 0))
        sim, idx = self._search(self.vectors_[rows], k + extra)
        if exclude:
            keep = (idx >= 0) & (self.galaxy_[np.clip(idx, 0, None)]
                                 != self.galaxy_[rows][:, None])
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
            sim = np.take_along_axis(sim, order, axis=1)
            idx = np.where(np.take_along_axis(keep, order, axis=1),
                           np.take_along_axis(idx, order, axis=1), -1)
        return sim[:, :k], idx[:, :k]

    def query(self, galaxy, x=None, y=None, *, coord=None, k=None, exclude_galaxy=None):
        """Return the spaxels most similar to one spaxel of an indexed galaxy.

        Parameters
        ----------
        galaxy : str
            Id of the query galaxy.
        x, y : float, optional
            Pixel column and row of the query spaxel.
        coord : `~astropy.coordinates.SkyCoord`, optional
            Its sky position instead (converted with the galaxy's WCS).
        k : int, optional
            Hits (default ``n_neighbors``).
        exclude_galaxy : bool, optional
            Default: the ``exclude_galaxy`` parameter.

        Returns
        -------
        hits : `~astropy.table.QTable`
            One row per hit, best first: ``rank``, ``galaxy``, ``x``, ``y``,
            ``ra`` and ``dec`` (deg; NaN without a WCS), ``similarity``
            (cosine). ``meta``: ``query`` (galaxy, x, y), ``backend``,
            ``index``.
        """
        import astropy.units as u

        self._check_fitted()
        if (coord is None) == (x is None or y is None):
            msg = "region-search: give the query spaxel as x= and y=, or as coord= (not both)"
            raise ValidationError(msg)
        if coord is not None:
            x, y = self.pixel_of(galaxy, coord)
        row = self.row_of(galaxy, x, y)
        k = self.n_neighbors if k is None else int(k)
        exclude = self.exclude_galaxy if exclude_galaxy is None else bool(exclude_galaxy)
        sim, idx = self._hits(np.array([row]), k, exclude)
        idx, sim = idx[0], sim[0]
        found = idx >= 0
        idx, sim = idx[found], sim[found]
        if not exclude:
            # the query is its own best match (similarity 1): first among ties,
            # and kept where an approximate index missed it
            keep = idx != row
            idx = np.concatenate([[row], idx[keep]])[:k]
            sim = np.concatenate([[1.0], sim[keep]])[:k]
        gal = self.galaxy_[idx]
        ra = np.full(len(idx), np.nan)
        dec = np.full(len(idx), np.nan)
        for g in np.unique(gal):
            wcs = self.wcs_[g]
            if wcs is None:
                continue
            sel = gal == g
            sky = wcs.pixel_to_world(self.x_[idx[sel]], self.y_[idx[sel]])
            ra[sel], dec[sel] = sky.icrs.ra.deg, sky.icrs.dec.deg
        table = QTable()
        table["rank"] = np.arange(1, len(idx) + 1, dtype=np.int64)
        table["galaxy"] = np.asarray([self.ids_[g] for g in gal], dtype=str)
        table["x"] = self.x_[idx].astype(np.int64)
        table["y"] = self.y_[idx].astype(np.int64)
        table["ra"] = ra * u.deg
        table["dec"] = dec * u.deg
        table["similarity"] = np.clip(sim, -1.0, 1.0)
        table.meta.update({"query": {"galaxy": str(galaxy), "x": int(self.x_[row]),
                                     "y": int(self.y_[row])},
                           "backend": self.backend_, "index": self.index_kind_})
        return table

    # -- figures --------------------------------------------------------------
    def plot_hits(self, hits, images=None, *, n_columns=6, box=3):
        """Draw the query's image and each hit's image with the region marked.

        Parameters
        ----------
        hits : `~astropy.table.QTable`
            From `query` (its ``meta["query"]`` gives the query spaxel).
        images : mapping of str to array-like or `~astropy.nddata.NDData`, optional
            A 2-D image per galaxy id (a 3-D stack shows its first plane).
            Default: the projection of each galaxy's embeddings on their
            first principal component over the index.
        n_columns : int, optional
            Panels per row.
        box : int, optional
            Side (pixels) of the square drawn around each region.

        Returns
        -------
        fig : `matplotlib.figure.Figure`
        """
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        self._check_fitted()
        q = hits.meta.get("query", {})
        panels = [(q.get("galaxy"), q.get("x"), q.get("y"), "query")]
        panels += [(str(r["galaxy"]), int(r["x"]), int(r["y"]),
                    f"#{int(r['rank'])}  {float(r['similarity']):.3f}") for r in hits]
        n = len(panels)
        cols = max(1, min(int(n_columns), n))
        nrows = -(-n // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(1.8 * cols, 1.95 * nrows), squeeze=False)
        for ax in axes.ravel():
            ax.set_axis_off()
        for ax, (gid, x, y, label) in zip(axes.ravel(), panels, strict=False):
            img = self._image(gid, images)
            if img is not None:
                finite = np.isfinite(img)
                lo, hi = (np.percentile(img[finite], [2, 98]) if finite.any() else (0, 1))
                ax.imshow(img, origin="lower", cmap="viridis", vmin=lo, vmax=hi)
            if x is not None:
                ax.add_patch(Rectangle((x - box / 2, y - box / 2), box, box, fill=False,
                                       edgecolor="red" if label == "query" else "white", lw=1.5))
            ax.set_title(f"{gid}\n{label}", fontsize=7)
        fig.tight_layout()
        return fig

    def _image(self, gid, images):
        """Return the image of a galaxy for `plot_hits` (2-D, NaN where masked) or None."""
        if images is not None:
            value = images.get(gid) if hasattr(images, "get") else None
            if value is None:
                return None
            arr = np.asarray(getattr(value, "data", value), dtype=float)
            return arr[0] if arr.ndim == 3 else arr
        g = self._galaxy_number.get(gid)
        if g is None:
            return None
        if "_pc1" not in self.__dict__:
            sample = self.vectors_[:: max(1, len(self.vectors_) // 20000)]
            centred = sample - sample.mean(0)
            self._pc1 = (sample.mean(0), np.linalg.svd(centred, full_matrices=False)[2][0])
        mean, pc = self._pc1
        img = np.full(self.shapes_[g], np.nan)
        sel = self.galaxy_ == g
        img[self.y_[sel], self.x_[sel]] = (self.vectors_[sel] - mean) @ pc
        return img

    def describe(self):
        """Say how the spaxels were indexed.

        Returns
        -------
        text : str
        """
        if "vectors_" not in self.__dict__:
            return self.description
        return (f"cosine search over {len(self.vectors_)} spaxels of {len(self.ids_)} galaxies "
                f"({self.backend_}, {self.index_kind_} index)")


def truth_regimes(truth, regimes=None):
    """Turn truth maps into boolean regime maps.

    Parameters
    ----------
    truth : mapping of str to mapping, or sequence
        Per galaxy id, its truth maps by name (`~astropy.nddata.NDData`,
        Quantity or array; e.g. ``record.maps``); a sequence of
        `~astro_cl.data.GalaxyRecord` is read through ``id`` and ``maps``.
    regimes : mapping, optional
        Name -> ``(map name, comparison, threshold[, description])`` with a
        comparison among ``<``, ``<=``, ``>``, ``>=`` and the threshold in the
        map's unit. Default `REGIMES`.

    Returns
    -------
    labels : dict of str to dict of str to `numpy.ndarray`
        Per galaxy id, per regime, a boolean ``(ny, nx)`` map (False where
        the truth is not finite).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If a regime names an unknown comparison, or a map no galaxy has.
    """
    regimes = dict(REGIMES if regimes is None else regimes)
    if not hasattr(truth, "items"):
        truth = {str(r.id): r.maps for r in truth}
    out = {}
    for gid, maps in truth.items():
        labels = {}
        for name, spec in regimes.items():
            field, op, threshold = spec[:3]
            if op not in _OPS:
                msg = (f"truth_regimes: regime {name!r} has comparison {op!r}; expected one "
                       f"of {sorted(_OPS)}")
                raise ValidationError(msg)
            if field not in maps:
                msg = (f"truth_regimes: regime {name!r} needs the truth map {field!r}, which "
                       f"galaxy {gid!r} does not have (maps: {sorted(maps)})")
                raise ValidationError(msg)
            value = maps[field]
            arr = np.asarray(getattr(value, "data", getattr(value, "value", value)), dtype=float)
            with np.errstate(invalid="ignore"):
                labels[name] = _OPS[op](arr, float(threshold)) & np.isfinite(arr)
        out[str(gid)] = labels
    return out


def region_precision(search, labels, *, k=10, n_queries=100, seed=0, exclude_galaxy=True):
    """Precision at k of a fitted `RegionSearch` per regime, against chance.

    For each regime, up to ``n_queries`` indexed spaxels of that regime are
    drawn at random as queries; the precision at k of a query is the share
    of its ``k`` hits that are in the same regime, and chance is the
    regime's share of all indexed spaxels (the expected precision of a
    random search). Spaxels of galaxies without labels count as outside
    every regime.

    Parameters
    ----------
    search : `RegionSearch`
        Fitted.
    labels : mapping
        From `truth_regimes`: per galaxy id, per regime, a boolean map of
        the embedding maps' shape.
    k : int, optional
    n_queries : int, optional
        Queries per regime.
    seed : int, optional
        Seed of the draw of the queries.
    exclude_galaxy : bool, optional
        Count only hits in other galaxies than the query's (default): a
        region's neighbours in its own galaxy share its regime by mere
        proximity.

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per regime: ``regime``, ``n_spaxels`` (indexed spaxels in
        the regime), ``chance``, ``n_queries``, ``precision`` (mean precision
        at k), ``precision_err`` (its standard error), ``lift``
        (precision / chance). ``meta``: ``k``, ``n_indexed``,
        ``exclude_galaxy``, ``seed``.
    """
    search._check_fitted()
    names = list(dict.fromkeys(r for per in labels.values() for r in per))
    if not names:
        msg = "region_precision: the labels have no regime"
        raise ValidationError(msg)
    n = len(search.vectors_)
    member = {r: np.zeros(n, dtype=bool) for r in names}
    for g, gid in enumerate(search.ids_):
        per = labels.get(gid)
        if per is None:
            continue
        sel = np.flatnonzero(search.galaxy_ == g)
        for r in names:
            lab = per.get(r)
            if lab is None:
                continue
            lab = np.asarray(lab, dtype=bool)
            if lab.shape != search.shapes_[g]:
                msg = (f"region_precision: regime {r!r} of galaxy {gid!r} has shape "
                       f"{lab.shape}, its embedding map {search.shapes_[g]}")
                raise ValidationError(msg)
            member[r][sel] = lab[search.y_[sel], search.x_[sel]]
    rng = np.random.default_rng(seed)
    rows = []
    for r in names:
        pool = np.flatnonzero(member[r])
        chance = len(pool) / n
        if len(pool) == 0:
            rows.append((r, 0, chance, 0, np.nan, np.nan, np.nan))
            continue
        queries = rng.choice(pool, size=min(int(n_queries), len(pool)), replace=False)
        _, idx = search._hits(queries, int(k), bool(exclude_galaxy))
        found = idx >= 0
        hit = member[r][np.clip(idx, 0, None)] & found
        prec = hit.sum(axis=1) / np.maximum(found.sum(axis=1), 1)
        err = prec.std(ddof=1) / np.sqrt(len(prec)) if len(prec) > 1 else np.nan
        mean = float(prec.mean())
        rows.append((r, len(pool), chance, len(queries), mean, float(err),
                     mean / chance if chance > 0 else np.nan))
    table = QTable(rows=rows, names=("regime", "n_spaxels", "chance", "n_queries", "precision",
                                     "precision_err", "lift"))
    table.meta.update({"k": int(k), "n_indexed": int(n), "exclude_galaxy": bool(exclude_galaxy),
                       "seed": int(seed)})
    return table
