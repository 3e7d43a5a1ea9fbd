"""Which catalogue properties an embedding encodes, and how strongly.

`PropertyCorrelation` ranks every catalogue property by how well the embedding
predicts it: the cross-validated R^2 of a k-nearest-neighbour regression for
numeric properties, and the chance-corrected balanced accuracy of a
k-nearest-neighbour classifier for categorical ones (morphological type). Both
scores are 0 at chance level and 1 for a perfect prediction, so they rank on a
common scale. Alongside, the Spearman rank correlation of each property with the
two axes of a 2-D projection (UMAP by default) describes the structure one
sees by eye.

`compare_with_study` puts a measured ranking beside the order found for eCALIFA
by Martinez-Solaeche et al. (2024, A&A 688, A160) with Kendall's tau, and
`compare_rankings` compares two measured rankings (e.g. with and without the
luminosity channel).
"""

import functools
import warnings

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import (
    _bootstrap_score,
    _check_fitted,
    _log_transform,
    align,
    column_unit,
    float_column,
    hubble_t_type,
    is_categorical,
    label_column,
    left_out_columns,
    property_columns,
)

__all__ = ["EXACT_KNN_LIMIT", "STUDY_ORDER", "PropertyCorrelation", "compare_rankings",
           "compare_with_study", "project_2d"]

#: The eCALIFA study's ranking (strongest first) and the catalogue columns that
#: measure each property, in order of preference (eCALIFA pyPipe3D catalogue
#: names, the paper's label-table names, and the mock catalogue names).
#: Morphology is matched first as ``T_type``, the numerical Hubble stage
#: (`astro_cl.utils.morphology.hubble_stage`), scored by R^2 like the other
#: properties, before the categorical ``type``.
STUDY_ORDER = (
    ("EW(Halpha)", ("EW_Ha_cen", "EW_Ha_Re", "WHa_int", "EW_Ha_ALL")),
    ("morphology", ("T_type", "type", "morphology")),
    ("stellar metallicity", ("ZH_LW_Re_fit", "met_LW_int", "ZH_MW_Re_fit", "met_MW_int")),
    ("stellar age", ("Age_LW_Re_fit", "Age_LW_int", "Age_MW_Re_fit", "Age_MW_int")),
    ("stellar mass surface density", ("Sigma_Mass_cen", "Sigma_Mass_Re", "Sigma_Mass_ALL")),
    ("[NII]/Halpha", ("log_NII_Ha_cen", "log_NII_Ha_Re", "log_NII_Ha_ALL")),
    ("stellar mass", ("log_Mass", "lMass_int")),
)


#: Display names of the projection methods.
_PROJECTION_NAMES = {"umap": "UMAP", "pca": "PCA", "given": "given"}

#: Below this many galaxies `project_2d` gives UMAP exact nearest neighbours
#: (umap-learn's own threshold for exact rather than approximate ones).
EXACT_KNN_LIMIT = 4096


def _exact_knn(X, n_neighbors, metric):
    """Return the exact neighbours (self first) as UMAP takes them: ``(indices, distances, None)``.

    Returns None when scikit-learn does not know ``metric`` (UMAP then finds them itself).
    """
    from sklearn.neighbors import NearestNeighbors

    if not isinstance(metric, str):
        return None
    try:
        dist, idx = NearestNeighbors(n_neighbors=n_neighbors, metric=metric,
                                     algorithm="brute").fit(X).kneighbors(X)
    except ValueError:  # a metric only umap-learn knows
        return None
    return idx, dist.astype(np.float32), None


@functools.cache
def _cache_umap_compilation():
    """Let numba keep umap-learn's compiled functions on disk, once per process.

    umap-learn compiles its layout optimiser and helpers with numba at the
    first projection of every process, without ``cache=True``; switching
    caching on for those dispatchers makes that cost a one-off per machine
    (the cache is checked against the source files, so an upgrade
    recompiles). ``ASTRO_CL_NUMBA_CACHE=0`` leaves umap-learn as it is.
    """
    import os
    import sys

    if os.environ.get("ASTRO_CL_NUMBA_CACHE", "1") == "0":
        return
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba always comes with umap-learn
        return
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("umap", "pynndescent")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and value._cache.__class__.__name__ == "NullCache":
                try:
                    value.enable_caching()
                except Exception:  # a function numba cannot cache stays uncached
                    continue


def project_2d(X, *, method="umap", seed=0, umap_params=None):
    """Project embeddings to two dimensions.

    Parameters
    ----------
    X : `numpy.ndarray`
        ``(n_galaxies, n_features)`` embeddings.
    method : {"umap", "pca"}, optional
        UMAP (umap-learn, cosine metric by default) or principal components.
    seed : int, optional
        Random state of UMAP (which makes it deterministic and single-threaded).
    umap_params : dict, optional
        Extra arguments of `umap.UMAP` (e.g. ``n_neighbors``, ``min_dist``).

    Returns
    -------
    projection : `numpy.ndarray`
        ``(n_galaxies, 2)``.

    Notes
    -----
    umap-learn's numba functions are compiled once per machine, not once per
    process: their on-disk cache is switched on at the first projection
    (``ASTRO_CL_NUMBA_CACHE=0`` turns this off).

    Below `EXACT_KNN_LIMIT` galaxies umap-learn finds the exact nearest
    neighbours itself, from the full distance matrix. Here scikit-learn finds
    them (brute force, for any metric it knows) and hands them to UMAP as
    ``precomputed_knn``: the same neighbour graph, without compiling
    umap-learn's parallel neighbour search, which is not cached on disk and
    took about half of a small projection's time in a fresh process
    (figures in ``benchmarks/README.md``).
    """
    X = np.asarray(X, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        n_comp = min(2, X.shape[1])
        out = PCA(n_components=n_comp, random_state=seed).fit_transform(X)
        return np.column_stack([out, np.zeros((len(X), 2 - n_comp))]) if n_comp < 2 else out
    if method != "umap":
        msg = f"projection method must be 'umap' or 'pca', got {method!r}"
        raise ValueError(msg)
    with warnings.catch_warnings():
        # umap-learn warns at import when TensorFlow (ParametricUMAP) is absent.
        warnings.simplefilter("ignore", ImportWarning)
        import umap
    _cache_umap_compilation()

    params = {"n_neighbors": min(15, len(X) - 1), "min_dist": 0.1, "metric": "cosine"}
    params.update(umap_params or {})
    if len(X) < EXACT_KNN_LIMIT and "precomputed_knn" not in params:
        knn = _exact_knn(X, int(params["n_neighbors"]), params["metric"])
        if knn is not None:
            params["precomputed_knn"] = knn
    with warnings.catch_warnings():
        # umap-learn warns that random_state forces n_jobs=1 (wanted: reproducible).
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        # only fit_transform is used, never transform on new data
        warnings.filterwarnings("ignore", message=".*knn_search_index.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        reducer = umap.UMAP(n_components=2, random_state=seed, **params)
        return np.asarray(reducer.fit_transform(X), dtype=np.float64)


class PropertyCorrelation(DownstreamTask):
    """Rank catalogue properties by how well the embedding encodes them.

    For each property, galaxies with a valid value are split into ``cv``
    shuffled folds (stratified for categories); a k-nearest-neighbour model
    trained on the other folds predicts each galaxy. The score is the R^2 of
    these out-of-fold predictions (numeric properties) or their balanced
    accuracy adjusted for chance, ``(BA - 1/K) / (1 - 1/K)`` for K classes
    (categorical properties). Uncertainties are the bootstrap standard
    deviation of the score over galaxies. The Spearman rank correlation of the
    property with each axis of a 2-D projection (UMAP by default) is reported
    too; Hubble types are converted to the numeric T-type for it.

    Parameters
    ----------
    properties : list of str, optional
        Catalogue columns to rank (default: the physical properties, see
        `~astro_cl.tasks.catalogue.property_columns`: numeric columns and
        categorical ones with 2-30 classes, leaving out positions, angles,
        distances and redshifts, identifiers, uncertainties and flags). Columns
        listed here are ranked whatever their role.
    n_neighbors : int, optional
        Neighbours of the kNN models.
    metric : str, optional
        Distance of the kNN models. On L2-normalised embeddings (SimCLR)
        Euclidean and cosine distances order neighbours identically.
    cv : int, optional
        Number of cross-validation folds.
    n_bootstrap : int, optional
        Bootstrap resamples for the score uncertainty (0 to skip).
    projection : {"umap", "pca"}, array-like or None, optional
        2-D projection for the rank correlations: computed with UMAP or PCA,
        given as an ``(N, 2)`` array in the order of the embeddings (e.g. the
        UMAP of a figure), or None to skip them.
    umap_params : dict, optional
        Extra arguments of `umap.UMAP`.
    log_transform : {"auto", True, False}, optional
        Score numeric properties in log10: ``"auto"`` does it for one-signed
        columns without a logarithmic unit spanning more than two decades
        (``log10(|EW|)`` for Pipe3D's negative emission equivalent widths).
    min_samples : int, optional
        Properties with fewer valid galaxies are skipped.
    seed : int, optional
        Seed of the folds, the bootstrap and the projection.

    Attributes
    ----------
    results_ : `~astropy.table.QTable`
        The ranking (`result`, `evaluate`), one row per property, best
        first: ``rank``, ``property``, ``kind`` (numeric/categorical),
        ``metric``, ``score``, ``score_err``, ``r2``, ``balanced_accuracy``,
        ``spearman_axis1``, ``spearman_axis2`` (rank correlations with the
        projection's axes), ``spearman_max`` (largest absolute correlation),
        ``log10`` (whether the property was scored in log10),
        ``n_galaxies``. ``meta`` holds ``projection`` (its name: ``"UMAP"``,
        ``"PCA"``, ...), ``left_out`` and ``skipped``.
    projection_ : `numpy.ndarray` or None
        ``(n_galaxies, 2)`` projection used for the rank correlations.
    projection_method_ : str or None
        ``"umap"``, ``"pca"``, ``"given"`` (an array as ``projection``) or None.
    left_out_ : dict of str to str
        Catalogue columns not ranked by default and why (their role, e.g.
        ``"position"`` for RA; see `~astro_cl.tasks.catalogue.left_out_columns`);
        empty when ``properties`` is given.
    skipped_ : dict of str to str
        Properties that could not be scored and why (too few galaxies, ...).
    ids_ : `numpy.ndarray` or None
        Galaxy ids in the order of `projection_`.
    predictions_ : dict of str to `numpy.ndarray`
        Out-of-fold predictions per property (NaN/None where not predicted).
    """

    name = "property-correlation"
    description = "Rank catalogue properties by kNN R^2 or balanced accuracy from the embedding."

    def __init__(self, *, properties=None, n_neighbors=10, metric="euclidean", cv=5,
                 n_bootstrap=200, projection="umap", umap_params=None, log_transform="auto",
                 min_samples=20, seed=0):
        self.properties = properties
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.cv = cv
        self.n_bootstrap = n_bootstrap
        self.projection = projection
        self.umap_params = umap_params
        self.log_transform = log_transform
        self.min_samples = min_samples
        self.seed = seed

    def fit(self, embeddings, catalogue=None):
        """Measure every property's score and rank correlations.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
            ``(N, D)`` array or table with ``id`` and ``embedding`` columns.
        catalogue : `~astropy.table.QTable`
            Properties, joined on ``id`` (or ``Name``/``ID``) or matched by row.

        Returns
        -------
        self : `PropertyCorrelation`
        """
        X, cat, ids = align(embeddings, catalogue)
        if cat is None:
            msg = "property-correlation needs a catalogue of properties"
            raise CatalogueError(msg)
        if self.properties is not None:
            names, left_out = list(self.properties), {}
        else:
            names, left_out = property_columns(cat), left_out_columns(cat)
        given = self.projection is not None and not isinstance(self.projection, str)
        if given:
            proj = np.asarray(self.projection, dtype=np.float64)
            if proj.shape != (len(X), 2):
                msg = (f"property-correlation: projection: expected an array of shape "
                       f"({len(X)}, 2), one row per galaxy, got {proj.shape}")
                raise ValueError(msg)
        elif self.projection is not None:
            proj = project_2d(X, method=self.projection, seed=self.seed,
                              umap_params=self.umap_params)
        else:
            proj = None
        rng = np.random.default_rng(self.seed)
        rows, predictions, skipped = [], {}, {}
        for name in names:
            row, pred = self._score_property(X, cat, name, proj, rng, skipped)
            if row is not None:
                rows.append(row)
                predictions[name] = pred
        self.projection_ = proj
        self.projection_method_ = (None if proj is None else "given" if given
                                   else self.projection)
        self.ids_ = ids
        self.predictions_ = predictions
        self.left_out_ = left_out
        self.skipped_ = skipped
        self.results_ = self._table(rows, len(X))
        self._fitted_on = (embeddings, catalogue)
        return self

    def _score_property(self, X, cat, name, proj, rng, skipped):
        from scipy.stats import spearmanr
        from sklearn.metrics import balanced_accuracy_score, r2_score
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        categorical = is_categorical(cat[name])
        need = max(self.min_samples, 2 * self.cv)
        reason = None
        if categorical:
            labels = label_column(cat, name)
            valid = np.array([v is not None for v in labels])
            classes, counts = np.unique(labels[valid].astype(str), return_counts=True)
            keep = set(classes[counts >= self.cv])
            n_labelled = int(valid.sum())
            valid &= np.array([v in keep for v in labels])
            y = labels[valid].astype(str)
            rank_values = hubble_t_type(labels)
            logged = False
            if len(keep) < 2:
                big = ", ".join(f"{c} ({k})" for c, k in zip(classes, counts, strict=True)
                                if c in keep) or "none"
                reason = (f"{n_labelled} labelled galaxies in {len(classes)} classes, but "
                          f"{len(keep)} class(es) with the {self.cv} members a {self.cv}-fold "
                          f"cross-validation needs: {big}")
            elif int(valid.sum()) < need:
                reason = (f"{int(valid.sum())} galaxies in the {len(keep)} classes with at "
                          f"least {self.cv} members; needs {need}")
        else:
            values, logged = _log_transform(float_column(cat, name), column_unit(cat, name),
                                            self.log_transform)
            valid = np.isfinite(values)
            y = values[valid]
            rank_values = values
            if int(valid.sum()) < need:
                reason = f"{int(valid.sum())} galaxies with a value; needs {need}"
            elif len(np.unique(y)) < 2:
                reason = f"all {int(valid.sum())} galaxies have the same value"
        n = int(valid.sum())
        if reason is not None:
            skipped[name] = reason
            warnings.warn(f"property-correlation: {name!r} skipped: {reason}", AstroCLWarning,
                          stacklevel=3)
            return None, None
        k = min(self.n_neighbors, int(n * (self.cv - 1) / self.cv) - 1)
        Xv = X[valid]
        if categorical:
            folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.seed)
            model = KNeighborsClassifier(n_neighbors=k, metric=self.metric, algorithm="brute")
            pred = cross_val_predict(model, Xv, y, cv=folds)

            def score_fn(t, p):
                return balanced_accuracy_score(t, p, adjusted=True)

            raw = balanced_accuracy_score(y, pred)
        else:
            folds = KFold(self.cv, shuffle=True, random_state=self.seed)
            model = KNeighborsRegressor(n_neighbors=k, metric=self.metric, algorithm="brute",
                                        weights="distance")
            pred = cross_val_predict(model, Xv, y, cv=folds)
            score_fn = r2_score
            raw = r2_score(y, pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = float(score_fn(y, pred))
        err = _bootstrap_score(score_fn, y, pred, n_bootstrap=self.n_bootstrap, rng=rng)
        rho = [np.nan, np.nan]
        if proj is not None and rank_values is not None:
            ok = np.isfinite(rank_values)
            if ok.sum() >= 3 and np.ptp(rank_values[ok]) > 0:
                rho = [float(spearmanr(proj[ok, j], rank_values[ok]).statistic)
                       if np.ptp(proj[ok, j]) > 0 else np.nan for j in (0, 1)]
        full = np.full(len(X), None if categorical else np.nan, dtype=object if categorical
                       else np.float64)
        full[valid] = pred
        row = {
            "property": name,
            "kind": "categorical" if categorical else "numeric",
            "metric": "balanced_accuracy_adjusted" if categorical else "r2",
            "score": score,
            "score_err": err,
            "r2": np.nan if categorical else float(raw),
            "balanced_accuracy": float(raw) if categorical else np.nan,
            "spearman_axis1": rho[0],
            "spearman_axis2": rho[1],
            "log10": logged,
            "n_galaxies": n,
        }
        return row, full

    def _table(self, rows, n_total):
        cols = ["rank", "property", "kind", "metric", "score", "score_err", "r2",
                "balanced_accuracy", "spearman_axis1", "spearman_axis2", "spearman_max",
                "log10", "n_galaxies"]
        rows = sorted(rows, key=lambda r: -r["score"] if np.isfinite(r["score"]) else np.inf)
        table = QTable()
        table["rank"] = np.arange(1, len(rows) + 1, dtype=np.int64)
        for key in cols[1:]:
            if key == "spearman_max":
                r1 = np.array([r["spearman_axis1"] for r in rows], dtype=float)
                r2 = np.array([r["spearman_axis2"] for r in rows], dtype=float)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    table[key] = np.fmax(np.abs(r1), np.abs(r2)) if rows else np.zeros(0)
            elif key in ("property", "kind", "metric"):
                table[key] = np.array([r[key] for r in rows], dtype=str) if rows else \
                    np.zeros(0, dtype="U1")
            elif key == "n_galaxies":
                table[key] = np.array([r[key] for r in rows], dtype=np.int64)
            elif key == "log10":
                table[key] = np.array([r[key] for r in rows], dtype=bool)
            else:
                table[key] = np.array([r[key] for r in rows], dtype=np.float64)
        table.meta["task"] = self.name
        table.meta["params"] = {k: v for k, v in self.get_params(deep=False).items()
                                if isinstance(v, (int, float, str, type(None), list, tuple))}
        table.meta["n_galaxies"] = int(n_total)
        method = getattr(self, "projection_method_", None)
        table.meta["projection"] = _PROJECTION_NAMES.get(method, method)
        table.meta["left_out"] = dict(getattr(self, "left_out_", {}))
        table.meta["skipped"] = dict(getattr(self, "skipped_", {}))
        table.meta["description"] = (
            "score = cross-validated kNN R^2 (numeric) or chance-adjusted balanced accuracy "
            "(categorical); score_err = bootstrap std over galaxies; spearman_axis1/2 = rank "
            f"correlation with the axes of the {table.meta['projection'] or '2-D'} projection")
        return table

    # -- hooks of the study layer -------------------------------------------------
    def galaxy_columns(self):
        """Return the 2-D projection per galaxy: ``projection_1``, ``projection_2``.

        Returns
        -------
        columns : `~astropy.table.QTable` or None
            With ``id`` when the embeddings had ids; None without a projection.
        """
        _check_fitted(self, "results_")
        if self.projection_ is None:
            return None
        out = QTable()
        if self.ids_ is not None:
            out["id"] = self.ids_
        out["projection_1"] = self.projection_[:, 0]
        out["projection_2"] = self.projection_[:, 1]
        return out

    def extra_tables(self):
        """Return the ranking beside the eCALIFA study's order (`compare_with_study`).

        Returns
        -------
        tables : dict
            ``{"study-comparison": ...}``.
        """
        _check_fitted(self, "results_")
        return {"study-comparison": compare_with_study(self.results_)}

    def findings(self):
        """Return the columns left out, the properties skipped, the projection, Kendall's tau.

        Returns
        -------
        findings : dict
            ``left_out``, ``skipped_properties``, ``projection`` (its name or
            None), ``kendall_tau`` (against the study's order).
        """
        _check_fitted(self, "results_")
        return {"left_out": dict(self.left_out_), "skipped_properties": dict(self.skipped_),
                "projection": self.results_.meta.get("projection"),
                "kendall_tau": compare_with_study(self.results_).meta["kendall_tau"]}

    def describe(self):
        """Say what was ranked and how.

        Returns
        -------
        text : str
        """
        n = len(self.results_) if "results_" in self.__dict__ else 0
        projection = _PROJECTION_NAMES.get(getattr(self, "projection_method_", None)) or "no"
        return (f"property ranking by cross-validated kNN score ({n} properties, "
                f"{self.cv}-fold, {self.n_neighbors} neighbours, {self.n_bootstrap} bootstrap "
                f"resamples; {projection} projection)")

    @classmethod
    def figures(cls, outputs):
        """Draw the ranking and the projection coloured by the best-ranked properties.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`
            ``outputs.options["n_columns"]`` properties are drawn on the
            projection (default 9).

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report import figures as F

        ranking, figs, caps = outputs.table, {}, {}
        if ranking is None or not len(ranking):
            return figs, caps
        proj = outputs.projection_name
        figs["property ranking"] = F.plot_correlation_ranking(
            ranking, study=outputs.tables.get("study-comparison"))
        caps["property ranking"] = (
            "How well the embedding predicts each catalogue property: cross-validated R^2 of "
            "a k-nearest-neighbour regression (numbers, blue) or chance-adjusted balanced "
            "accuracy of a kNN classifier (classes, orange); error bars are bootstrap "
            f"standard deviations. Right: the largest rank correlation with the {proj} axes.")
        xy, galaxies = outputs.projection, outputs.galaxies
        if xy is not None:
            n_columns = int(outputs.options.get("n_columns", 9))
            cols = [str(p) for p in ranking["property"]
                    if str(p) in galaxies.colnames][:n_columns]
            if cols:
                name = f"{proj} projection coloured by property"
                figs[name] = F.plot_projection(xy, galaxies, cols, projection=proj)
                caps[name] = (f"The {proj} projection of the embedding to two dimensions, one "
                              f"panel per property, best ranked first; grey: no value.")
        return figs, caps

    @classmethod
    def headline(cls, outputs):
        """Return the best-predicted property and Kendall's tau against the study's order.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        rows : list of dict
        """
        rows, ranking = [], outputs.table
        if ranking is not None and len(ranking):
            top = str(ranking["property"][0])
            ew = [c for c in STUDY_ORDER[0][1] if c in set(ranking["property"].astype(str))]
            rows.append({"result": "property the embedding predicts best",
                         "value": f"{top} ({float(ranking['score'][0]):.2f})",
                         "reference": "EW(Halpha)", "criterion": "EW(Halpha) first",
                         "passed": (top in STUDY_ORDER[0][1]) if ew else None})
        comparison = outputs.tables.get("study-comparison")
        if comparison is not None and np.isfinite(comparison.meta.get("kendall_tau", np.nan)):
            rows.append({"result": (f"Kendall's tau of the ranking vs the study's order "
                                    f"({comparison.meta['n_matched']} properties)"),
                         "value": _tau_text(comparison.meta),
                         "reference": "1 = the same order", "criterion": "", "passed": None})
        return rows


def _tau_text(meta):
    """Kendall's tau with its 95 per cent range from the score errors and its p-value."""
    lo, hi = meta.get("kendall_tau_range", [np.nan, np.nan])
    span = f", 95% range {lo:.2f} to {hi:.2f}" if np.isfinite([lo, hi]).all() else ""
    return f"{meta['kendall_tau']:.2f} (p = {meta['kendall_pvalue']:.2f}{span})"


def _ranking_column(table):
    if "property" not in table.colnames or "score" not in table.colnames:
        msg = f"ranking table: expected 'property' and 'score' columns, got {table.colnames}"
        raise CatalogueError(msg)
    return [str(p) for p in table["property"]], np.asarray(table["score"], dtype=float)


def compare_with_study(table, *, study_order=STUDY_ORDER, n_draws=1000, seed=0):
    """Put a measured ranking beside the eCALIFA study's order.

    Each study property is matched to the first of its candidate columns that
    the measured table contains; the matched properties are re-ranked among
    themselves by their measured score and compared with the study's order by
    Kendall's tau. How firm that tau is follows from the score errors: scores
    drawn as independent normals (``score``, ``score_err``) give a range of
    taus; properties whose scores differ by less than their errors can swap
    places, and the range says how much that moves tau.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `PropertyCorrelation.evaluate`.
    study_order : sequence of (str, sequence of str), optional
        The reference order and candidate columns (default `STUDY_ORDER`).
    n_draws : int, optional
        Draws of the scores for the tau range (0: no range).
    seed : int, optional
        Seed of the draws.

    Returns
    -------
    comparison : `~astropy.table.QTable`
        Columns ``study_rank``, ``property``, ``column`` (empty when not
        measured), ``measured_rank`` (-1 when not measured), ``score``,
        ``score_err``. ``meta["kendall_tau"]`` and ``meta["kendall_pvalue"]``
        compare the two orders over the matched properties (NaN with fewer
        than 2); ``meta["kendall_tau_range"]`` is the central 95 per cent of
        tau over the score draws (NaNs without errors or draws);
        ``meta["n_matched"]`` counts the properties.
    """
    from scipy.stats import kendalltau

    props, scores = _ranking_column(table)
    errs = (np.asarray(table["score_err"], dtype=float) if "score_err" in table.colnames
            else np.full(len(props), np.nan))
    index = {p: i for i, p in enumerate(props)}
    matched = []
    for label, candidates in study_order:
        column = next((c for c in candidates if c in index), "")
        matched.append((label, column))
    measured_scores = np.array([scores[index[c]] if c else np.nan for _, c in matched])
    have = np.isfinite(measured_scores)
    order = np.argsort(-np.where(have, measured_scores, -np.inf), kind="stable")
    measured_rank = np.full(len(matched), -1, dtype=np.int64)
    measured_rank[order[: have.sum()]] = np.arange(1, have.sum() + 1)
    out = QTable()
    out["study_rank"] = np.arange(1, len(matched) + 1, dtype=np.int64)
    out["property"] = np.array([m[0] for m in matched], dtype=str)
    out["column"] = np.array([m[1] for m in matched], dtype=str)
    out["measured_rank"] = measured_rank
    out["score"] = measured_scores
    out["score_err"] = np.array([errs[index[c]] if c else np.nan for _, c in matched])
    tau = pvalue = np.nan
    if have.sum() >= 2:
        result = kendalltau(out["study_rank"][have], measured_rank[have])
        tau, pvalue = float(result.statistic), float(result.pvalue)
    out.meta["kendall_tau"] = tau
    out.meta["kendall_pvalue"] = pvalue
    out.meta["kendall_tau_range"] = _tau_range(out["score"][have], out["score_err"][have],
                                               out["study_rank"][have], n_draws, seed)
    out.meta["n_matched"] = int(have.sum())
    out.meta["reference"] = "Martinez-Solaeche et al. 2024, A&A 688, A160 (arXiv:2405.13471)"
    return out


def _tau_range(scores, errors, study_rank, n_draws, seed):
    """Central 95 per cent of Kendall's tau with the scores drawn from their errors."""
    from scipy.stats import kendalltau

    scores, errors = np.asarray(scores, float), np.asarray(errors, float)
    if len(scores) < 2 or int(n_draws) < 1 or not np.isfinite(errors).all():
        return [np.nan, np.nan]
    draws = np.random.default_rng(seed).normal(scores, errors, (int(n_draws), len(scores)))
    # rank of each property in each draw, best (highest score) first
    ranks = np.argsort(np.argsort(-draws, axis=1), axis=1) + 1
    taus = np.array([kendalltau(study_rank, r).statistic for r in ranks])
    return [float(v) for v in np.percentile(taus, [2.5, 97.5])]


def compare_rankings(a, b, *, labels=("a", "b")):
    """Compare two property rankings (e.g. with and without the luminosity channel).

    Parameters
    ----------
    a, b : `~astropy.table.Table`
        Outputs of `PropertyCorrelation.evaluate`.
    labels : tuple of str, optional
        Suffixes of the per-ranking columns.

    Returns
    -------
    comparison : `~astropy.table.QTable`
        For the properties in both: ``property``, ``rank_<a>``, ``rank_<b>``
        (re-ranked among the shared properties), ``score_<a>``, ``score_<b>``,
        ``delta_score`` (b - a), ordered as in ``a``. ``meta["kendall_tau"]``,
        ``meta["kendall_pvalue"]``, ``meta["mean_abs_delta_score"]``.
    """
    from scipy.stats import kendalltau

    pa, sa = _ranking_column(a)
    pb, sb = _ranking_column(b)
    score_b = dict(zip(pb, sb, strict=True))
    score_a = dict(zip(pa, sa, strict=True))
    shared = [p for p in pa if p in score_b]
    if not shared:
        msg = "compare_rankings: the two tables share no property"
        raise CatalogueError(msg)
    va = np.array([score_a[p] for p in shared])
    vb = np.array([score_b[p] for p in shared])
    shared_sorted = sorted(shared, key=lambda p: -score_a[p])

    def ranks(values):
        r = np.empty(len(values), dtype=np.int64)
        r[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
        return r

    ra, rb = ranks(va), ranks(vb)
    order = [shared.index(p) for p in shared_sorted]
    la, lb = labels
    out = QTable()
    out["property"] = np.array(shared_sorted, dtype=str)
    out[f"rank_{la}"] = ra[order]
    out[f"rank_{lb}"] = rb[order]
    out[f"score_{la}"] = va[order]
    out[f"score_{lb}"] = vb[order]
    out["delta_score"] = vb[order] - va[order]
    tau = pvalue = np.nan
    if len(shared) >= 2:
        result = kendalltau(ra, rb)
        tau, pvalue = float(result.statistic), float(result.pvalue)
    out.meta["kendall_tau"] = tau
    out.meta["kendall_pvalue"] = pvalue
    out.meta["mean_abs_delta_score"] = float(np.nanmean(np.abs(vb - va)))
    return out

