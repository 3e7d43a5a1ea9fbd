"""Two-sample tests: do galaxies in different environments occupy the embedding differently.

`EnvironmentTest` compares the embedding distributions of galaxies in each
environment (voids, walls, filaments, clusters, or any label column) with
two-sample tests whose p-values come from label permutations:

* the energy distance (Szekely & Rizzo 2013), computed from one matrix of
  pairwise embedding distances, so that all permutations are one matrix
  product;
* a classifier two-sample test: the cross-validated balanced accuracy of a
  logistic regression telling the two samples apart (0.5 when they are
  indistinguishable).

Each test is run overall (labels permuted freely) and at matched stellar mass:
labels are permuted only among galaxies in the same stellar-mass bin, so the
null distribution keeps each environment's mass distribution and a difference
that is entirely due to mass is not significant (a conditional permutation
test).
"""

import itertools
import warnings

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import _check_fitted, align, float_column, label_column

__all__ = ["EnvironmentTest", "auto_permutations", "energy_distance_matrix",
           "permutation_energy_test"]


def energy_distance_matrix(distances, in_a, in_b):
    """Energy distances between pairs of samples, from pairwise distances.

    ``E = 2 mean|a - b| - mean|a - a'| - mean|b - b'|`` (V-statistic form),
    for every row of the indicator matrices at once.

    Parameters
    ----------
    distances : `numpy.ndarray`
        ``(n, n)`` pairwise distances.
    in_a, in_b : `numpy.ndarray` of bool
        ``(n,)`` or ``(n_sets, n)`` membership of the two samples.

    Returns
    -------
    energy : float or `numpy.ndarray`
    """
    a = np.atleast_2d(in_a).astype(np.float64)
    b = np.atleast_2d(in_b).astype(np.float64)
    na, nb = a.sum(axis=1), b.sum(axis=1)
    ad, bd = a @ distances, b @ distances
    ab = np.einsum("ij,ij->i", ad, b) / (na * nb)
    aa = np.einsum("ij,ij->i", ad, a) / na**2
    bb = np.einsum("ij,ij->i", bd, b) / nb**2
    energy = 2 * ab - aa - bb
    return float(energy[0]) if np.ndim(in_a) == 1 else energy


def _permuted_labels(labels, strata, n_permutations, rng):
    """``(n_permutations, n)`` copies of ``labels`` permuted within each stratum."""
    _, codes = np.unique(strata, return_inverse=True)
    # integer stratum code + uniform key in [0, 1): sorting groups by stratum and
    # shuffles within it, for all permutations in one call
    keys = codes[None, :] + rng.random((n_permutations, len(labels)))
    shuffled = np.argsort(keys, axis=1)
    base = np.argsort(codes, kind="stable")
    out = np.empty((n_permutations, len(labels)), dtype=labels.dtype)
    out[:, base] = labels[shuffled]
    return out


def permutation_energy_test(distances, labels, *, strata=None, n_permutations=199, rng=None):
    """Energy-distance two-sample test with a permutation p-value.

    Parameters
    ----------
    distances : `numpy.ndarray`
        ``(n, n)`` pairwise distances of the galaxies of both samples.
    labels : `numpy.ndarray` of bool
        True for sample A, False for sample B.
    strata : `numpy.ndarray` of int, optional
        Permute labels only within equal strata (e.g. stellar-mass bins).
    n_permutations : int, optional
    rng : `numpy.random.Generator`, optional

    Returns
    -------
    statistic : float
        Observed energy distance.
    p_value : float
        ``(1 + #{null >= observed}) / (1 + n_permutations)``.
    null : `numpy.ndarray`
        The permutation distribution.
    """
    rng = np.random.default_rng(rng)
    labels = np.asarray(labels, bool)
    strata = np.zeros(len(labels), np.int64) if strata is None else np.asarray(strata)
    observed = energy_distance_matrix(distances, labels, ~labels)
    perms = _permuted_labels(labels, strata, n_permutations, rng)
    null = energy_distance_matrix(distances, perms, ~perms)
    p_value = (1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations)
    return observed, float(p_value), null


def _classifier_test(X, labels, *, strata, n_permutations, cv, seed, rng):
    """Cross-validated balanced accuracy of a logistic regression, with permutations."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    # standardising does not look at the labels, so it is done once, outside the folds
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    n_min = int(min(labels.sum(), (~labels).sum()))
    folds = StratifiedKFold(min(cv, n_min), shuffle=True, random_state=seed)
    model = LogisticRegression(C=1.0, max_iter=500)

    def score(y):
        pred = cross_val_predict(model, X, y, cv=folds)
        return balanced_accuracy_score(y, pred)

    from threadpoolctl import threadpool_limits

    # hundreds of small logistic fits: multi-threaded BLAS only adds synchronisation,
    # and on a busy machine its spinning threads slow it down (benchmarks/README.md)
    with threadpool_limits(limits=1, user_api="blas"):
        observed = score(labels)
        perms = _permuted_labels(labels, strata, n_permutations, rng)
        null = np.array([score(p) for p in perms])
    p_value = (1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations)
    return float(observed), float(p_value), null


def auto_permutations(n_galaxies, test="energy"):
    """Return the default number of permutations of a two-sample test on ``n_galaxies``.

    The p-value of a permutation test cannot go below ``1 / (1 + n_permutations)``,
    so small samples, where permutations are cheap, get many; the cost of one
    permutation grows as ``n**2`` for the energy test (one product with the
    distance matrix) and about as ``n`` for the classifier test (``cv``
    logistic-regression fits), so large samples get fewer. Counts end in 9
    (``p = k / (n + 1)`` then has round values).

    Parameters
    ----------
    n_galaxies : int
        Galaxies in the two samples together.
    test : {"energy", "classifier"}, optional

    Returns
    -------
    n_permutations : int
        Energy test: 999 up to 700 galaxies, then decreasing as ``n**-2`` to at
        least 199. Classifier test: 99 up to 150 galaxies, then decreasing as
        ``1/n`` to at least 19.
    """
    n = max(int(n_galaxies), 1)
    if test == "energy":
        wanted, top, floor = 999 * (700 / n) ** 2, 999, 199
    elif test == "classifier":
        wanted, top, floor = 99 * 150 / n, 99, 19
    else:
        msg = f"auto_permutations: test must be 'energy' or 'classifier', got {test!r}"
        raise ValueError(msg)
    count = int(min(top, max(floor, wanted)))
    return max(floor, (count + 1) // 10 * 10 - 1) if count < top else top


def _count(value, n, test, what):
    if value == "auto":
        return auto_permutations(n, test)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    msg = f"environment: {what} must be 'auto' or a positive integer, got {value!r}"
    raise ValueError(msg)


class EnvironmentTest(DownstreamTask):
    """Two-sample tests of the embedding between environments.

    Parameters
    ----------
    column : str, optional
        Catalogue column with the environment labels.
    comparison : {"one-vs-rest", "pairs"}, optional
        Compare each environment with all the others, or every pair.
    tests : sequence of {"energy", "classifier"}, optional
        Which statistics to compute.
    mass_column : str or None, optional
        log10 stellar mass for the matched-mass tests (None: overall only).
    mass_bin_width : float, optional
        Width in dex of the stellar-mass bins within which labels are permuted.
    n_permutations : int or "auto", optional
        Permutations of the energy test; ``"auto"`` scales them with the
        sample (`auto_permutations`: 999 up to 700 galaxies, fewer above).
    n_permutations_classifier : int or "auto", optional
        Permutations of the classifier test (each refits ``cv`` models);
        ``"auto"``: 99 up to 150 galaxies, down to 19 for large samples.
    cv : int, optional
        Folds of the classifier test.
    metric : str, optional
        Distance of the energy test (any `scipy.spatial.distance.cdist` metric).
    min_group : int, optional
        Environments with fewer galaxies are skipped.
    seed : int, optional
        Seed of the permutations and folds.

    Attributes
    ----------
    results_ : `~astropy.table.QTable`
        The result (`result`, `evaluate`): one row per comparison, test and
        conditioning (``"none"`` or ``"stellar mass"``): ``group_a``,
        ``group_b``, ``test``, ``conditioning``, ``n_a``, ``n_b``,
        ``statistic``, ``null_mean`` (mean of the permutation distribution),
        ``p_value``, ``n_permutations``.
    nulls_ : dict of tuple to `numpy.ndarray`
        Permutation distributions per ``(group_a, group_b, test, conditioning)``.
    groups_ : dict of str to int
        Number of galaxies per environment.
    n_permutations_ : dict of str to int
        The permutation counts used per test (after ``"auto"``).
    """

    name = "environment"
    description = "Energy-distance and classifier two-sample tests of the embedding by environment."

    def __init__(self, *, column="environment", comparison="one-vs-rest",
                 tests=("energy", "classifier"), mass_column="log_Mass", mass_bin_width=0.25,
                 n_permutations="auto", n_permutations_classifier="auto", cv=5,
                 metric="euclidean",
                 min_group=5, seed=0):
        self.column = column
        self.comparison = comparison
        self.tests = tests
        self.mass_column = mass_column
        self.mass_bin_width = mass_bin_width
        self.n_permutations = n_permutations
        self.n_permutations_classifier = n_permutations_classifier
        self.cv = cv
        self.metric = metric
        self.min_group = min_group
        self.seed = seed

    def fit(self, embeddings, catalogue=None):
        """Run every two-sample test.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
        catalogue : `~astropy.table.QTable`
            With the environment column (and the stellar-mass column).

        Returns
        -------
        self : `EnvironmentTest`
        """
        from scipy.spatial.distance import cdist

        X, cat, _ = align(embeddings, catalogue)
        if cat is None:
            msg = "environment needs a catalogue with an environment column"
            raise CatalogueError(msg)
        env = label_column(cat, self.column)
        mass = (float_column(cat, self.mass_column) if self.mass_column is not None
                else np.full(len(X), np.nan))
        valid = np.array([e is not None for e in env])
        names, counts = np.unique(env[valid].astype(str), return_counts=True)
        names, counts = [str(g) for g in names], [int(c) for c in counts]
        found = ", ".join(f"{g} ({c})" for g, c in zip(names, counts, strict=True)) or "none"
        groups = [g for g, c in zip(names, counts, strict=True) if c >= self.min_group]
        skipped = [g for g, c in zip(names, counts, strict=True) if c < self.min_group]
        if len(groups) < 2:
            msg = (f"environment: column {self.column!r} needs at least 2 groups with "
                   f">= {self.min_group} galaxies (min_group); its groups (galaxies): {found}")
            raise CatalogueError(msg)
        if skipped:
            warnings.warn(f"environment: groups {', '.join(skipped)} have fewer than "
                          f"{self.min_group} galaxies (min_group) and are skipped; groups "
                          f"(galaxies): {found}", AstroCLWarning, stacklevel=2)
        unknown = set(self.tests) - {"energy", "classifier"}
        if unknown:
            msg = f"environment: unknown tests {sorted(unknown)}; use 'energy' or 'classifier'"
            raise ValueError(msg)
        if self.comparison == "pairs":
            pairs = [([a], [b]) for a, b in itertools.combinations(groups, 2)]
        elif self.comparison == "one-vs-rest":
            pairs = [([g], [h for h in groups if h != g]) for g in groups]
            if len(groups) == 2:
                pairs = pairs[:1]
        else:
            msg = (f"environment: comparison must be 'one-vs-rest' or 'pairs', "
                   f"got {self.comparison!r}")
            raise ValueError(msg)
        env_str = np.array([e if e is not None else "" for e in env], dtype=str)
        n_used = int(np.isin(env_str, groups).sum())
        n_energy = _count(self.n_permutations, n_used, "energy", "n_permutations")
        n_classifier = _count(self.n_permutations_classifier, n_used, "classifier",
                              "n_permutations_classifier")
        rng = np.random.default_rng(self.seed)
        conditions = ["none"]
        if self.mass_column is not None and np.any(np.isfinite(mass)):
            conditions.append("stellar mass")
        rows, nulls = [], {}
        for a_groups, b_groups in pairs:
            in_a = np.isin(env_str, a_groups)
            in_b = np.isin(env_str, b_groups)
            for condition in conditions:
                use = in_a | in_b
                if condition == "stellar mass":
                    use &= np.isfinite(mass)
                    strata = np.floor(mass[use] / self.mass_bin_width).astype(np.int64)
                else:
                    strata = np.zeros(int(use.sum()), np.int64)
                labels = in_a[use]
                if labels.sum() < 2 or (~labels).sum() < 2:
                    continue
                Xu = X[use]
                a_name, b_name = "+".join(a_groups), "+".join(b_groups)
                if len(b_groups) > 1:
                    b_name = "rest"
                for test in self.tests:
                    if test == "energy":
                        dist = cdist(Xu, Xu, metric=self.metric)
                        stat, p, null = permutation_energy_test(
                            dist, labels, strata=strata, n_permutations=n_energy, rng=rng)
                        n_perm = n_energy
                    else:
                        stat, p, null = _classifier_test(
                            Xu, labels, strata=strata, n_permutations=n_classifier, cv=self.cv,
                            seed=self.seed, rng=rng)
                        n_perm = n_classifier
                    rows.append((a_name, b_name, test, condition, int(labels.sum()),
                                 int((~labels).sum()), stat, float(np.mean(null)), p, n_perm))
                    nulls[(a_name, b_name, test, condition)] = null
        table = QTable(rows=rows, names=("group_a", "group_b", "test", "conditioning", "n_a",
                                         "n_b", "statistic", "null_mean", "p_value",
                                         "n_permutations"),
                       dtype=(str, str, str, str, np.int64, np.int64, np.float64, np.float64,
                              np.float64, np.int64))
        table.meta["task"] = self.name
        table.meta["statistics"] = {
            "energy": "energy distance (V-statistic) in embedding units",
            "classifier": "cross-validated balanced accuracy of a logistic regression"}
        table.meta["mass_bin_width_dex"] = self.mass_bin_width
        table.meta["skipped_groups"] = {g: c for g, c in zip(names, counts, strict=True)
                                        if g in skipped}
        self.groups_ = dict(zip(names, counts, strict=True))
        self.n_permutations_ = {"energy": n_energy, "classifier": n_classifier}
        self.nulls_ = nulls
        self.results_ = table
        self._fitted_on = (embeddings, catalogue)
        return self

    # -- hooks of the study layer -------------------------------------------------
    def findings(self):
        """Return the environment column, the group sizes and the permutation counts.

        Returns
        -------
        findings : dict
            ``environment_column``, ``groups`` (galaxies per environment),
            ``n_permutations`` (per test, after ``"auto"``).
        """
        _check_fitted(self, "results_")
        return {"environment_column": self.column, "groups": dict(self.groups_),
                "n_permutations": dict(self.n_permutations_)}

    def describe(self):
        """Say which tests were run on which column.

        Returns
        -------
        text : str
        """
        n_perm = getattr(self, "n_permutations_", {})
        tests = ", ".join(f"{t} ({n_perm.get(t, '?')} permutations)" for t in self.tests)
        return f"two-sample tests of the embedding between environments of column " \
               f"{self.column!r}: {tests}"

    @classmethod
    def figures(cls, outputs):
        """Draw where each environment lies in the run's projection, with the p-values.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report import figures as F

        xy, galaxies, table = outputs.projection, outputs.galaxies, outputs.table
        column = outputs.findings.get("environment_column") or outputs.params.get(
            "column", "environment")
        if xy is None or table is None or column not in galaxies.colnames:
            return {}, {}
        proj = outputs.projection_name
        fig = F.plot_environment(xy, np.asarray(galaxies[column]), results=table,
                                 projection=proj)
        return {"environment": fig}, {"environment": (
            f"Where the galaxies of each environment lie in the {proj} projection, and the "
            "permutation p-values of the two-sample tests of the full embedding (overall and "
            "with labels permuted within stellar-mass bins).")}

    @classmethod
    def headline(cls, outputs):
        """Return the smallest p-value of the tests.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        rows : list of dict
        """
        env = outputs.table
        if env is None or not len(env):
            return []
        p = np.asarray(env["p_value"], dtype=float)
        i = int(np.argmin(p))
        return [{"result": "smallest environment p-value",
                 "value": f"{p[i]:.3g} ({env['group_a'][i]} vs {env['group_b'][i]}, "
                          f"{env['test'][i]}, conditioning: {env['conditioning'][i]})",
                 "reference": "environment shifts the population mix",
                 "criterion": "", "passed": None}]
