"""Acceptance on real images: SimCLR on Galaxy Zoo 1 SDSS cutouts beats two baselines.

Runs ``docs/science/gz1_experiment.py`` (the experiment of the docs page
``docs/science/real_images.rst``) at the docs settings (``DEFAULTS``, about
10 minutes on two cores) and checks the issue's criterion: the kNN morphology
balanced accuracy (elliptical / face-on spiral / edge-on) of the trained
SimCLR representation is at least 10 points above
the same encoder with its random initial weights, and above a pixel-PCA
baseline. The criterion is not met yet: that test is a strict xfail that
records the measured numbers (it will fail loudly once the criterion is met,
so the marker can be removed).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "science" / "gz1_experiment.py"

# The docs settings (DEFAULTS) with fewer bootstrap resamples.
_REDUCED = {"n_boot": 200, "progress": False}


def _experiment():
    spec = importlib.util.spec_from_file_location("gz1_experiment", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gz1_result(shared_data):
    if not (shared_data / "gz1" / "labels.csv").is_file():
        pytest.skip("gz1 sample not in the shared data")
    pytest.importorskip("torch")
    return _experiment().run_experiment(shared_data, **_REDUCED)


@pytest.mark.slow
@pytest.mark.xfail(
    reason="issue 7 acceptance not met at the docs settings (60 epochs, 48x48 px, width 0.25, "
           "colour-jitter 0.1/0.05 dex, trunk-feature readout): measured kNN balanced accuracy "
           "simclr 0.753 +- 0.009, random weights 0.721 +- 0.009, pixel PCA 0.733 +- 0.009 "
           "(docs/science/_static/gz1_results.json); needs +0.10 over random weights, more "
           "than the same encoder gains when trained with the labels (0.781, kNN)",
    strict=True)
def test_simclr_beats_random_weights_and_pixel_pca(gz1_result):
    s = gz1_result["scores"]
    trained = s["simclr"]["balanced_accuracy"]
    random = s["random-weights"]["balanced_accuracy"]
    pca = s["pixel-pca"]["balanced_accuracy"]
    report = f"simclr {trained:.3f}, random weights {random:.3f}, pixel PCA {pca:.3f}"
    assert trained >= random + 0.10, report
    assert trained > pca, report


@pytest.mark.slow
def test_gz1_experiment_is_well_formed(gz1_result):
    n = gz1_result["n_galaxies"]
    # GZ1 classes 0 / 1+2 / 3 of labels.csv; "don't know" and mergers left out
    assert (n["elliptical"], n["face-on spiral"], n["edge-on"]) == (3205, 586, 693)
    assert n["trained_on"] == 4615
    labels = gz1_result["labels"]
    embeddings = gz1_result["embeddings"]
    for name, emb in embeddings.items():
        assert emb.ndim == 2 and len(emb) == len(labels), name
        assert np.isfinite(emb).all(), name
    assert embeddings["pixel-pca"].shape[1] == gz1_result["settings"]["embedding_dim"]
    assert embeddings["simclr"].shape == embeddings["random-weights"].shape
    # the encoders' vectors are unit vectors, and training changed them
    assert np.allclose(np.linalg.norm(embeddings["simclr"], axis=1), 1.0, atol=1e-4)
    assert not np.allclose(embeddings["simclr"], embeddings["random-weights"])
    for name in gz1_result["fold_scores"]:
        score = gz1_result["scores"][name]
        assert 1 / 3 - 0.1 < score["balanced_accuracy"] <= 1.0
        lo, hi = score["ci95"]
        assert lo <= score["balanced_accuracy"] <= hi
        assert len(gz1_result["fold_scores"][name]) == gz1_result["settings"]["n_splits"]
    # training made progress: the contrastive loss went down
    losses = [row["train_loss"] for row in gz1_result["history"]]
    assert losses[-1] < losses[0]


def test_views_include_the_brightness_and_colour_changes():
    pytest.importorskip("torch")
    from astro_cl.augment.colour import ColourJitter
    from astro_cl.data.batch import TensorBatch

    module = _experiment()
    chain = module.gz1_views(32, colour_jitter=(0.1, 0.05))
    steps = chain.normalised_steps()
    jitter = [(a, p) for a, p in steps if isinstance(a, ColourJitter)]
    assert len(jitter) == 1 and (jitter[0][0].brightness, jitter[0][0].colour) == (0.1, 0.05)
    assert not any(isinstance(a, ColourJitter)
                   for a, _ in module.gz1_views(32, colour_jitter=(0, 0)).normalised_steps())
    rng = np.random.default_rng(0)
    batch = TensorBatch.from_arrays(rng.random((6, 3, 32, 32), dtype=np.float32),
                                    meta={"bands": ["i", "r", "g"]})
    v1, v2 = chain.two_views(batch, seed=1)
    assert v1.data.shape == batch.data.shape and not np.allclose(v1.data, v2.data)


def test_prior_corrected_knn_targets_balanced_accuracy():
    module = _experiment()
    rng = np.random.default_rng(0)
    # a rare class (10 per cent) whose cloud overlaps the common one: a plain
    # majority vote would never predict it; the prior-corrected vote does
    y = (rng.random(2000) < 0.1).astype(int)
    x = rng.normal(size=(2000, 2)) + 1.0 * y[:, None]
    pred = module.knn_predict(x[:1500], y[:1500], x[1500:], k=15, n_classes=2)
    test = y[1500:]
    recall_rare = np.mean(pred[test == 1] == 1)
    assert recall_rare > 0.5
    scores = module.bootstrap_balanced_accuracy(test, {"knn": pred, "all-zero": 0 * pred},
                                                n_boot=100, seed=0)
    assert scores["all-zero"]["balanced_accuracy"] == pytest.approx(0.5)
    assert scores["knn - all-zero"]["difference"] > 0.1
