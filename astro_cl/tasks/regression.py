"""Predict catalogue properties from embeddings: linear probe and k-nearest neighbours.

`PropertyRegression` measures, for each numeric property, the cross-validated
R^2 of a ridge regression on the standardised embedding (the "linear probe" of
self-supervised learning) and of a k-nearest-neighbour regression, and the
scatter of the out-of-fold residuals, in dex for logarithmic quantities.
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError, ValidationError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import (
    _bootstrap_score,
    _check_fitted,
    _log_transform,
    align,
    as_embedding,
    column_unit,
    float_column,
    is_categorical,
    is_log_unit,
    left_out_columns,
    property_columns,
)

__all__ = ["PropertyRegression"]

_MODELS = ("ridge", "knn")


class PropertyRegression(DownstreamTask):
    """Cross-validated linear-probe and kNN regression of catalogue properties.

    A property is treated as logarithmic (its scatter quoted in dex) when its
    unit is a ``dex`` unit, when it was log-transformed (see
    ``log_transform``), or when its name starts with ``log``.

    Parameters
    ----------
    properties : list of str, optional
        Numeric catalogue columns (default: the numeric physical properties,
        see `~astro_cl.tasks.catalogue.property_columns`; positions, angles,
        distances, identifiers and flags are left out unless listed here).
    models : sequence of {"ridge", "knn"}, optional
        ``"ridge"``: standardised embedding + `~sklearn.linear_model.RidgeCV`
        (regularisation chosen inside each training fold); ``"knn"``:
        distance-weighted k-nearest neighbours.
    alphas : sequence of float, optional
        Ridge regularisation strengths to choose from.
    n_neighbors : int, optional
        Neighbours of the kNN model.
    metric : str, optional
        Distance of the kNN model.
    cv : int, optional
        Cross-validation folds (shuffled, seeded).
    log_transform : {"auto", True, False}, optional
        Regress one-signed, wide-range quantities in log10 (see
        `~astro_cl.tasks.PropertyCorrelation`).
    n_bootstrap : int, optional
        Bootstrap resamples for the R^2 uncertainty.
    min_samples : int, optional
        Properties with fewer valid galaxies are skipped.
    seed : int, optional
        Seed of the folds and bootstrap.

    Attributes
    ----------
    results_ : `~astropy.table.QTable`
        The result (`result`, `evaluate`): one row per (property, model):
        ``r2``, ``r2_err`` (bootstrap), ``bias``, ``scatter`` and ``nmad`` of
        ``true - predicted`` in dex (NaN for non-logarithmic properties),
        ``rmse_over_std``, ``log10``, ``n_galaxies``.
    predictions_ : dict of (str, str) to `numpy.ndarray`
        Out-of-fold predictions per (property, model), NaN where not predicted.
    models_ : dict of (str, str) to estimator
        Models refitted on all galaxies, for `predict`.
    log10_ : dict of str to bool
        Whether each property was regressed in log10.
    left_out_ : dict of str to str
        Catalogue columns not regressed by default and why (see
        `~astro_cl.tasks.catalogue.left_out_columns`); empty when
        ``properties`` is given.
    skipped_ : dict of str to str
        Properties that could not be regressed and why.
    """

    name = "property-regression"
    description = "Linear-probe (ridge) and kNN regression of properties: CV R^2, scatter in dex."

    def __init__(self, *, properties=None, models=_MODELS, alphas=(1e-3, 1e-2, 1e-1, 1.0, 10.0,
                 100.0, 1e3), n_neighbors=10, metric="euclidean", cv=5, log_transform="auto",
                 n_bootstrap=200, min_samples=20, seed=0):
        self.properties = properties
        self.models = models
        self.alphas = alphas
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.cv = cv
        self.log_transform = log_transform
        self.n_bootstrap = n_bootstrap
        self.min_samples = min_samples
        self.seed = seed

    def _estimator(self, model, n_train):
        from sklearn.linear_model import RidgeCV
        from sklearn.neighbors import KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if model == "ridge":
            return make_pipeline(StandardScaler(), RidgeCV(alphas=list(self.alphas)))
        if model == "knn":
            k = max(1, min(self.n_neighbors, n_train - 1))
            return KNeighborsRegressor(n_neighbors=k, metric=self.metric, algorithm="brute",
                                       weights="distance")
        msg = f"property-regression: unknown model {model!r}; use one of {_MODELS}"
        raise ValueError(msg)

    def fit(self, embeddings, catalogue=None):
        """Cross-validate every (property, model) and refit on all galaxies.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
        catalogue : `~astropy.table.QTable`

        Returns
        -------
        self : `PropertyRegression`
        """
        from sklearn.base import clone
        from sklearn.metrics import r2_score
        from sklearn.model_selection import KFold, cross_val_predict

        X, cat, _ = align(embeddings, catalogue)
        if cat is None:
            msg = "property-regression needs a catalogue of properties"
            raise CatalogueError(msg)
        if self.properties is None:
            names = [c for c in property_columns(cat) if not is_categorical(cat[c])]
            left_out = left_out_columns(cat)
        else:
            names, left_out = list(self.properties), {}
        skipped = {}
        rng = np.random.default_rng(self.seed)
        folds = KFold(self.cv, shuffle=True, random_state=self.seed)
        rows, preds, fitted, logged_map = [], {}, {}, {}
        for name in names:
            unit = column_unit(cat, name)
            y_all, logged = _log_transform(float_column(cat, name), unit, self.log_transform)
            is_log = logged or is_log_unit(unit) or name.lower().startswith("log")
            valid = np.isfinite(y_all)
            n = int(valid.sum())
            need = max(self.min_samples, 2 * self.cv)
            if n < need or np.ptp(y_all[valid]) == 0:
                skipped[name] = (f"{n} galaxies with a value; needs {need}" if n < need else
                                 f"all {n} galaxies have the same value")
                warnings.warn(f"property-regression: {name!r} skipped: {skipped[name]}",
                              AstroCLWarning, stacklevel=2)
                continue
            logged_map[name] = logged
            Xv, y = X[valid], y_all[valid]
            n_train = int(n * (self.cv - 1) / self.cv)
            for model in self.models:
                est = self._estimator(model, n_train)
                pred = cross_val_predict(est, Xv, y, cv=folds)
                resid = y - pred
                r2 = float(r2_score(y, pred))
                err = _bootstrap_score(r2_score, y, pred, n_bootstrap=self.n_bootstrap, rng=rng)
                nmad = 1.4826 * np.median(np.abs(resid - np.median(resid)))
                row = {
                    "property": name, "model": model, "r2": r2, "r2_err": err,
                    "bias": float(np.mean(resid)) if is_log else np.nan,
                    "scatter": float(np.std(resid, ddof=1)) if is_log else np.nan,
                    "nmad": float(nmad) if is_log else np.nan,
                    "rmse_over_std": float(np.sqrt(np.mean(resid**2)) / np.std(y)),
                    "log10": logged, "n_galaxies": n,
                }
                rows.append(row)
                full = np.full(len(X), np.nan)
                full[valid] = pred
                preds[(name, model)] = full
                fitted[(name, model)] = clone(est).fit(Xv, y)
        table = QTable()
        table["property"] = np.array([r["property"] for r in rows], dtype=str)
        table["model"] = np.array([r["model"] for r in rows], dtype=str)
        for key in ("r2", "r2_err"):
            table[key] = np.array([r[key] for r in rows], dtype=np.float64)
        for key in ("bias", "scatter", "nmad"):
            table[key] = np.array([r[key] for r in rows], dtype=np.float64) * u.dex
        table["rmse_over_std"] = np.array([r["rmse_over_std"] for r in rows], dtype=np.float64)
        table["log10"] = np.array([r["log10"] for r in rows], dtype=bool)
        table["n_galaxies"] = np.array([r["n_galaxies"] for r in rows], dtype=np.int64)
        table.meta["task"] = self.name
        table.meta["description"] = (
            "out-of-fold residual = true - predicted; bias = mean, scatter = std, nmad = "
            "1.4826 x median absolute deviation, in dex for logarithmic properties (NaN "
            "otherwise); r2_err = bootstrap std over galaxies")
        table.meta["left_out"] = dict(left_out)
        table.meta["skipped"] = dict(skipped)
        self.results_ = table
        self.left_out_ = left_out
        self.skipped_ = skipped
        self.predictions_ = preds
        self.models_ = fitted
        self.log10_ = logged_map
        self._fitted_on = (embeddings, catalogue)
        return self

    def predict(self, embeddings, *, model="ridge"):
        """Predict every fitted property for new embeddings.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
        model : {"ridge", "knn"}, optional

        Returns
        -------
        table : `~astropy.table.QTable`
            ``id`` (when the input has ids) and one column per property
            (log10 of the property where ``log10_`` says so).
        """
        _check_fitted(self, "models_")
        X, ids = as_embedding(embeddings)
        table = QTable()
        if ids is not None:
            table["id"] = ids
        for (name, m), est in self.models_.items():
            if m != model:
                continue
            n_features = getattr(est, "n_features_in_", X.shape[1])
            if X.shape[1] != n_features:
                msg = f"predict: embeddings have {X.shape[1]} features, the models {n_features}"
                raise ValidationError(msg)
            table[f"log10_{name}" if self.log10_[name] else name] = est.predict(X)
        return table

    # -- hooks of the study layer -------------------------------------------------
    def findings(self):
        """Return the columns left out and the properties skipped, and why.

        Returns
        -------
        findings : dict
            ``left_out``, ``skipped_properties``.
        """
        _check_fitted(self, "results_")
        return {"left_out": dict(self.left_out_), "skipped_properties": dict(self.skipped_)}

    def describe(self):
        """Say which models were cross-validated.

        Returns
        -------
        text : str
        """
        names = {"ridge": "linear-probe (ridge)", "knn": "kNN"}
        return (f"{' and '.join(names.get(m, m) for m in self.models)} regression of the "
                f"properties ({self.cv}-fold)")
