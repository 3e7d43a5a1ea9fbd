"""Fast checks of the GZ1 experiment's scoring helpers on synthetic images."""


import numpy as np
import pytest

torch = pytest.importorskip("torch")

@pytest.fixture(scope="module")
def experiment(docs_script):
    return docs_script("gz1_experiment")


def _toy_sample(n_per_class=24, size=16, seed=0):
    """Three classes: red round blobs, blue round blobs, green elongated blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images, labels = [], []
    for cls, (colour, axis_ratio) in enumerate((((1.0, 0.5, 0.2), 1.0),
                                                ((0.2, 0.5, 1.0), 1.0),
                                                ((0.4, 1.0, 0.4), 0.3))):
        for _ in range(n_per_class):
            angle = rng.uniform(0, np.pi)
            u = xx * np.cos(angle) + yy * np.sin(angle)
            v = -xx * np.sin(angle) + yy * np.cos(angle)
            blob = np.exp(-0.5 * ((u / 3.0) ** 2 + (v / (3.0 * axis_ratio)) ** 2))
            img = np.asarray(colour)[:, None, None] * blob
            images.append(img + 0.01 * rng.standard_normal(img.shape))
            labels.append(cls)
    return np.asarray(images, np.float32), np.asarray(labels)


def test_supervised_reference_learns_and_is_deterministic(experiment):
    from astro_cl.data.batch import TensorBatch

    images, labels = _toy_sample()
    size = images.shape[-1]
    batch = TensorBatch.from_arrays(images / images.std(axis=(0, 2, 3), keepdims=True),
                                    mask=np.zeros((len(images), 1, size, size), bool),
                                    ids=[str(i) for i in range(len(images))],
                                    meta={"survey": "toy", "bands": ["i", "r", "g"]})
    params = {"backbone": "conv", "width": 0.125, "pooling": "mean", "embedding_dim": 8,
              "projection_head": None, "augmenter": experiment.gz1_views(size),
              "batch_size": 32, "lr": 1e-2, "seed": 3, "num_threads": 1,
              "progress": False, "device": "cpu"}
    folds = experiment._folds(labels, 2, 0)
    first = experiment.supervised_reference(batch, labels, folds, params, epochs=6,
                                            batch_size=16, k=5, seed=1, progress=False)
    assert set(first) == {"supervised", "supervised [kNN]"}
    from sklearn.metrics import balanced_accuracy_score

    for name, pred in first.items():
        assert pred.shape == labels.shape and set(np.unique(pred)) <= {0, 1, 2}, name
        # colour and shape tell these classes apart: far above chance (1/3)
        assert balanced_accuracy_score(labels, pred) > 0.8, name
    again = experiment.supervised_reference(batch, labels, folds, params, epochs=6,
                                            batch_size=16, k=5, seed=1, progress=False)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])


def test_knn_predict_prior_correction(experiment):
    # 9 galaxies of class 0 at the origin, 1 of class 1 on the query. Each class's
    # vote share is divided by its training frequency (0.9 and 0.1), so class 1
    # wins only when it gets more than its share of the k neighbours.
    train_x = np.r_[np.zeros((9, 2)), [[1.0, 1.0]]]
    train_y = np.r_[np.zeros(9, int), [1]]
    pred = experiment.knn_predict(train_x, train_y, np.array([[1.0, 1.0]]), k=10,
                                  n_classes=2)
    assert pred.tolist() == [0]  # votes 9/10 / 0.9 = 1.0 against 1/10 / 0.1 = 1.0: tie -> 0
    pred = experiment.knn_predict(train_x, train_y, np.array([[1.0, 1.0]]), k=5,
                                  n_classes=2)
    assert pred.tolist() == [1]  # votes 4/5 / 0.9 = 0.89 against 1/5 / 0.1 = 2.0
