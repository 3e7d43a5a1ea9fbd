import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError
from astro_cl.tasks import EnvironmentTest, permutation_energy_test
from astro_cl.tasks.environment import _permuted_labels, energy_distance_matrix


def _catalogue(n=160, shift=0.0, mass_driven=False, seed=0):
    rng = np.random.default_rng(seed)
    env = np.where(rng.random(n) < 0.5, "cluster", "void")
    mass = rng.normal(10.5, 0.4, n) + (0.6 * (env == "cluster") if mass_driven else 0.0)
    X = rng.normal(size=(n, 6))
    X[:, 0] += shift * (env == "cluster")
    if mass_driven:
        X[:, 1] += 2.0 * (mass - 10.5)  # the embedding encodes mass only
    return X, QTable({"environment": env, "log_Mass": mass})


def test_energy_distance_formula():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    a = np.arange(30) < 12
    expected = (2 * D[a][:, ~a].mean() - D[a][:, a].mean() - D[~a][:, ~a].mean())
    assert energy_distance_matrix(D, a, ~a) == pytest.approx(expected)


def test_permutations_stay_within_strata():
    rng = np.random.default_rng(0)
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    strata = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    perms = _permuted_labels(labels, strata, 50, rng)
    np.testing.assert_array_equal(perms[:, :4].sum(axis=1), 2)
    np.testing.assert_array_equal(perms[:, 4:].sum(axis=1), 1)
    assert len({tuple(p) for p in perms}) > 5


def test_identical_distributions_give_large_p_values():
    X, cat = _catalogue()
    table = EnvironmentTest(n_permutations_classifier=9, cv=3).fit(X, cat).evaluate()
    assert set(table["test"]) == {"energy", "classifier"}
    assert set(table["conditioning"]) == {"none", "stellar mass"}
    assert np.all(table["p_value"] > 0.05)


def test_shifted_population_is_detected():
    X, cat = _catalogue(shift=1.5)
    task = EnvironmentTest(n_permutations=99, n_permutations_classifier=9, cv=3, seed=1)
    table = task.fit(X, cat).evaluate()
    assert np.all(table["p_value"] <= 0.1)  # 9 permutations: smallest possible p is 0.1
    energy = table[table["test"] == "energy"]
    assert np.all(energy["statistic"] > energy["null_mean"])
    assert ("cluster", "void", "energy", "none") in task.nulls_


def test_mass_driven_difference_vanishes_at_matched_mass():
    X, cat = _catalogue(n=240, mass_driven=True)
    table = EnvironmentTest(tests=("energy",), n_permutations=199).fit(X, cat).evaluate()
    overall = table[table["conditioning"] == "none"]["p_value"][0]
    matched = table[table["conditioning"] == "stellar mass"]["p_value"][0]
    assert overall <= 0.01
    assert matched > 0.05


def test_seeded_and_pairs():
    X, cat = _catalogue(n=90)
    cat["environment"][:30] = "wall"
    a = EnvironmentTest(comparison="pairs", tests=("energy",), seed=3).fit(X, cat).evaluate()
    b = EnvironmentTest(comparison="pairs", tests=("energy",), seed=3).fit(X, cat).evaluate()
    assert len(a) == 6  # 3 pairs x 2 conditionings
    np.testing.assert_array_equal(a["p_value"], b["p_value"])


def test_errors():
    X, cat = _catalogue(n=40)
    cat["environment"][:] = "void"
    cat["environment"][:2] = "wall"
    with pytest.raises(CatalogueError, match=r"groups \(galaxies\): void \(38\), wall \(2\)"):
        EnvironmentTest().fit(X, cat)
    cat["environment"][2:6] = "wall"
    cat["environment"][6:7] = "cluster"
    with pytest.warns(AstroCLWarning, match=r"groups cluster have fewer than 5 .* cluster \(1\)"):
        EnvironmentTest(tests=("energy",), n_permutations=9).fit(X, cat)
    with pytest.raises(CatalogueError, match="no column"):
        EnvironmentTest(column="env").fit(X, cat)


def test_permutation_energy_test_direct():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (20, 2)), rng.normal(4, 1, (20, 2))])
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    stat, p, null = permutation_energy_test(D, np.arange(40) < 20, n_permutations=99, rng=0)
    assert p == pytest.approx(0.01) and len(null) == 99 and stat > null.max()


def test_check_task():
    from astro_cl.testing import check_task

    X, cat = _catalogue(n=60)
    check_task(EnvironmentTest(tests=("energy",), n_permutations=19), X, cat)


def test_default_permutations_scale_with_the_sample():
    """``"auto"`` permutation counts: many for small samples, fewer for large ones."""
    from astro_cl.tasks import auto_permutations

    assert auto_permutations(40) == 999 and auto_permutations(40, "classifier") == 99
    counts = [auto_permutations(n) for n in (100, 700, 1000, 2000, 10000)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 199
    assert all(str(c).endswith("9") for c in counts)
    assert auto_permutations(5000, "classifier") == 19
    X, cat = _catalogue(n=300)
    cat["environment"][:60] = "wall"
    task = EnvironmentTest(tests=("energy",)).fit(X, cat)
    assert task.n_permutations_ == {"energy": 999, "classifier": 49}
    assert set(task.evaluate()["n_permutations"]) == {999}
    with pytest.raises(ValueError, match="n_permutations must be 'auto' or a positive"):
        EnvironmentTest(n_permutations=0).fit(X, cat)
