"""Unsupervised clusters of an embedding against the star-forming main sequence.

The star-forming main sequence (SFMS) is fitted as a straight line in
``log SFR`` versus ``log M*`` to star-forming galaxies by iterative sigma
clipping (`fit_main_sequence`). Each galaxy's vertical distance to it,
``delta_ms = log SFR - (slope (log M* - pivot) + intercept)``, classifies it
(`sfms_classes`) as blue cloud (BC), green valley (GV) or red sequence (RS).
`SFMSClustering` clusters the embedding with k-means and Gaussian mixtures and
scores the clusters against these classes (purity, adjusted Rand index,
confusion matrix). The eCALIFA study (Martinez-Solaeche et al. 2024) found that
two clusters separate the blue cloud from the red sequence and three add the
green valley.
"""

import warnings

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import _check_fitted, align, float_column, label_column

__all__ = ["SFMS_CLASSES", "SFMSClustering", "cluster_purity", "fit_main_sequence",
           "sfms_classes"]

#: SFMS classes, from star forming to quiescent.
SFMS_CLASSES = ("BC", "GV", "RS")


def fit_main_sequence(log_mass, log_sfr, *, pivot=10.0, ssfr_min=-11.0, n_sigma=2.0,
                      max_iter=20):
    """Fit the star-forming main sequence, ``log SFR = slope (log M* - pivot) + intercept``.

    Galaxies with ``log sSFR > ssfr_min`` start the fit; then, repeatedly, a
    least-squares line is fitted to the selected galaxies, its scatter is
    measured robustly (1.4826 x the median absolute deviation of the
    residuals), and the selection is redone as every galaxy within ``n_sigma``
    of the line, until the selection no longer changes. Quiescent galaxies lie
    many sigma below the line and drop out; the fit converges on the ridge of
    the star-forming population.

    Parameters
    ----------
    log_mass, log_sfr : array-like
        log10 stellar mass (Msun) and star-formation rate (Msun/yr); NaN ignored.
    pivot : float, optional
        log10 M* at which ``intercept`` is quoted (decorrelates the two).
    ssfr_min : float, optional
        Initial star-forming selection, log10 sSFR in 1/yr.
    n_sigma : float, optional
        Clipping threshold in units of the fitted scatter.
    max_iter : int, optional
        Maximum number of iterations.

    Returns
    -------
    fit : dict
        ``slope``, ``intercept`` (dex), ``pivot``, ``scatter`` (dex, robust),
        ``n_used`` (galaxies in the final fit), ``n_iter``, ``converged``.

    Raises
    ------
    CatalogueError
        If fewer than 3 galaxies are star forming.
    """
    x = np.asarray(log_mass, dtype=np.float64) - pivot
    y = np.asarray(log_sfr, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    selected = finite & (y - (x + pivot) > ssfr_min)
    if selected.sum() < 3:
        msg = (f"main-sequence fit: only {int(selected.sum())} galaxies with log sSFR > "
               f"{ssfr_min}; need at least 3")
        raise CatalogueError(msg)
    converged = False
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - reported below
        slope, intercept = np.polyfit(x[selected], y[selected], 1)
        resid = y - (slope * x + intercept)
        med = np.median(resid[selected])
        scatter = 1.4826 * np.median(np.abs(resid[selected] - med))
        new = finite & (np.abs(resid) < n_sigma * max(scatter, 1e-6))
        if new.sum() < 3:
            break
        if np.array_equal(new, selected):
            converged = True
            break
        selected = new
    return {"slope": float(slope), "intercept": float(intercept), "pivot": float(pivot),
            "scatter": float(scatter), "n_used": int(selected.sum()), "n_iter": n_iter,
            "converged": converged}


def sfms_classes(log_mass, log_sfr, main_sequence, *, thresholds=(-0.75, -1.5)):
    """Classify galaxies by their distance to the main sequence.

    Parameters
    ----------
    log_mass, log_sfr : array-like
        log10 M* (Msun) and SFR (Msun/yr).
    main_sequence : dict
        Output of `fit_main_sequence`.
    thresholds : tuple of float, optional
        ``(upper, lower)`` limits of the green valley in dex below the main
        sequence: blue cloud ``delta_ms >= upper``, green valley ``lower <=
        delta_ms < upper``, red sequence ``delta_ms < lower``. The defaults
        (-0.75 and -1.5 dex) put the blue-cloud limit at about 2.5 times the
        typical 0.3 dex scatter of the SFMS and the red sequence an order of
        magnitude and more below it, in the range used for local surveys.

    Returns
    -------
    classes : `numpy.ndarray` of object
        "BC", "GV", "RS", or None where mass or SFR is missing.
    delta_ms : `numpy.ndarray`
        Distance to the main sequence in dex (NaN where missing).
    """
    upper, lower = thresholds
    if not upper > lower:
        msg = f"thresholds must be (upper, lower) with upper > lower, got {thresholds}"
        raise ValueError(msg)
    x = np.asarray(log_mass, dtype=np.float64)
    y = np.asarray(log_sfr, dtype=np.float64)
    ms = main_sequence
    delta = y - (ms["slope"] * (x - ms["pivot"]) + ms["intercept"])
    classes = np.full(len(delta), None, dtype=object)
    ok = np.isfinite(delta)
    classes[ok & (delta >= upper)] = "BC"
    classes[ok & (delta < upper) & (delta >= lower)] = "GV"
    classes[ok & (delta < lower)] = "RS"
    return classes, delta


def cluster_purity(classes, labels):
    """Purity of a clustering: the fraction of galaxies in their cluster's majority class.

    Parameters
    ----------
    classes : array-like
        Reference classes.
    labels : array-like
        Cluster labels.

    Returns
    -------
    purity : float
    """
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(np.asarray(classes).astype(str), np.asarray(labels))
    return float(table.max(axis=0).sum() / table.sum())


class SFMSClustering(DownstreamTask):
    """Cluster the embedding and compare the clusters with SFMS classes.

    k-means and Gaussian mixtures are fitted to the embedding of every galaxy
    for each number of clusters. With two clusters the score is taken on the
    blue-cloud and red-sequence galaxies (the green valley is the transition
    the two clusters must split); with three clusters on all three classes.

    Parameters
    ----------
    n_clusters : sequence of int, optional
        Numbers of clusters.
    methods : sequence of {"kmeans", "gmm"}, optional
        Clustering algorithms.
    mass_column, sfr_column : str, optional
        Catalogue columns of log10 stellar mass and SFR (dex units accepted).
    class_column : str, optional
        Use these existing "BC"/"GV"/"RS" labels instead of fitting the SFMS.
    thresholds : tuple of float, optional
        Green-valley limits in dex below the SFMS (see `sfms_classes`).
    ssfr_min, n_sigma : float, optional
        Initial selection and clipping of the SFMS fit (see `fit_main_sequence`).
    n_pca : int, optional
        Cluster on the first ``n_pca`` principal components (None: the full
        embedding).
    covariance_type : str, optional
        Covariance of the Gaussian mixtures.
    n_init : int, optional
        Restarts of both algorithms.
    seed : int, optional
        Random state of the clustering.

    Attributes
    ----------
    main_sequence_ : dict or None
        The SFMS fit (None when ``class_column`` is used).
    classes_ : `numpy.ndarray`
        SFMS class per galaxy (None where unknown).
    delta_ms_ : `numpy.ndarray`
        Distance to the SFMS in dex (NaN when ``class_column`` is used).
    labels_ : dict of str to `numpy.ndarray`
        Cluster labels per ``"<method>-k<k>"``; clusters are renumbered by
        decreasing median ``delta_ms`` (0 = most star forming) when known.
    confusion_ : dict of str to `~astropy.table.QTable`
        Confusion matrices (rows: classes; columns ``cluster_<i>``).
    results_ : `~astropy.table.QTable`
        The result (`result`, `evaluate`): ``method``, ``n_clusters``,
        ``classes`` (the classes scored), ``n_scored``, ``purity``,
        ``adjusted_rand``; ``meta`` holds the SFMS fit, the thresholds, the
        class counts and the confusion matrices.
    ids_ : `numpy.ndarray` or None
    """

    name = "sfms-clustering"
    description = "k-means / Gaussian-mixture clusters vs blue cloud, green valley, red sequence."

    def __init__(self, *, n_clusters=(2, 3), methods=("kmeans", "gmm"), mass_column="log_Mass",
                 sfr_column="log_SFR_Ha", class_column=None, thresholds=(-0.75, -1.5),
                 ssfr_min=-11.0, n_sigma=2.0, n_pca=None, covariance_type="full", n_init=10,
                 seed=0):
        self.n_clusters = n_clusters
        self.methods = methods
        self.mass_column = mass_column
        self.sfr_column = sfr_column
        self.class_column = class_column
        self.thresholds = thresholds
        self.ssfr_min = ssfr_min
        self.n_sigma = n_sigma
        self.n_pca = n_pca
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.seed = seed

    def _cluster(self, X, method, k):
        if method == "kmeans":
            from sklearn.cluster import KMeans

            return KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed).fit_predict(X)
        if method == "gmm":
            from sklearn.mixture import GaussianMixture

            gmm = GaussianMixture(n_components=k, covariance_type=self.covariance_type,
                                  n_init=self.n_init, random_state=self.seed, reg_covar=1e-5)
            return gmm.fit(X).predict(X)
        msg = f"sfms-clustering: unknown method {method!r}; use 'kmeans' or 'gmm'"
        raise ValueError(msg)

    def fit(self, embeddings, catalogue=None):
        """Derive SFMS classes, cluster the embedding and score the clusters.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
        catalogue : `~astropy.table.QTable`
            With the mass and SFR columns (or ``class_column``).

        Returns
        -------
        self : `SFMSClustering`
        """
        from sklearn.metrics import adjusted_rand_score

        X, cat, ids = align(embeddings, catalogue)
        if cat is None:
            msg = "sfms-clustering needs a catalogue with stellar mass and SFR"
            raise CatalogueError(msg)
        if self.class_column is not None:
            classes = label_column(cat, self.class_column)
            unknown = {c for c in classes if c is not None} - set(SFMS_CLASSES)
            if unknown:
                msg = (f"catalogue column {self.class_column!r}: expected labels "
                       f"{SFMS_CLASSES}, found also {sorted(unknown)}")
                raise CatalogueError(msg)
            delta = np.full(len(X), np.nan)
            self.main_sequence_ = None
        else:
            mass = float_column(cat, self.mass_column)
            sfr = float_column(cat, self.sfr_column)
            self.main_sequence_ = fit_main_sequence(mass, sfr, ssfr_min=self.ssfr_min,
                                                    n_sigma=self.n_sigma)
            classes, delta = sfms_classes(mass, sfr, self.main_sequence_,
                                          thresholds=self.thresholds)
        if self.n_pca is not None and self.n_pca < X.shape[1]:
            from sklearn.decomposition import PCA

            X = PCA(n_components=self.n_pca, random_state=self.seed).fit_transform(X)
        known = np.array([c is not None for c in classes])
        rows, labels_all, confusion = [], {}, {}
        for method in self.methods:
            for k in self.n_clusters:
                if k > len(X):
                    msg = f"sfms-clustering: {k} clusters for {len(X)} galaxies"
                    raise ValueError(msg)
                labels = self._cluster(X, method, int(k))
                labels = _order_clusters(labels, delta)
                key = f"{method}-k{k}"
                labels_all[key] = labels
                ref = ("BC", "RS") if k == 2 else SFMS_CLASSES
                scored = known & np.isin(classes.astype(str), ref)
                if scored.sum() == 0:
                    warnings.warn(f"sfms-clustering: no galaxy in classes {ref} for {key}",
                                  AstroCLWarning)
                    purity = ari = np.nan
                else:
                    cls = classes[scored].astype(str)
                    purity = cluster_purity(cls, labels[scored])
                    ari = float(adjusted_rand_score(cls, labels[scored]))
                confusion[key] = _confusion(classes[scored].astype(str), labels[scored], ref, k)
                rows.append((method, int(k), ",".join(ref), int(scored.sum()), purity, ari))
        table = QTable(rows=rows, names=("method", "n_clusters", "classes", "n_scored",
                                         "purity", "adjusted_rand"),
                       dtype=(str, np.int64, str, np.int64, np.float64, np.float64))
        table.meta["task"] = self.name
        table.meta["main_sequence"] = self.main_sequence_
        table.meta["thresholds_dex"] = list(self.thresholds)
        table.meta["class_counts"] = {c: int(np.sum(classes == c)) for c in SFMS_CLASSES}
        # plain str: older astropy cannot write numpy strings into ECSV metadata
        table.meta["confusion"] = {key: {"rows": [str(c) for c in t["class"]],
                                         "counts": np.asarray([list(r)[1:] for r in t]).tolist()}
                                   for key, t in confusion.items()}
        self.classes_ = classes
        self.delta_ms_ = delta
        self.labels_ = labels_all
        self.confusion_ = confusion
        self.results_ = table
        self.ids_ = ids
        self._fitted_on = (embeddings, catalogue)
        return self

    def galaxy_table(self):
        """Return the per-galaxy classes, SFMS distances and cluster labels.

        Returns
        -------
        table : `~astropy.table.QTable`
            ``id`` (when known), ``sfms_class``, ``delta_ms`` (dex) and one
            ``cluster_<method>_k<k>`` column per clustering.
        """
        import astropy.units as u

        _check_fitted(self, "results_")
        table = QTable()
        if self.ids_ is not None:
            table["id"] = self.ids_
        table["sfms_class"] = np.array([c or "" for c in self.classes_], dtype=str)
        table["delta_ms"] = self.delta_ms_ * u.dex
        for key, labels in self.labels_.items():
            table[f"cluster_{key.replace('-', '_')}"] = labels
        return table

    # -- hooks of the study layer -------------------------------------------------
    def galaxy_columns(self):
        """Return the per-galaxy SFMS class, distance and cluster labels (`galaxy_table`).

        Returns
        -------
        columns : `~astropy.table.QTable`
        """
        return self.galaxy_table()

    def extra_tables(self):
        """Return the confusion matrices, as ``sfms-confusion-<method>-k<k>``.

        Returns
        -------
        tables : dict of str to `~astropy.table.QTable`
        """
        _check_fitted(self, "results_")
        return {f"sfms-confusion-{key}": table.copy() for key, table in self.confusion_.items()}

    def findings(self):
        """Return the main-sequence fit, the class limits and the columns used.

        Returns
        -------
        findings : dict
            ``main_sequence`` (None with ``class_column``), ``sfms_thresholds``,
            ``sfms_columns`` (stellar mass, SFR), ``class_counts``.
        """
        _check_fitted(self, "results_")
        return {"main_sequence": self.main_sequence_, "sfms_thresholds": list(self.thresholds),
                "sfms_columns": [self.mass_column, self.sfr_column],
                "class_counts": dict(self.results_.meta["class_counts"])}

    def describe(self):
        """Say what was clustered.

        Returns
        -------
        text : str
        """
        methods = " and ".join({"kmeans": "k-means", "gmm": "Gaussian-mixture"}.get(m, m)
                               for m in self.methods)
        return (f"{methods} clusters against the SFMS classes "
                f"(k = {', '.join(str(k) for k in self.n_clusters)})")

    @classmethod
    def figures(cls, outputs):
        """Draw the clusters on the SFR - stellar mass plane and the confusion matrices.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report import figures as F

        figs, caps = {}, {}
        galaxies, found = outputs.galaxies, outputs.findings
        mass_col, sfr_col = found.get("sfms_columns") or (None, None)
        if (galaxies is not None and "sfms_class" in galaxies.colnames
                and {mass_col, sfr_col} <= set(galaxies.colnames)):
            labels = {"SFMS class": label_column(galaxies, "sfms_class")}
            labels.update({c.removeprefix("cluster_"): np.asarray(galaxies[c])
                           for c in galaxies.colnames if c.startswith("cluster_")})
            name = "clusters on the SFMS plane"
            figs[name] = F.plot_sfms_clusters(
                galaxies, labels, mass_column=mass_col, sfr_column=sfr_col,
                main_sequence=found.get("main_sequence"),
                thresholds=found.get("sfms_thresholds"))
            caps[name] = (
                "Galaxies on the SFR - stellar mass plane, coloured by their class (blue "
                "cloud BC, green valley GV, red sequence RS: distance to the fitted main "
                "sequence, solid; dashed: the class limits) and by the clusters found in the "
                "embedding without labels.")
        for name, table in outputs.tables.items():
            if name.startswith("sfms-confusion-"):
                key = name.removeprefix("sfms-confusion-")
                figs[f"confusion {key}"] = F.plot_confusion(
                    table, title=f"{key}: SFMS class vs cluster")
        return figs, caps


def _order_clusters(labels, delta):
    """Renumber clusters by decreasing median distance to the SFMS (0 = most star forming)."""
    uniq = np.unique(labels)
    if not np.any(np.isfinite(delta)):
        return labels
    med = np.array([np.nanmedian(delta[labels == c]) if np.any(np.isfinite(delta[labels == c]))
                    else -np.inf for c in uniq])
    order = uniq[np.argsort(-med, kind="stable")]
    mapping = np.empty(uniq.max() + 1, dtype=np.int64)
    mapping[order] = np.arange(len(order))
    return mapping[labels]


def _confusion(classes, labels, ref, k):
    table = QTable()
    table["class"] = np.array(ref, dtype=str)
    for c in range(k):
        in_c = labels == c
        table[f"cluster_{c}"] = np.array([np.sum(in_c & (classes == r)) for r in ref],
                                         dtype=np.int64)
    return table
