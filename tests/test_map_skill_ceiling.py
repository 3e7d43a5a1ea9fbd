"""The map-skill ceiling script (docs/science/map_skill_ceiling.py) at a tiny size."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ceiling(docs_script):
    return docs_script("map_skill_ceiling")


def test_annulus_features_are_colours_and_fluxes(ceiling):
    # a flat-spectrum galaxy: all colours 0, r flux = pixel count of each annulus
    images = np.ones((2, 5, 9, 9))
    yy, xx = np.mgrid[:9, :9] - 4
    radius = np.broadcast_to(np.hypot(xx, yy), (2, 9, 9))
    features = ceiling.aperture_features(images, radius, np.array([2.0, 4.0]), [0.01, 0.02])
    assert features.shape == (2, 3 * 5 + 2)
    colours = features[:, [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]]
    np.testing.assert_allclose(colours, 0.0, atol=1e-12)
    inner = ((radius[0] / 2.0) < 0.5).sum()
    assert features[0, 4] == pytest.approx(np.log10(inner))
    np.testing.assert_allclose(features[:, -1], [0.01, 0.02])


def test_tiny_run_scores_like_map_metrics(ceiling, capsys):
    result = ceiling.skill_ceiling(24, size=32, seed=1, folds=2)
    assert result["n"] <= 24 and result["size"] == 32 and result["noise"]
    for name in ("age_mw", "metallicity"):
        row = result[name]
        assert row["sigma"] > 0 and row["sigma_constant"] > 0
        assert row["sigma_ratio"] == pytest.approx(row["sigma"] / row["sigma_constant"])
    # the command line prints the same result as JSON
    ceiling.main(["--n", "24", "--size", "32", "--seed", "1", "--no-noise"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["noise"] is False and set(printed) >= {"age_mw", "metallicity", "n"}
