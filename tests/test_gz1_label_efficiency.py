"""Fast checks of the GZ1 label-efficiency experiment (splitter, augmentations, tiny run)."""


import numpy as np
import pytest


@pytest.fixture(scope="module")
def le(docs_script):
    return docs_script("gz1_label_efficiency")


def _labels():
    # unbalanced like GZ1: many class 0, few class 2, and ignored (-1) galaxies
    return np.r_[np.zeros(300, int), np.ones(60, int), np.full(12, 2), np.full(7, -1)]


def test_splits_stratified_nested_fixed_test(le):
    labels = _labels()
    fractions = (1.0, 0.03, 0.3, 0.1)
    splits = le.label_fraction_splits(labels, fractions, seed=1, test_fraction=0.25)
    test = splits["test"]
    assert list(splits["train"]) == [0.03, 0.1, 0.3, 1.0]  # sorted ascending
    # stratified test set, no ignored galaxies in it
    assert [int((labels[test] == c).sum()) for c in range(3)] == [75, 15, 3]
    assert (labels[test] >= 0).all()
    previous = np.array([], int)
    for f, train in splits["train"].items():
        assert not np.intersect1d(train, test).size            # disjoint from the test set
        assert (labels[train] >= 0).all()
        assert np.isin(previous, train).all()                  # nested
        counts = np.bincount(labels[train], minlength=3)
        pool = np.array([225, 45, 9])
        np.testing.assert_array_equal(counts, np.maximum(1, np.round(f * pool)))  # stratified
        previous = train
    assert len(splits["train"][1.0]) + len(test) == (labels >= 0).sum()


def test_splits_seeded_and_shared_test(le):
    labels = _labels()
    a = le.label_fraction_splits(labels, (0.1, 1.0), seed=3, test_fraction=0.3)
    b = le.label_fraction_splits(labels, (0.1, 1.0), seed=3, test_fraction=0.3)
    c = le.label_fraction_splits(labels, (0.1, 1.0), seed=4, test_fraction=0.3, test_seed=3)
    np.testing.assert_array_equal(a["test"], b["test"])
    np.testing.assert_array_equal(a["train"][0.1], b["train"][0.1])
    np.testing.assert_array_equal(a["test"], c["test"])        # same test set, new subset
    assert not np.array_equal(a["train"][0.1], c["train"][0.1])


def test_splits_name_the_class_that_cannot(le):
    from astro_cl.exceptions import ValidationError

    labels = np.r_[np.zeros(50, int), [1]]
    with pytest.raises(ValidationError, match="class 1 has 1 galaxies"):
        le.label_fraction_splits(labels, (0.01,), seed=0, test_fraction=0.2)
    with pytest.raises(ValidationError, match="fractions"):
        le.label_fraction_splits(labels, (0.0, 0.5), seed=0, test_fraction=0.2)
    with pytest.raises(ValidationError, match="test_fraction"):
        le.label_fraction_splits(labels, (0.5,), seed=0, test_fraction=1.0)


def test_augment_option_builds_the_chain(le):
    from astro_cl.exceptions import ValidationError

    names = {a: [type(step[0]).__name__ for step in le.build_views(a, 32).steps]
             for a in le.AUGMENTATIONS}
    assert {"PSFDegradation", "NoiseToDepth", "SurfaceBrightnessDimming",
            "Reddening"} <= set(names["physical"])
    assert "ColourJitter" not in names["physical"]
    assert "ColourJitter" in names["jitter"] and "PSFDegradation" not in names["jitter"]
    with pytest.raises(ValidationError, match="augment"):
        le.build_views("nope", 32)
    with pytest.raises(SystemExit):  # the CLI rejects an unknown augmentation set
        le.main(["--augment", "nope"])


def test_physical_chain_runs_on_a_batch(le):
    torch = pytest.importorskip("torch")
    from astro_cl.data.batch import TensorBatch

    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 32, 32)).astype(np.float32)
    batch = TensorBatch.from_arrays(x, mask=np.zeros((4, 1, 32, 32), bool),
                                    ids=[str(i) for i in range(4)],
                                    meta={"survey": "toy", "bands": ["i", "r", "g"]})
    out = le.physical_views(32)(batch, generator=torch.Generator().manual_seed(1))
    assert tuple(out.data.shape) == (4, 3, 32, 32)
    assert torch.isfinite(out.data).all()
    assert not torch.allclose(out.data, batch.data)


def test_tiny_run_on_real_images(le, shared_data, tmp_path):
    pytest.importorskip("torch")
    if not (shared_data / "gz1" / "labels.csv").is_file():
        pytest.skip(f"gz1 sample not found at {shared_data / 'gz1'}")
    result = le.main(["--data", str(shared_data), "--out", str(tmp_path), "--limit", "160",
                      "--size", "16", "--epochs", "1", "--sup-epochs", "1", "--seeds", "2",
                      "--fractions", "0.3", "1.0", "--n-boot", "20", "--batch-size", "64",
                      "--augment", "jitter", "physical", "--finetune-init", "random", "probe",
                      "--quiet"])
    methods = {r["method"] for r in result["rows"]}
    assert {"simclr-jitter linear", "simclr-physical kNN", "random-weights linear",
            "pixel-pca kNN", "scratch", "finetune-jitter", "finetune-physical",
            "lpft-jitter", "lpft-physical"} <= methods
    assert result["settings"]["finetune_init"] == ["random", "probe"]
    assert {r["task"] for r in result["rows"]} == {"3-class", "5-class"}
    for r in result["rows"]:
        assert 0.0 <= r["balanced_accuracy"] <= 1.0 and len(r["per_seed"]) == 2
    assert all("handedness" in r for r in result["rows"] if r["task"] == "5-class")
    assert (tmp_path / "gz1_label_efficiency.json").is_file()
    assert "3-class" in (tmp_path / "gz1_label_efficiency.rst").read_text()


def test_probe_head_is_the_linear_probe_folded_into_one_layer(le):
    """The LP-FT head predicts, on the raw features, what the standardised probe predicts."""
    torch = pytest.importorskip("torch")
    from sklearn.linear_model import LogisticRegression

    from astro_cl.data.batch import TensorBatch

    rng = np.random.default_rng(2)
    feats = rng.normal(size=(60, 5)).astype(np.float32) * [1, 5, 0.2, 3, 1] + [0, 4, 1, 0, -2]
    labels = np.r_[np.zeros(20, int), np.ones(20, int), np.full(20, 2)]
    feats[labels == 1, 0] += 3
    feats[labels == 2, 1] -= 8

    class Trunk(torch.nn.Module):  # features = the inputs' pixel means: a known feature map
        def features(self, data, mask=None):
            return data.mean(dim=(2, 3))

    x = np.repeat(np.repeat(feats[:, :, None, None], 4, axis=2), 4, axis=3)
    batch = TensorBatch.from_arrays(x.astype(np.float32), ids=[str(i) for i in range(60)])
    train = np.arange(0, 60, 2)
    weight, bias = le.probe_head(Trunk(), batch, labels, train, n_classes=4, seed=0)
    assert weight.shape == (4, 5) and bias[3] == -10.0 and not weight[3].any()
    mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-6
    ref = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=0).fit(
        (feats[train] - mu) / sd, labels[train])
    np.testing.assert_array_equal((feats @ weight.T + bias).argmax(1),
                                  ref.predict((feats - mu) / sd))


def test_vectorised_bootstrap_matches_the_experiment(le):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)
    pred = np.where(rng.random(150) < 0.6, y, rng.integers(0, 3, 150))
    ref = le.gz1.bootstrap_balanced_accuracy(y, {"a": pred}, n_boot=200, seed=4)["a"]
    acc, std = le._bootstrap(y, pred, n_boot=200, seed=4)
    assert acc == pytest.approx(ref["balanced_accuracy"], abs=1e-12)
    assert std == pytest.approx(ref["std"], rel=1e-9)
