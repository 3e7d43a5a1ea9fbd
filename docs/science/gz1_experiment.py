"""SimCLR on real SDSS galaxies: kNN morphology accuracy against two baselines.

Trains the ``simclr`` encoder on the Galaxy Zoo 1 sample of real SDSS gri
colour cutouts in ``../shared/data/gz1`` and measures how well its embedding
separates three morphological classes (elliptical, face-on spiral, edge-on)
with a k-nearest-neighbour classifier, against

(a) the same encoder architecture with the same initial (random) weights,
    not trained, and
(b) a pixel-PCA baseline: PCA of the flattened, downsampled pixels with as
    many components as the embedding has dimensions, fitted inside each
    cross-validation training fold,

and, optionally (``--supervised-epochs N``), beside a reference: the same
encoder trained *with* the labels in every fold (`supervised_reference`).

The score is the balanced accuracy (mean per-class recall) of out-of-fold
predictions from stratified 5-fold cross-validation; uncertainties are the
standard deviation over galaxy bootstrap resamples of those predictions, and
the differences between methods are bootstrapped pairwise (same resamples).

Run from the repository root (10-15 minutes on two CPU cores; the
supervised reference of the docs page adds about 15 minutes)::

    python docs/science/gz1_experiment.py --supervised-epochs 30

It writes ``gz1_results.json``, ``gz1_embeddings.png`` and ``gz1_accuracy.png``
into ``docs/science/_static`` (see ``docs/science/real_images.rst``).

Data: SDSS imaging (public) with Galaxy Zoo 1 classifications (Lintott et al.
2008, 2011).
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "DEFAULTS",
    "accuracy_figure",
    "bootstrap_balanced_accuracy",
    "embedding_figure",
    "evaluate_sample",
    "fit_simclr",
    "gz1_views",
    "knn_predict",
    "load_gz1",
    "main",
    "pixel_pca_predict",
    "results_table",
    "run_experiment",
    "supervised_reference",
    "write_outputs",
]

#: Names of the three evaluation classes, in label order.
CLASS_NAMES = ("elliptical", "face-on spiral", "edge-on")

# Galaxy Zoo 1 classes in labels.csv -> evaluation class (4 "don't know" and
# 5 "merger" are left out of the evaluation but kept for self-supervised training).
_GZ1_TO_CLASS = {0: 0, 1: 1, 2: 1, 3: 2}

#: Default settings of the experiment (the numbers on the docs page).
DEFAULTS = {
    "crop": 96,           # centre crop of the 423 px cutouts, px
    "size": 48,           # downsampled image size, px
    "backbone": "conv",
    "width": 0.25,
    "pooling": "mean",
    "crop_scale": (0.55, 1.0),
    "jitter": 1.0,
    "colour_jitter": (0.1, 0.05),
    "n_views": 1,
    "readout": "features",
    "aperture": 0.7,
    "embedding_dim": 64,
    "projection_head": (64, 64),
    "temperature": 0.2,
    "negatives": "all",
    "epochs": 60,
    "batch_size": 256,
    "lr": 1e-3,
    "k": 15,
    "n_splits": 5,
    "n_boot": 1000,
    "seed": 42,
    "threads": 2,
    "supervised_epochs": 0,
}


def _repo_root():
    return Path(__file__).resolve().parents[2]


def load_gz1(data_dir, *, crop=96, size=32, limit=None, seed=0, progress=True):
    """Read the GZ1 cutouts through the ``image-folder`` survey, centre-cropped and binned.

    Parameters
    ----------
    data_dir : str or `~pathlib.Path`
        The shared data directory (holding ``gz1/images`` and ``gz1/labels.csv``).
    crop : int, optional
        Side of the central square kept from each cutout, in pixels; galaxies
        sit at the centre of the 423x423 cutouts and fill only part of them.
    size : int, optional
        Output side in pixels; ``crop`` must be a multiple of ``size`` (the
        crop is block-averaged, which conserves the mean surface brightness).
    limit : int, optional
        Read a random, seeded subset of this many images (class proportions
        kept) instead of all of them.
    seed : int, optional
        Seed of the subset.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    images : `numpy.ndarray`
        ``(N, 3, size, size)`` float32 in 0-1 (channels i, r, g as the JPEG's R, G, B).
    labels : `numpy.ndarray`
        ``(N,)`` int: 0 elliptical, 1 face-on spiral, 2 edge-on, -1 not evaluated
        (GZ1 "don't know" and "merger").
    ids : `numpy.ndarray`
        SDSS objids (str).
    """
    from tqdm.auto import tqdm

    from astro_cl.surveys.image_folder import ImageFolderSurvey

    crop, size = int(crop), int(size)
    if crop % size:
        msg = f"crop: expected a multiple of size={size}, got {crop}"
        raise ValueError(msg)
    # centre crop and block averaging are options of the survey reader
    survey = ImageFolderSurvey(path=Path(data_dir) / "gz1", require_labels=True, crop=crop,
                               size=size, resample="block")
    gz = np.asarray(survey.catalogue["class"]).astype(int)
    labels_all = np.array([_GZ1_TO_CLASS.get(int(c), -1) for c in gz])
    index = np.arange(len(survey))
    if limit is not None and int(limit) < len(index):
        from sklearn.model_selection import train_test_split

        index, _ = train_test_split(index, train_size=int(limit), random_state=seed,
                                    stratify=gz)
        index = np.sort(index)
    images = np.empty((len(index), 3, size, size), dtype=np.float32)
    for out, i in enumerate(tqdm(index, desc="reading gz1", disable=not progress)):
        images[out] = survey[int(i)].images.data
    return images, labels_all[index], np.asarray(survey.ids)[index].astype(str)


def gz1_views(size=48, *, crop_scale=(0.55, 1.0), jitter=1.0, colour_jitter=(0.1, 0.05)):
    """Return the augmentation chain used for the two SimCLR views of a gri cutout.

    Rotations by any angle with a flip (morphology does not depend on
    orientation or handedness), a random zoom (crop of ``crop_scale`` of the
    area), a sub-pixel Gaussian blur (seeing), mild multiplicative noise, and
    small brightness and colour changes (surface-brightness dimming to
    z <= 0.15 and a foreground reddening E(B-V) <= 0.1 with the SDSS
    coefficients of the i, r, g channels), and random gains symmetric in log
    (``colour-jitter``: an overall gain and centred per-channel gains, so
    brighter/bluer is as likely as fainter/redder). These keep the galaxy's
    colour class, but stop the network from telling galaxies apart by their
    exact brightness and colour alone.

    Parameters
    ----------
    size : int, optional
        Image side in pixels (scales the blur).
    crop_scale : (float, float), optional
        Range of the area fraction of the random crop.
    jitter : float, optional
        Strength of the brightness and colour changes: the largest target
        redshift of the dimming is ``0.15 * jitter`` and the largest E(B-V)
        ``0.1 * jitter`` (0: none).
    colour_jitter : (float, float), optional
        ``(brightness, colour)`` of the `~astro_cl.augment.colour.ColourJitter`
        step (uniform half-ranges of the log10 gains in dex), applied with
        probability 0.8; ``(0, 0)``: no such step.

    Returns
    -------
    chain : `~astro_cl.augment.compose.Compose`
    """
    from astro_cl.augment.config import build_augmenter

    scale = size / 48.0
    steps = [
        {"name": "random-rotation", "angle": [0.0, 360.0], "flip": True, "mode": "bilinear"},
        {"name": "crop-resize", "scale": [float(v) for v in crop_scale], "ratio": [0.8, 1.25]},
        {"name": "gaussian-blur", "p": 0.5, "sigma": [0.1, 1.2 * scale]},
        {"name": "multiplicative-noise", "p": 0.5, "sn": [5, 20]},
    ]
    if jitter > 0:
        steps += [{"name": "sb-dimming", "p": 0.8, "redshift": [0.0, 0.15 * float(jitter)]},
                  {"name": "reddening", "p": 0.8, "ebv": [0.0, 0.1 * float(jitter)]}]
    brightness, colour = (float(v) for v in colour_jitter)
    if brightness > 0 or colour > 0:
        steps.append({"name": "colour-jitter", "p": 0.8, "brightness": brightness,
                      "colour": colour})
    return build_augmenter(steps)


def knn_predict(train_x, train_y, test_x, *, k=15, n_classes=3):
    """Predict classes with a prior-corrected k-nearest-neighbour vote.

    The fraction of each class among the ``k`` nearest training galaxies
    (Euclidean distance) is divided by that class's frequency in the training
    set before taking the largest, so the rare classes (spirals, edge-on) are
    not swamped by the many ellipticals; this targets balanced accuracy.

    Parameters
    ----------
    train_x, test_x : `numpy.ndarray`
        ``(n, d)`` features.
    train_y : `numpy.ndarray`
        ``(n,)`` integer classes in ``0 .. n_classes-1``.
    k : int, optional
    n_classes : int, optional

    Returns
    -------
    pred : `numpy.ndarray`
        ``(n_test,)`` predicted classes.
    """
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=int(k)).fit(train_x)
    _, idx = nn.kneighbors(test_x)
    votes = np.zeros((len(test_x), n_classes))
    np.add.at(votes, (np.arange(len(test_x))[:, None], train_y[idx]), 1.0)
    prior = np.bincount(train_y, minlength=n_classes) / len(train_y)
    return np.argmax(votes / k / np.maximum(prior, 1e-12), axis=1)



def fit_simclr(batch, params, epochs):
    """Build a `~astro_cl.models.simclr.SimCLR` from ``params`` and train it for ``epochs``.

    The one place the experiment scripts build a model. ``params`` mixes the
    network's parameters and the training settings; `SimCLR.split_settings`
    separates them into the constructor's and ``fit``'s ``trainer``.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
        The training images.
    params : dict
        Network parameters (backbone, width, pooling, augmenter, ...) and
        training settings (lr, batch_size, schedule, seed, ...).
    epochs : int
        Training epochs; 0 gives the seeded initial weights.

    Returns
    -------
    encoder : `~astro_cl.models.simclr.SimCLR`
        Fitted.
    """
    from astro_cl.models.simclr import SimCLR

    model, settings = SimCLR.split_settings({**params, "epochs": int(epochs)})
    return SimCLR(**model).fit(batch, trainer=settings)


def _folds(labels, n_splits, seed):
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=int(n_splits), shuffle=True,
                                random_state=seed).split(np.zeros(len(labels)), labels))


def _oof(features_for_fold, labels, folds, k):
    pred = np.empty_like(labels)
    for train, test in folds:
        tr_x, te_x = features_for_fold(train, test)
        pred[test] = knn_predict(tr_x, labels[train], te_x, k=k)
    return pred


def pixel_pca_predict(pixels, labels, folds, *, n_components, k=15, seed=0):
    """Out-of-fold kNN predictions on PCA of the flattened pixels.

    The PCA (centred, not whitened) is fitted on each training fold only.

    Parameters
    ----------
    pixels : `numpy.ndarray`
        ``(N, C, H, W)`` images.
    labels : `numpy.ndarray`
        ``(N,)`` classes.
    folds : list of (train, test) index arrays
    n_components : int
    k : int, optional
    seed : int, optional
        Seed of the randomized SVD.

    Returns
    -------
    pred : `numpy.ndarray`
    """
    from sklearn.decomposition import PCA

    flat = pixels.reshape(len(pixels), -1)

    def feats(train, test):
        pca = PCA(n_components=int(n_components), svd_solver="randomized",
                  random_state=seed).fit(flat[train])
        return pca.transform(flat[train]), pca.transform(flat[test])

    return _oof(feats, labels, folds, k)


def bootstrap_balanced_accuracy(labels, predictions, *, n_boot=1000, seed=0):
    """Balanced accuracies, bootstrap uncertainties and paired differences.

    Parameters
    ----------
    labels : `numpy.ndarray`
        ``(N,)`` true classes.
    predictions : dict of str -> `numpy.ndarray`
        Out-of-fold predictions per method.
    n_boot : int, optional
        Bootstrap resamples of the galaxies (shared by all methods).
    seed : int, optional

    Returns
    -------
    scores : dict
        Per method ``{"balanced_accuracy", "std", "ci95"}`` and, per pair
        ``"a - b"``, the difference with its std and 95 per cent interval.
    """
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), size=(int(n_boot), len(labels)))
    boot = {name: np.array([balanced_accuracy_score(labels[d], p[d]) for d in draws])
            for name, p in predictions.items()}
    out = {}
    for name, p in predictions.items():
        b = boot[name]
        out[name] = {"balanced_accuracy": float(balanced_accuracy_score(labels, p)),
                     "std": float(b.std(ddof=1)),
                     "ci95": [float(v) for v in np.percentile(b, [2.5, 97.5])]}
    names = list(predictions)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff = boot[a] - boot[b]
            out[f"{a} - {b}"] = {
                "difference": out[a]["balanced_accuracy"] - out[b]["balanced_accuracy"],
                "std": float(diff.std(ddof=1)),
                "ci95": [float(v) for v in np.percentile(diff, [2.5, 97.5])]}
    return out


def _fold_scores(labels, pred, folds):
    from sklearn.metrics import balanced_accuracy_score

    return [float(balanced_accuracy_score(labels[t], pred[t])) for _, t in folds]


def run_experiment(data_dir, *, crop=DEFAULTS["crop"], size=DEFAULTS["size"],
                   backbone=DEFAULTS["backbone"], width=DEFAULTS["width"],
                   pooling=DEFAULTS["pooling"], crop_scale=DEFAULTS["crop_scale"],
                   jitter=DEFAULTS["jitter"], colour_jitter=DEFAULTS["colour_jitter"],
                   n_views=DEFAULTS["n_views"], readout=DEFAULTS["readout"],
                   aperture=DEFAULTS["aperture"],
                   embedding_dim=DEFAULTS["embedding_dim"],
                   projection_head=DEFAULTS["projection_head"],
                   temperature=DEFAULTS["temperature"], negatives=DEFAULTS["negatives"],
                   epochs=DEFAULTS["epochs"],
                   batch_size=DEFAULTS["batch_size"], lr=DEFAULTS["lr"], k=DEFAULTS["k"],
                   n_splits=DEFAULTS["n_splits"], n_boot=DEFAULTS["n_boot"],
                   seed=DEFAULTS["seed"], threads=DEFAULTS["threads"],
                   supervised_epochs=DEFAULTS["supervised_epochs"], limit=None,
                   progress=True):
    """Train SimCLR on GZ1 and score it and both baselines with kNN.

    Parameters
    ----------
    data_dir : str or `~pathlib.Path`
        The shared data directory.
    crop, size : int, optional
        See `load_gz1`.
    backbone, width, pooling, embedding_dim, projection_head, temperature, negatives, epochs, \
batch_size, lr
        `~astro_cl.models.simclr.SimCLR` parameters (cosine learning-rate
        decay over ``epochs``, no early stopping).
    crop_scale : (float, float), optional
        Area range of the random crops, see `gz1_views`.
    jitter : float, optional
        Strength of the brightness and colour changes, see `gz1_views`.
    colour_jitter : (float, float), optional
        ``(brightness, colour)`` gains of the views in dex, see `gz1_views`.
    n_views : int, optional
        A galaxy's embedding (trained or random weights) is the median of
        its unit vectors over this many augmented views, as in the eCALIFA
        study (1: the un-augmented image); used for the ``"embedding"``
        readout only.
    readout : {"features", "embedding"}, optional
        Representation scored as ``simclr`` and ``random-weights``:
        ``"features"``, the pooled output of the convolutional trunk (before
        the dense head and the projection head, as usual for SimCLR), or
        ``"embedding"``, the encoder's embedding (after the dense head, before
        the projection head). The other readout is scored too, under the
        names ``simclr [<readout>]`` and ``random-weights [<readout>]``.
    aperture : float, optional
        Mask (astropy convention) every pixel farther from the centre than
        this fraction of half the image side, for all three methods (the
        pixel-PCA baseline sees zeros there); None: no mask.
    k : int, optional
        Neighbours of the kNN classifier.
    n_splits : int, optional
        Cross-validation folds (stratified, seeded).
    n_boot : int, optional
        Bootstrap resamples.
    seed : int, optional
        Seed of everything (weights, augmentations, folds, bootstrap).
    threads : int, optional
        Torch CPU threads.
    supervised_epochs : int, optional
        If positive, also train the same encoder (same initial weights) *with*
        the labels for this many epochs in every cross-validation fold and
        score it (see `supervised_reference`): what this architecture can learn
        about the three classes at best, as a reference for the self-supervised
        gain. 0: skip (it costs about as much as the SimCLR training).
    limit : int, optional
        Use a seeded subset of this many images (for quick tests).
    progress : bool, optional

    Returns
    -------
    result : dict
        ``scores`` (see `bootstrap_balanced_accuracy`), ``fold_scores``,
        ``settings``, ``runtime_s``, ``n_galaxies`` per class, the training
        ``history``, and the arrays ``embeddings`` (dict of method ->
        ``(N_eval, D)``) and ``labels`` (not JSON-serialisable; dropped by
        `main` before writing).
    """
    t0 = time.perf_counter()
    images, labels, ids = load_gz1(data_dir, crop=crop, size=size, limit=limit, seed=seed,
                                   progress=progress)
    t_load = time.perf_counter() - t0
    result = evaluate_sample(images, labels, ids, backbone=backbone, width=width, pooling=pooling,
                             crop_scale=crop_scale, jitter=jitter,
                             colour_jitter=colour_jitter, n_views=n_views, readout=readout,
                             aperture=aperture,
                             embedding_dim=embedding_dim,
                             projection_head=projection_head,
                             temperature=temperature, negatives=negatives, epochs=epochs,
                             batch_size=batch_size,
                             lr=lr, k=k, n_splits=n_splits, n_boot=n_boot, seed=seed,
                             threads=threads, supervised_epochs=supervised_epochs,
                             progress=progress)
    result["settings"].update({"crop": int(crop), "limit": None if limit is None else int(limit)})
    result["runtime_s"].update({"read": round(t_load, 1),
                                "total": round(time.perf_counter() - t0, 1)})
    return result


def evaluate_sample(images, labels, ids, *, backbone=DEFAULTS["backbone"],
                    width=DEFAULTS["width"], pooling=DEFAULTS["pooling"],
                    crop_scale=DEFAULTS["crop_scale"], jitter=DEFAULTS["jitter"],
                    colour_jitter=DEFAULTS["colour_jitter"], n_views=DEFAULTS["n_views"],
                    readout=DEFAULTS["readout"], aperture=DEFAULTS["aperture"],
                    embedding_dim=DEFAULTS["embedding_dim"],
                    projection_head=DEFAULTS["projection_head"],
                    temperature=DEFAULTS["temperature"], negatives=DEFAULTS["negatives"],
                    epochs=DEFAULTS["epochs"],
                    batch_size=DEFAULTS["batch_size"], lr=DEFAULTS["lr"], k=DEFAULTS["k"],
                    n_splits=DEFAULTS["n_splits"], n_boot=DEFAULTS["n_boot"],
                    seed=DEFAULTS["seed"], threads=DEFAULTS["threads"],
                    supervised_epochs=DEFAULTS["supervised_epochs"], progress=True):
    """Train SimCLR on loaded images and score it and both baselines (see `run_experiment`).

    Parameters
    ----------
    images, labels, ids : `numpy.ndarray`
        As returned by `load_gz1`; every image is used for training, those
        with ``labels >= 0`` for the evaluation.
    backbone, width, pooling, crop_scale, jitter, colour_jitter, n_views, readout, aperture
        See `run_experiment`.
    embedding_dim
        See `run_experiment`.
    projection_head, temperature, negatives, epochs, batch_size, lr, k, n_splits, n_boot, seed, \
threads, supervised_epochs, progress
        See `run_experiment`.

    Returns
    -------
    result : dict
        As `run_experiment`.
    """
    import torch

    from astro_cl.data.batch import TensorBatch

    t0 = time.perf_counter()
    torch.set_num_threads(int(threads))
    size = images.shape[-1]
    # One fixed rescaling for the network: unit standard deviation per channel over the
    # sample; no offset, so that the sky stays near zero like the augmenters' fill value.
    net_in = images / images.std(axis=(0, 2, 3), keepdims=True)
    mask = np.zeros((len(net_in), 1, size, size), bool)
    if aperture is not None:
        yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
        mask[:] = np.hypot(yy, xx) > float(aperture) * size / 2
        net_in = np.where(mask, 0.0, net_in).astype(np.float32)
        images = np.where(mask, 0.0, images).astype(np.float32)
    batch = TensorBatch.from_arrays(net_in, mask=mask,
                                    ids=list(ids), meta={"survey": "image-folder",
                                                         "bands": ["i", "r", "g"]})
    params = {"backbone": backbone, "width": float(width), "pooling": pooling,
              "embedding_dim": int(embedding_dim),
              "projection_head": tuple(projection_head) if projection_head else None,
              "temperature": float(temperature), "negatives": negatives,
              "augmenter": gz1_views(size, crop_scale=crop_scale, jitter=jitter,
                                     colour_jitter=colour_jitter),
              "batch_size": int(batch_size), "lr": float(lr), "patience": None,
              "schedule": {"name": "cosine", "epochs": int(epochs), "min_factor": 0.05},
              "seed": int(seed), "num_threads": int(threads), "progress": progress,
              "device": "cpu"}
    t1 = time.perf_counter()
    trained = fit_simclr(batch, params, epochs)   # every image, labels unused
    t_train = time.perf_counter() - t1
    random = fit_simclr(batch, params, 0)         # same seeded init, no training

    if readout not in _READOUTS:
        msg = f"readout: expected one of {_READOUTS}, got {readout!r}"
        raise ValueError(msg)
    other = next(r for r in _READOUTS if r != readout)
    keep = labels >= 0
    y = labels[keep]
    emb, extra = {}, {}
    for name, enc in (("simclr", trained), ("random-weights", random)):
        reps = {"embedding": np.asarray(enc.embed(batch, n_views=int(n_views),
                                                  seed=seed)["embedding"])[keep],
                "features": _trunk_features(enc, batch, batch_size=int(batch_size))[keep]}
        emb[name] = reps[readout]
        extra[f"{name} [{other}]"] = reps[other]
    folds = _folds(y, n_splits, seed)
    preds = {name: _oof(lambda tr, te, e=e: (e[tr], e[te]), y, folds, k)
             for name, e in {**emb, **extra}.items()}
    preds["pixel-pca"] = pixel_pca_predict(images[keep], y, folds,
                                           n_components=int(embedding_dim), k=k, seed=seed)
    t_sup = 0.0
    if int(supervised_epochs) > 0:
        t2 = time.perf_counter()
        preds.update(supervised_reference(batch.index(np.flatnonzero(keep)), y, folds,
                                          params, epochs=int(supervised_epochs), k=k,
                                          seed=seed, progress=progress))
        t_sup = time.perf_counter() - t2
    scores = bootstrap_balanced_accuracy(y, preds, n_boot=n_boot, seed=seed)
    settings = {"size": int(size), "backbone": backbone,
                "width": float(width), "pooling": pooling,
                "crop_scale": [float(v) for v in crop_scale], "jitter": float(jitter),
                "colour_jitter": [float(v) for v in colour_jitter],
                "n_views": int(n_views), "readout": readout,
                "aperture": None if aperture is None else float(aperture),
                "embedding_dim": int(embedding_dim), "projection_head": list(projection_head or []),
                "temperature": float(temperature), "negatives": negatives,
                "epochs": int(epochs),
                "batch_size": int(batch_size), "lr": float(lr), "k": int(k),
                "n_splits": int(n_splits), "n_boot": int(n_boot), "seed": int(seed),
                "threads": int(threads), "supervised_epochs": int(supervised_epochs),
                "augmentations": [s for s in _augment_spec(params["augmenter"])],
                "pca": f"{int(embedding_dim)} components, fitted inside each CV training fold",
                "knn": f"k={int(k)}, Euclidean (on unit vectors for the encoders), "
                       "votes divided by the training-fold class frequencies"}
    return {"scores": scores,
            "fold_scores": {n: _fold_scores(y, p, folds) for n, p in preds.items()},
            "n_galaxies": {"trained_on": len(images),
                           **{c: int((y == i).sum()) for i, c in enumerate(CLASS_NAMES)}},
            "settings": settings,
            "history": [dict(r) for r in trained.history_],
            "runtime_s": {"train": round(t_train, 1), "supervised": round(t_sup, 1),
                          "evaluate": round(time.perf_counter() - t0, 1)},
            "environment": {"torch": torch.__version__, "python": platform.python_version()},
            "embeddings": {**emb, "pixel-pca": _pca_all(images[keep], int(embedding_dim),
                                                        seed)},
            "labels": y}


_READOUTS = ("features", "embedding")


def supervised_reference(batch, labels, folds, params, *, epochs=30, batch_size=128, k=15,
                         seed=0, progress=True):
    """Out-of-fold predictions of the same encoder trained *with* the labels.

    A reference for the self-supervised gain, not a competitor: in every
    cross-validation fold the encoder is built with the same seed as the
    SimCLR run (so it starts from the same random weights), a linear layer on
    its trunk features is added, and both are trained on the fold's training
    galaxies with the class-weighted cross-entropy (each class weighs as
    much as the others, for balanced accuracy), the same augmented views as
    SimCLR, Adam and a cosine decay to zero over ``epochs``. The test galaxies
    of the fold are then classified twice: by the linear layer, and by the
    kNN of the other methods on the trained trunk features.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
        The labelled galaxies (network inputs with their masks).
    labels : `numpy.ndarray`
        ``(N,)`` classes ``0 .. 2``.
    folds : list of (train, test) index arrays
    params : dict
        The `~astro_cl.models.simclr.SimCLR` parameters of the run (backbone,
        width, pooling, augmenter, lr, seed, ...).
    epochs : int, optional
    batch_size : int, optional
    k : int, optional
        Neighbours of the kNN readout.
    seed : int, optional
        Seed of the shuffling and augmentations (fold ``i`` uses ``seed + i``).
    progress : bool, optional

    Returns
    -------
    predictions : dict of str -> `numpy.ndarray`
        ``"supervised"`` (linear layer) and ``"supervised [kNN]"``.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm


    labels = np.asarray(labels)
    target = torch.as_tensor(labels, dtype=torch.long)
    augment = params["augmenter"]
    pred_linear = np.empty_like(labels)
    pred_knn = np.empty_like(labels)
    n_classes = len(CLASS_NAMES)
    for fold, (train, test) in enumerate(tqdm(folds, desc="supervised reference",
                                              disable=not progress)):
        init = fit_simclr(batch, {**params, "progress": False}, 0)
        trunk = init.module_.backbone
        with torch.no_grad():  # in eval mode: the probe leaves the batch-norm statistics alone
            probe = batch.index(slice(0, 1))
            n_features = trunk.eval().features(probe.data, probe.mask).shape[1]
        with torch.random.fork_rng():  # seeds the linear layer, leaves the global generator
            torch.manual_seed(seed + fold)
            linear = torch.nn.Linear(n_features, n_classes)
        opt = torch.optim.Adam([*trunk.parameters(), *linear.parameters()],
                               lr=float(params["lr"]))
        steps = int(epochs) * -(-len(train) // int(batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        counts = np.bincount(labels[train], minlength=n_classes)
        weight = torch.as_tensor(len(train) / (n_classes * np.maximum(counts, 1)),
                                 dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed + fold)
        trunk.train()
        for _ in range(int(epochs)):
            order = train[torch.randperm(len(train), generator=gen).numpy()]
            for start in range(0, len(order), int(batch_size)):
                rows = order[start:start + int(batch_size)]
                view = augment(batch.index(rows), generator=gen)
                logits = linear(trunk.features(view.data, view.mask))
                loss = F.cross_entropy(logits, target[rows], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        trunk.eval()
        with torch.no_grad():
            features = torch.cat([trunk.features(part.data, part.mask) for part in
                                  (batch.index(slice(s, s + 512))
                                   for s in range(0, len(batch), 512))])
            pred_linear[test] = linear(features[test]).argmax(1).numpy()
            unit = F.normalize(features, dim=1).numpy()
        pred_knn[test] = knn_predict(unit[train], labels[train], unit[test], k=k)
    return {"supervised": pred_linear, "supervised [kNN]": pred_knn}


def _trunk_features(encoder, batch, *, batch_size=256):
    """Return unit vectors of the pooled trunk features of a SimCLR (before the dense head)."""
    import torch
    import torch.nn.functional as F

    module = encoder.module_.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            part = batch.index(slice(start, start + batch_size))
            h = module.backbone.features(part.data, part.mask)
            out.append(F.normalize(h.float(), dim=1).numpy())
    return np.concatenate(out).astype(np.float32)


def _augment_spec(chain):
    from astro_cl.augment.config import augmenter_spec

    return augmenter_spec(chain)


def _pca_all(pixels, n_components, seed):
    from sklearn.decomposition import PCA

    flat = pixels.reshape(len(pixels), -1)
    return PCA(n_components=n_components, svd_solver="randomized",
               random_state=seed).fit_transform(flat)


def embedding_figure(embeddings, labels, *, seed=0):
    """UMAP maps of each method's features, coloured by GZ1 class.

    Parameters
    ----------
    embeddings : dict of str -> `numpy.ndarray`
        ``(N, D)`` features per method.
    labels : `numpy.ndarray`
        ``(N,)`` classes (see `CLASS_NAMES`).
    seed : int, optional
        UMAP seed.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    import warnings

    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap/numba chatter
        import umap

    fig, axes = plt.subplots(1, len(embeddings), figsize=(4.2 * len(embeddings), 4.2))
    axes = np.atleast_1d(axes)
    colours = ("tab:red", "tab:blue", "tab:green")
    order = np.random.default_rng(seed).permutation(len(labels))
    for ax, (name, x) in zip(axes, embeddings.items(), strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xy = umap.UMAP(n_neighbors=30, min_dist=0.2, random_state=seed,
                           metric="cosine" if name != "pixel-pca" else "euclidean",
                           n_jobs=1).fit_transform(x)
        ax.scatter(xy[order, 0], xy[order, 1], s=3, lw=0, alpha=0.6,
                   c=np.asarray(colours)[labels[order]])
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    for c, name in zip(colours, CLASS_NAMES, strict=True):
        axes[0].scatter([], [], c=c, s=12, label=name)
    axes[0].legend(loc="best", fontsize=8, markerscale=1.5)
    fig.tight_layout()
    return fig


def accuracy_figure(scores, *, chance=1 / 3):
    """Bar chart of the kNN balanced accuracies with bootstrap 95 per cent intervals.

    Parameters
    ----------
    scores : dict
        Output of `bootstrap_balanced_accuracy`.
    chance : float, optional
        Balanced accuracy of a random guess (drawn as a line).

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    names = [n for n in ("simclr", "random-weights", "pixel-pca") if n in scores]
    acc = np.array([scores[n]["balanced_accuracy"] for n in names])
    ci = np.array([scores[n]["ci95"] for n in names])
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.bar(names, acc, yerr=[acc - ci[:, 0], ci[:, 1] - acc], capsize=5,
           color=["tab:purple", "tab:gray", "tab:orange"][:len(names)])
    ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    for i, a in enumerate(acc):
        ax.text(i, a + 0.02, f"{a:.3f}", ha="center", fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_ylabel("kNN balanced accuracy (3 classes)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def results_table(result):
    """Return the results as a reStructuredText table (included by the docs page).

    Parameters
    ----------
    result : dict
        Output of `run_experiment`.

    Returns
    -------
    text : str
    """
    s, folds = result["scores"], result["fold_scores"]
    other = [n for n in folds if n.startswith("simclr [")]
    extra = [n for n in folds if n.startswith("random-weights [")]
    rows = [("method", "balanced accuracy", "95% interval", "per fold")]
    sup = [n for n in ("supervised", "supervised [kNN]") if n in folds]
    for name in ("simclr", "random-weights", "pixel-pca", *other, *extra, *sup):
        lo, hi = s[name]["ci95"]
        rows.append((name, f"{s[name]['balanced_accuracy']:.3f} +- {s[name]['std']:.3f}",
                     f"{lo:.3f} - {hi:.3f}", ", ".join(f"{v:.3f}" for v in folds[name])))
    pairs = ["simclr - random-weights", "simclr - pixel-pca"]
    pairs += [f"{a} - {b}" for a, b in zip(other, extra, strict=True)]
    for pair in pairs:
        lo, hi = s[pair]["ci95"]
        rows.append((pair, f"{s[pair]['difference']:+.3f} +- {s[pair]['std']:.3f}",
                     f"{lo:+.3f} - {hi:+.3f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)).rstrip(),
             rule]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows[1:]]
    lines.append(rule)
    rt = result["runtime_s"]
    settings = result["settings"]
    note = (f"Readout ``{settings.get('readout', 'embedding')}`` for ``simclr`` and "
            f"``random-weights`` (the other readout in brackets). "
            f"Measured with ``{settings['epochs']}`` epochs at {settings['size']}x"
            f"{settings['size']} px, width {settings['width']}; training took "
            f"{rt['train']:.0f} s and the whole run "
            f"{rt.get('total', rt['evaluate']):.0f} s on {settings['threads']} CPU threads "
            f"(torch {result['environment']['torch']}).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def _save_figure(fig, path):
    import matplotlib.pyplot as plt

    from astro_cl.utils.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None):
    """Run the experiment and write the JSON and figures.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    result : dict
        As `run_experiment` (with the arrays).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(_repo_root().parent / "shared" / "data"),
                        help="shared data directory (default: ../shared/data)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "_static"))
    for key, value in DEFAULTS.items():
        if key == "projection_head":
            parser.add_argument("--projection-head", type=int, nargs="*", default=list(value))
        elif key == "crop_scale":
            parser.add_argument("--crop-scale", type=float, nargs=2, default=list(value))
        elif key == "aperture":
            parser.add_argument("--aperture", type=float, default=value)
        elif key == "jitter":
            parser.add_argument("--jitter", type=float, default=value)
        elif key == "colour_jitter":
            parser.add_argument("--colour-jitter", type=float, nargs=2, default=list(value),
                                metavar=("BRIGHTNESS", "COLOUR"))
        elif key == "readout":
            parser.add_argument("--readout", default=value, choices=list(_READOUTS))
        elif key == "negatives":
            parser.add_argument("--negatives", default=value, choices=["all", "cross"])
        elif key == "pooling":
            parser.add_argument("--pooling", default=value, choices=["max", "mean"])
        elif key != "backbone":
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--backbone", default=DEFAULTS["backbone"], choices=["conv", "resnet"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--save-embeddings", action="store_true",
                        help="also write the scored representations and the labels to "
                             "gz1_embeddings.npz in --out (for further analysis)")
    args = parser.parse_args(argv)
    kwargs = {k: getattr(args, k) for k in DEFAULTS}
    result = run_experiment(args.data, limit=args.limit, **kwargs)
    if args.save_embeddings:
        from astro_cl.utils.io import atomic_path

        with atomic_path(Path(args.out) / "gz1_embeddings.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, labels=result["labels"], **result["embeddings"])
    write_outputs(result, args.out, figures=not args.no_figures)
    return result


def write_outputs(result, out, *, figures=True):
    """Write the JSON record, the reST table and (optionally) the figures of a run.

    Parameters
    ----------
    result : dict
        Output of `run_experiment`.
    out : str or `~pathlib.Path`
        Output directory (created if needed); files are written atomically.
    figures : bool, optional
        Also draw ``gz1_accuracy.png`` and ``gz1_embeddings.png`` (UMAP, slow).
    """
    from astro_cl.utils.io import atomic_write

    out = Path(out)
    os.makedirs(out, exist_ok=True)
    record = {k: v for k, v in result.items() if k not in ("embeddings", "labels")}
    record["data"] = ("SDSS gri cutouts with Galaxy Zoo 1 classes (Lintott et al. 2008, 2011), "
                      "../shared/data/gz1")
    with atomic_write(out / "gz1_results.json") as fh:
        json.dump(record, fh, indent=1)
    with atomic_write(out / "gz1_results.rst") as fh:
        fh.write(results_table(result))
    if figures:
        _save_figure(accuracy_figure(result["scores"]), out / "gz1_accuracy.png")
        _save_figure(embedding_figure(result["embeddings"], result["labels"],
                                      seed=result["settings"]["seed"]),
                     out / "gz1_embeddings.png")
    s = result["scores"]
    for name in result["fold_scores"]:
        print(f"{name:26s} balanced accuracy {s[name]['balanced_accuracy']:.3f} "
              f"+- {s[name]['std']:.3f}  folds {np.round(result['fold_scores'][name], 3)}")
    print(f"runtime {result['runtime_s']}; results in {out}")


if __name__ == "__main__":
    main()
