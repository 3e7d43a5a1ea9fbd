"""The example plugin's task, tested as a plugin author would (public names only)."""

import numpy as np
import pytest
from astro_cl_toy import ToyIsolation, astro_cl_register_tasks
from astropy.table import QTable

from astro_cl.exceptions import ValidationError
from astro_cl.tasks import TaskOutputs
from astro_cl.testing import check_task


def _embedding(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[0] += 20.0  # one galaxy far from the others
    ids = [f"g{i}" for i in range(n)]
    return (QTable({"id": ids, "embedding": X}),
            QTable({"id": ids, "log_Mass": rng.normal(10, 0.5, n)}))


def test_toy_task_honours_the_task_contract():
    check_task(ToyIsolation(n_neighbors=3), *_embedding())


def test_the_hook_registers_the_task():
    registered = []
    astro_cl_register_tasks(register=registered.append)
    assert registered == [ToyIsolation]


def test_toy_task_finds_the_isolated_galaxy_and_fills_its_hooks():
    emb, cat = _embedding()
    task = ToyIsolation(n_neighbors=3, n_listed=2).fit(emb, cat)
    columns = task.galaxy_columns()
    assert list(columns["id"]) == list(emb["id"])
    assert int(np.argmax(columns["toy_isolation"])) == 0
    listed = task.extra_tables()["toy-most-isolated"]
    assert len(listed) == 2 and listed["id"][0] == "g0"
    outputs = TaskOutputs(name=task.name, table=task.result(), galaxies=columns,
                          findings=task.findings())
    figures, captions = ToyIsolation.figures(outputs)
    assert set(figures) == set(captions) == {"toy isolation"}
    assert ToyIsolation.headline(outputs)[0]["value"].startswith("g0 (")


def test_too_many_neighbours_is_a_clear_error():
    emb, _ = _embedding(n=4)
    with pytest.raises(ValidationError, match="expected 1 <= n_neighbors < 4"):
        ToyIsolation(n_neighbors=4).fit(emb)
