"""The GZ1 search script: query choice, neighbour precision, and the CLI path on 20 real images."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def search(docs_script):
    return docs_script("gz1_search")


def test_query_ids_are_one_per_class_and_seeded(search):
    ids = np.array([f"g{i}" for i in range(40)])
    classes = np.repeat([0, 1, 2, 3, 4, 5, 0, 0], 5)
    a = search.query_ids(ids, classes, seed=1)
    assert list(a) == [0, 1, 2, 3, 5]  # "don't know" (4) is never a query
    assert all(classes[list(ids).index(q)] == c for c, q in a.items())
    assert a == search.query_ids(ids, classes, seed=1)
    assert a != search.query_ids(ids, classes, seed=2)


def test_neighbour_precision_counts_matches_and_chance(search):
    # two tight clusters: class 0 near (1, 0), class 1 near (0, 1); one class-1 galaxy
    # (the last) strays towards the class-0 cluster
    x = np.array([[1, 0.01], [1, 0.02], [1, 0.03], [1, 0.04],
                  [0.01, 1], [0.02, 1], [0.03, 1], [1, 0.10]])
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    table = search.neighbour_precision(x, classes, k=3)
    row0, row1 = table[table["class"] == 0][0], table[table["class"] == 1][0]
    # class 0: the three others of its cluster are nearer than the stray
    assert row0["n"] == 4 and row0["chance"] == pytest.approx(3 / 7)
    assert row0["precision"] == pytest.approx(1.0)
    # the stray's neighbours are all class 0 (0/3); for the three others the stray is
    # the nearest galaxy outside their cluster (3/3)
    assert row1["precision"] == pytest.approx(0.75)
    assert row1["lift"] == pytest.approx(0.75 / (3 / 7))
    merged = search.neighbour_precision(x, classes, k=3, groups={0: 0, 1: 0})
    assert len(merged) == 1 and merged["precision"][0] == pytest.approx(1.0)


def test_the_cli_path_on_real_cutouts(search, shared_data, tmp_path):
    """train -> embed --readout features -> similar on 20 real GZ1 cutouts, 1 epoch."""
    gz1 = shared_data / "gz1"
    folder = tmp_path / "gz1"
    folder.mkdir()
    rows = (gz1 / "labels.csv").read_text().splitlines()
    # the first galaxies of each class, so that every class has a query
    by_class = {}
    for row in rows[1:]:
        objid, cls = row.split(",")
        by_class.setdefault(cls, [])
        if len(by_class[cls]) < 4:
            by_class[cls].append(row)
    keep = [r for group in by_class.values() for r in group]
    for row in keep:
        objid = row.split(",")[0]
        (folder / f"{objid}.jpeg").symlink_to(gz1 / "images" / f"{objid}.jpeg")
    (folder / "labels.csv").write_text("\n".join([rows[0], *keep]) + "\n")
    out = tmp_path / "static"
    assert search.main(["--data", str(folder), "--work", str(tmp_path / "work"),
                        "--out", str(out), "--epochs", "1", "--k", "3", "--quiet"]) == 0
    result = json.loads((out / "gz1_search.json").read_text())
    assert [c["command"].split()[1] for c in result["commands"]] == ["train", "embed",
                                                                      "similar"]
    assert set(result["queries"]) == set(search.CLASS_NAMES.values())
    assert {r["class"] for r in result["precision_5"]} == {0, 1, 2, 3, 5}
    assert (out / "gz1_similar.png").stat().st_size > 0
    text = (out / "gz1_search.rst").read_text()
    assert "spiral (either sense)" in text and "astro-cl embed" in text
