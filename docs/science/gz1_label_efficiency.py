"""Label efficiency of SimCLR on real SDSS galaxies (Galaxy Zoo 1).

How few labels does a morphology classifier need on top of a self-supervised
representation? For nested, stratified label fractions of the labelled
galaxies (`label_fraction_splits`, several seeds) and one fixed held-out test
set, this script compares

(a) a linear probe and a kNN on the frozen SimCLR representation (trained on
    every image without labels; one encoder per augmentation set),
(b) the same probes on the same encoder with random weights and on pixel PCA,
(c) the same encoder trained from scratch with the labels, and
(d) the SimCLR encoder fine-tuned with the labels,

on two tasks: three classes (elliptical, face-on spiral, edge-on) and five
(elliptical, clockwise spiral, anticlockwise spiral, edge-on, merger; Galaxy
Zoo 1's "don't know" left out). The score is the balanced accuracy on the test
set, averaged over seeds, with a galaxy-bootstrap standard deviation.

Run from the repository root (defaults below; a tiny run finishes in a minute)::

    python docs/science/gz1_label_efficiency.py --limit 1500 --epochs 10

It writes ``gz1_label_efficiency.json`` and ``gz1_label_efficiency.rst`` into
``docs/science/_static`` (see ``docs/science/real_images.rst``).

Data: SDSS imaging (public) with Galaxy Zoo 1 classifications (Lintott et al.
2008, 2011).
"""

import argparse
import copy
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

__all__ = [
    "AUGMENTATIONS",
    "FINETUNE_INITS",
    "LE_DEFAULTS",
    "TASKS",
    "build_views",
    "fit_encoder",
    "label_efficiency",
    "label_fraction_splits",
    "linear_probe_predict",
    "main",
    "physical_views",
    "probe_head",
    "results_table",
    "train_classifier",
    "write_outputs",
]


def _load_gz1_experiment():
    """Import the sibling experiment script (``docs/science`` is not a package)."""
    name = "gz1_experiment"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent
                                                  / "gz1_experiment.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gz1 = _load_gz1_experiment()

#: The two tasks: Galaxy Zoo 1 class (labels.csv) -> task class, and the class names.
TASKS = {
    "3-class": {"mapping": {0: 0, 1: 1, 2: 1, 3: 2},
                "names": ("elliptical", "face-on spiral", "edge-on")},
    "5-class": {"mapping": {0: 0, 1: 1, 2: 2, 3: 3, 5: 4},
                "names": ("elliptical", "clockwise spiral", "anticlockwise spiral", "edge-on",
                          "merger")},
}

#: Augmentation sets of the SimCLR views (``--augment``).
AUGMENTATIONS = ("jitter", "physical")

#: Heads the fine-tuned encoders start from (``--finetune-init``).
FINETUNE_INITS = ("random", "probe")

#: Default settings of the label-efficiency experiment.
LE_DEFAULTS = {
    "crop": 96,
    "size": 32,
    "width": 0.25,
    "embedding_dim": 64,
    "epochs": 60,             # SimCLR epochs (label-free)
    "sup_epochs": 20,         # supervised epochs, counted over the full labelled training set
    "batch_size": 256,
    "sup_batch_size": 64,
    "lr": 1e-3,
    "finetune_lr": 3e-4,
    "finetune_init": ("random",),  # the fine-tuned head: random, or the linear probe's (LP-FT)
    "k": 15,
    "fractions": (0.01, 0.03, 0.1, 0.3, 1.0),
    "seeds": 3,
    "test_fraction": 0.3,
    "augment": ("jitter",),
    "tasks": ("3-class", "5-class"),
    "n_boot": 1000,
    "seed": 42,
    "threads": 2,
}


def label_fraction_splits(labels, fractions, *, seed, test_fraction, test_seed=None):
    """Stratified, seeded, nested label fractions with one fixed held-out test set.

    The galaxies with ``labels >= 0`` are split per class into a test set
    (``round(test_fraction * n_class)`` galaxies, at least one) and a
    training pool. The training galaxies of fraction ``f`` are the first
    ``max(1, round(f * n_pool))`` of a seeded permutation of each class's pool,
    so the fractions are **nested**: each smaller fraction is a subset of every
    larger one (the usual design for label-efficiency curves), every class
    keeps at least one labelled galaxy, and all fractions share the test set.

    Parameters
    ----------
    labels : array-like of int
        ``(N,)`` classes ``0 .. C-1``; negative values are left out.
    fractions : sequence of float
        Label fractions in ``(0, 1]`` of each class's training pool.
    seed : int
        Seed of the permutation that picks the labelled galaxies.
    test_fraction : float
        Fraction of each class held out for testing, in ``(0, 1)``.
    test_seed : int, optional
        Seed of the test split (default ``seed``). Fix it and vary ``seed`` to
        draw new labelled subsets against the same test set.

    Returns
    -------
    splits : dict
        ``"test"``: sorted indices of the test galaxies; ``"train"``: dict of
        fraction -> sorted indices of its labelled galaxies (fractions sorted
        ascending).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If a fraction or ``test_fraction`` is out of range, or a class has too
        few galaxies to give both the test set and the smallest fraction at
        least one (the message names the class and its count).
    """
    from astro_cl.exceptions import ValidationError

    labels = np.asarray(labels).astype(int)
    fracs = sorted(float(f) for f in fractions)
    if not fracs or fracs[0] <= 0 or fracs[-1] > 1:
        msg = f"fractions: expected values in (0, 1], got {list(fractions)!r}"
        raise ValidationError(msg)
    if not 0 < float(test_fraction) < 1:
        msg = f"test_fraction: expected a value in (0, 1), got {test_fraction!r}"
        raise ValidationError(msg)
    test_rng = np.random.default_rng(seed if test_seed is None else test_seed)
    train_rng = np.random.default_rng([int(seed), 1])  # independent of the test draw
    test, train = [], {f: [] for f in fracs}
    for cls in np.unique(labels[labels >= 0]):
        members = test_rng.permutation(np.flatnonzero(labels == cls))
        n_test = max(1, round(float(test_fraction) * len(members)))
        pool = members[n_test:]
        if len(pool) == 0:
            msg = (f"labels: class {cls} has {len(members)} galaxies, too few for a test "
                   f"set (test_fraction={test_fraction}) and at least one labelled galaxy "
                   f"at fraction {fracs[0]}")
            raise ValidationError(msg)
        test.append(members[:n_test])
        pool = train_rng.permutation(pool)
        for f in fracs:
            train[f].append(pool[:max(1, round(f * len(pool)))])
    return {"test": np.sort(np.concatenate(test)),
            "train": {f: np.sort(np.concatenate(v)) for f, v in train.items()}}


def physical_views(size=32):
    """Return the physical augmentation chain (Hayat et al. 2021; Stein et al. 2021).

    Rotation by any angle with a flip and a mild zoom (as in `gz1_experiment.gz1_views`),
    then observational effects only: PSF degradation (``psf-degradation``, the
    binned image taken as having a 1 px FWHM, to a target of 1-2.5 px at
    32 px, scaled with ``size``), added Gaussian noise to a depth of 0-0.1 of
    the sample's per-channel standard deviation (``noise-to-depth``),
    surface-brightness dimming to z <= 0.15 (``sb-dimming``) and foreground
    reddening E(B-V) <= 0.1 with the SDSS coefficients (``reddening``). No
    colour jitter and no multiplicative noise.

    Parameters
    ----------
    size : int, optional
        Image side in pixels (scales the PSF).

    Returns
    -------
    chain : `~astro_cl.augment.compose.Compose`
    """
    from astro_cl.augment.config import build_augmenter

    scale = size / 32.0
    return build_augmenter([
        {"name": "random-rotation", "angle": [0.0, 360.0], "flip": True, "mode": "bilinear"},
        {"name": "crop-resize", "scale": [0.55, 1.0], "ratio": [0.8, 1.25]},
        {"name": "psf-degradation", "p": 0.8, "target_fwhm": [1.0 * scale, 2.5 * scale],
         "fwhm": 1.0 * scale},
        {"name": "noise-to-depth", "p": 0.8, "sigma": [0.0, 0.1]},
        {"name": "sb-dimming", "p": 0.8, "redshift": [0.0, 0.15]},
        {"name": "reddening", "p": 0.8, "ebv": [0.0, 0.1]},
    ])


def build_views(augment, size):
    """Return the SimCLR view chain for an augmentation set.

    Parameters
    ----------
    augment : {"jitter", "physical"}
        ``"jitter"``: the docs-page views (`gz1_experiment.gz1_views`, with
        colour jitter and multiplicative noise); ``"physical"``: `physical_views`.
    size : int
        Image side in pixels.

    Returns
    -------
    chain : `~astro_cl.augment.compose.Compose`
    """
    from astro_cl.exceptions import ValidationError

    if augment == "jitter":
        return gz1.gz1_views(size)
    if augment == "physical":
        return physical_views(size)
    msg = f"augment: expected one of {AUGMENTATIONS}, got {augment!r}"
    raise ValidationError(msg)


def fit_encoder(batch, *, augmenter, epochs, width, embedding_dim, batch_size, lr, seed,
                threads, progress=False):
    """Build the SimCLR encoder of the experiment and train it for ``epochs`` (0: random weights).

    The settings of the docs-page encoder; the model itself is built by
    `gz1_experiment.fit_simclr`, the one place that follows changes of the
    `~astro_cl.models.simclr.SimCLR` signature.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
    augmenter : `~astro_cl.augment.compose.Compose`
    epochs, width, embedding_dim, batch_size, lr, seed, threads
        Docs-page settings otherwise (conv backbone, mean pooling, 64-64
        projection head, temperature 0.2, all negatives, cosine decay to 5 per cent).
    progress : bool, optional

    Returns
    -------
    encoder : `~astro_cl.models.simclr.SimCLR`
        Fitted; ``epochs=0`` gives the seeded initial weights.
    """
    params = {"backbone": "conv", "width": float(width), "pooling": "mean",
              "embedding_dim": int(embedding_dim), "projection_head": (64, 64),
              "temperature": 0.2, "negatives": "all", "augmenter": augmenter,
              "batch_size": int(batch_size), "lr": float(lr), "patience": None,
              "schedule": {"name": "cosine", "epochs": max(int(epochs), 1), "min_factor": 0.05},
              "seed": int(seed), "num_threads": int(threads), "progress": progress,
              "device": "cpu"}
    return gz1.fit_simclr(batch, params, epochs)


def linear_probe_predict(train_x, train_y, test_x, *, seed=0):
    """Balanced logistic-regression probe on standardised features.

    Parameters
    ----------
    train_x, test_x : `numpy.ndarray`
        ``(n, d)`` features.
    train_y : `numpy.ndarray`
        ``(n,)`` classes.
    seed : int, optional

    Returns
    -------
    pred : `numpy.ndarray`
        ``(n_test,)`` predicted classes (a single class if only one is labelled).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_y)) < 2:
        return np.full(len(test_x), train_y[0])
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(class_weight="balanced", max_iter=2000,
                                             random_state=seed))
    return model.fit(train_x, train_y).predict(test_x)


def probe_head(trunk, batch, labels, train, *, n_classes, seed):
    """Return a linear head fitted as a probe on the trunk's frozen features (LP-FT).

    Linear probing, then fine-tuning (Kumar et al. 2022, ICLR) starts the
    fine-tuning from a head that already separates the classes, so that the
    first steps do not pull the pretrained features towards a random head:
    class-balanced logistic regression on the standardised features of the
    labelled galaxies (eval mode, no augmentation), folded back into one
    linear layer on the raw features.

    Parameters
    ----------
    trunk : `torch.nn.Module`
        Backbone with a ``features(data, mask)`` method.
    batch : `~astro_cl.data.batch.TensorBatch`
    labels : `numpy.ndarray`
        ``(N,)`` classes of ``batch``.
    train : `numpy.ndarray`
        Indices of the labelled galaxies.
    n_classes : int
    seed : int

    Returns
    -------
    weight, bias : `numpy.ndarray`
        ``(n_classes, n_features)`` and ``(n_classes,)``; a class without a
        labelled galaxy gets zero weights and a bias of -10.
    """
    import torch
    from sklearn.linear_model import LogisticRegression

    trunk.eval()
    with torch.no_grad():
        feats = np.concatenate([trunk.features(part.data, part.mask).float().numpy()
                                for part in (batch.index(train[s:s + 512])
                                             for s in range(0, len(train), 512))])
    mu, sd = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    y = labels[train]
    weight = np.zeros((n_classes, feats.shape[1]), np.float32)
    bias = np.full(n_classes, -10.0, np.float32)
    classes = np.unique(y)
    if len(classes) < 2:
        bias[classes] = 0.0
        return weight, bias
    probe = LogisticRegression(class_weight="balanced", max_iter=2000,
                               random_state=seed).fit((feats - mu) / sd, y)
    coef = probe.coef_ if len(classes) > 2 else np.r_[-probe.coef_, probe.coef_] / 2
    icpt = probe.intercept_ if len(classes) > 2 else np.r_[-probe.intercept_,
                                                            probe.intercept_] / 2
    weight[probe.classes_] = coef / sd
    bias[probe.classes_] = icpt - (coef * mu / sd).sum(axis=1)
    return weight, bias


def train_classifier(trunk, batch, labels, train, test, *, n_classes, augmenter, steps,
                     batch_size, lr, seed, head_init=None):
    """Train a trunk and a linear head on the labelled galaxies; predict the test galaxies.

    Class-weighted cross-entropy (each class weighs as much as the others),
    Adam with a cosine decay to zero, batches drawn with replacement from the
    labelled galaxies, augmented with ``augmenter``.

    Parameters
    ----------
    trunk : `torch.nn.Module`
        Backbone with a ``features(data, mask)`` method; trained in place.
    batch : `~astro_cl.data.batch.TensorBatch`
    labels : `numpy.ndarray`
        ``(N,)`` classes of ``batch``.
    train, test : `numpy.ndarray`
        Indices into ``batch``.
    n_classes : int
    augmenter : `~astro_cl.augment.compose.Compose`
    steps : int
        Optimisation steps (the same at every label fraction).
    batch_size : int
    lr : float
    seed : int
    head_init : (`numpy.ndarray`, `numpy.ndarray`), optional
        Initial weight and bias of the head (`probe_head`); default: random.

    Returns
    -------
    pred : `numpy.ndarray`
        ``(len(test),)`` predicted classes.
    """
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        probe = batch.index(slice(0, 1))
        n_features = trunk.eval().features(probe.data, probe.mask).shape[1]
    with torch.random.fork_rng():  # seeds the head without touching the global generator
        torch.manual_seed(seed)
        head = torch.nn.Linear(n_features, n_classes)
    if head_init is not None:
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(head_init[0]))
            head.bias.copy_(torch.as_tensor(head_init[1]))
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=float(lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(int(steps), 1))
    counts = np.bincount(labels[train], minlength=n_classes)
    weight = torch.as_tensor(len(train) / (n_classes * np.maximum(counts, 1)),
                             dtype=torch.float32)
    target = torch.as_tensor(labels, dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    trunk.train()
    for _ in range(int(steps)):
        rows = train[torch.randint(len(train), (min(int(batch_size), max(len(train), 2)),),
                                   generator=gen).numpy()]
        view = augmenter(batch.index(rows), generator=gen)
        loss = F.cross_entropy(head(trunk.features(view.data, view.mask)), target[rows],
                               weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    trunk.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(test), 512):
            part = batch.index(test[s:s + 512])
            out.append(head(trunk.features(part.data, part.mask)).argmax(1).numpy())
    return np.concatenate(out)


def _network_input(images, ids, aperture=0.7):
    """Rescale, mask and wrap the images as in `gz1_experiment.evaluate_sample`."""
    from astro_cl.data.batch import TensorBatch

    size = images.shape[-1]
    net_in = images / images.std(axis=(0, 2, 3), keepdims=True)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    mask = np.zeros((len(images), 1, size, size), bool)
    mask[:] = np.hypot(yy, xx) > aperture * size / 2
    net_in = np.where(mask, 0.0, net_in).astype(np.float32)
    pixels = np.where(mask, 0.0, images).astype(np.float32)
    batch = TensorBatch.from_arrays(net_in, mask=mask, ids=list(ids),
                                    meta={"survey": "image-folder", "bands": ["i", "r", "g"]})
    return batch, pixels


def _bootstrap(y, pred, *, n_boot, seed):
    """Balanced accuracy and its standard deviation over galaxy bootstrap resamples.

    As `gz1_experiment.bootstrap_balanced_accuracy` (a class absent from a
    resample is left out of its mean recall), vectorised over the resamples.
    """
    classes = np.unique(y)
    recall = [np.mean(pred[y == c] == c) for c in classes]
    draws = np.random.default_rng(seed).integers(0, len(y), size=(int(n_boot), len(y)))
    yd, hit = y[draws], pred[draws] == y[draws]
    rec = np.full((int(n_boot), len(classes)), np.nan)
    for j, c in enumerate(classes):
        n = (yd == c).sum(1)
        ok = n > 0
        rec[ok, j] = ((yd == c) & hit).sum(1)[ok] / n[ok]
    boot = np.nanmean(rec, axis=1)
    return float(np.mean(recall)), float(boot.std(ddof=1))


def _handedness(y, pred):
    """Fraction of the true spirals predicted as spirals that get the sense of rotation right."""
    spiral = np.isin(y, (1, 2)) & np.isin(pred, (1, 2))
    return float(np.mean(y[spiral] == pred[spiral])) if spiral.any() else float("nan")


def label_efficiency(images, gz_classes, ids, *, size=None, width=LE_DEFAULTS["width"],
                     embedding_dim=LE_DEFAULTS["embedding_dim"], epochs=LE_DEFAULTS["epochs"],
                     sup_epochs=LE_DEFAULTS["sup_epochs"], batch_size=LE_DEFAULTS["batch_size"],
                     sup_batch_size=LE_DEFAULTS["sup_batch_size"], lr=LE_DEFAULTS["lr"],
                     finetune_lr=LE_DEFAULTS["finetune_lr"],
                     finetune_init=LE_DEFAULTS["finetune_init"], k=LE_DEFAULTS["k"],
                     fractions=LE_DEFAULTS["fractions"], seeds=LE_DEFAULTS["seeds"],
                     test_fraction=LE_DEFAULTS["test_fraction"], augment=LE_DEFAULTS["augment"],
                     tasks=LE_DEFAULTS["tasks"], n_boot=LE_DEFAULTS["n_boot"],
                     seed=LE_DEFAULTS["seed"], threads=LE_DEFAULTS["threads"], progress=True):
    """Run the label-efficiency comparison on loaded images.

    Parameters
    ----------
    images : `numpy.ndarray`
        ``(N, 3, H, W)`` images (see `gz1_experiment.load_gz1`); all are used
        for the label-free SimCLR training.
    gz_classes : `numpy.ndarray`
        ``(N,)`` Galaxy Zoo 1 classes 0-5 (mapped per task with `TASKS`).
    ids : `numpy.ndarray`
        Galaxy ids.
    size : int, optional
        Ignored (read from ``images``); kept for the settings record.
    width, embedding_dim, epochs, batch_size, lr
        SimCLR settings (see `fit_encoder`).
    sup_epochs : int, optional
        Length of the supervised trainings (scratch and fine-tune) in epochs
        over the *full* labelled training pool: every fraction gets the same
        number of steps, ``sup_epochs * ceil(n_pool / sup_batch_size)``.
    sup_batch_size : int, optional
    finetune_lr : float, optional
        Learning rate of the fine-tuning (scratch uses ``lr``).
    finetune_init : sequence of {"random", "probe"}, optional
        Heads of the fine-tuned encoders: ``random`` (arm ``finetune-<augment>``)
        and/or the linear probe's (`probe_head`, linear probing then
        fine-tuning; arm ``lpft-<augment>``).
    k : int, optional
        kNN neighbours (at most the number of labelled galaxies).
    fractions : sequence of float, optional
    seeds : int, optional
        Labelled subsets per fraction (seeds ``seed + 1 .. seed + seeds``);
        the test set is drawn with ``seed`` and shared by all of them.
    test_fraction : float, optional
    augment : sequence of {"jitter", "physical"}, optional
        One SimCLR encoder per augmentation set (an ablation); the scratch
        encoder is trained with the views of the first.
    tasks : sequence of str, optional
        Keys of `TASKS`.
    n_boot : int, optional
        Bootstrap resamples of the test galaxies.
    seed : int, optional
    threads : int, optional
    progress : bool, optional

    Returns
    -------
    result : dict
        ``rows`` (one per task, method, fraction: mean balanced accuracy over
        seeds, mean bootstrap std, seed std, per-seed values and, for the
        5-class task, the handedness accuracy), ``n_galaxies``, ``settings``,
        ``runtime_s``, ``environment``.
    """
    import torch
    from sklearn.decomposition import PCA

    t0 = time.perf_counter()
    torch.set_num_threads(int(threads))
    augment = tuple(augment)
    for a in augment:
        build_views(a, images.shape[-1])  # validates the name early
    batch, pixels = _network_input(images, ids)
    size = images.shape[-1]
    common = {"width": width, "embedding_dim": embedding_dim, "batch_size": batch_size,
              "lr": lr, "seed": seed, "threads": threads}
    views = {a: build_views(a, size) for a in augment}
    timing = {}
    encoders = {}
    for a in augment:
        t = time.perf_counter()
        encoders[f"simclr-{a}"] = fit_encoder(batch, augmenter=views[a], epochs=epochs,
                                              progress=progress, **common)
        timing[f"simclr-{a}"] = round(time.perf_counter() - t, 1)
    encoders["random-weights"] = fit_encoder(batch, augmenter=views[augment[0]], epochs=0,
                                             **common)
    frozen = {name: gz1._trunk_features(enc, batch) for name, enc in encoders.items()}
    frozen["pixel-pca"] = PCA(n_components=int(embedding_dim), svd_solver="randomized",
                              random_state=seed).fit_transform(pixels.reshape(len(pixels), -1))
    rows, n_gal = [], {}
    t_sup = 0.0
    for task in tasks:
        mapping, names = TASKS[task]["mapping"], TASKS[task]["names"]
        task_y = np.array([mapping.get(int(c), -1) for c in gz_classes])
        n_gal[task] = {n: int((task_y == i).sum()) for i, n in enumerate(names)}
        preds = {}   # method -> fraction -> list of test predictions per seed
        test = None
        for s in range(1, int(seeds) + 1):
            splits = label_fraction_splits(task_y, fractions, seed=seed + s,
                                           test_fraction=test_fraction, test_seed=seed)
            test = splits["test"]
            n_pool = len(np.flatnonzero(task_y >= 0)) - len(test)
            steps = int(sup_epochs) * -(-n_pool // int(sup_batch_size))
            for f, train in splits["train"].items():
                def put(method, p, f=f, preds=preds):
                    preds.setdefault(method, {}).setdefault(f, []).append(p)

                for name, x in frozen.items():
                    put(f"{name} linear", linear_probe_predict(x[train], task_y[train],
                                                               x[test], seed=seed + s))
                    put(f"{name} kNN", gz1.knn_predict(x[train], task_y[train], x[test],
                                                       k=min(int(k), len(train)),
                                                       n_classes=len(names)))
                t = time.perf_counter()
                sup = {"scratch": (encoders["random-weights"], views[augment[0]], lr, False)}
                for init in finetune_init:
                    arm = "finetune" if init == "random" else "lpft"
                    sup.update({f"{arm}-{a}": (encoders[f"simclr-{a}"], views[a], finetune_lr,
                                               init == "probe") for a in augment})
                for method, (enc, aug, rate, from_probe) in sup.items():
                    if int(sup_epochs) <= 0:
                        continue
                    trunk = copy.deepcopy(enc.module_.backbone)
                    head = (probe_head(trunk, batch, task_y, train, n_classes=len(names),
                                       seed=seed + s) if from_probe else None)
                    put(method, train_classifier(trunk, batch, task_y, train, test,
                                                 n_classes=len(names), augmenter=aug,
                                                 steps=steps, batch_size=sup_batch_size,
                                                 lr=rate, seed=seed + s, head_init=head))
                t_sup += time.perf_counter() - t
                if progress:
                    print(f"{task} seed {s} fraction {f}: {len(train)} labelled, "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
        y_test = task_y[test]
        for method, per_f in preds.items():
            for f, plist in per_f.items():
                acc, std = zip(*(_bootstrap(y_test, p, n_boot=n_boot, seed=seed)
                                 for p in plist), strict=True)
                row = {"task": task, "method": method, "fraction": f,
                       "n_labelled": len(splits["train"][f]),
                       "balanced_accuracy": float(np.mean(acc)),
                       "bootstrap_std": float(np.mean(std)),
                       "seed_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                       "per_seed": list(acc)}
                if task == "5-class":
                    hand = [h for h in (_handedness(y_test, p) for p in plist) if h == h]
                    row["handedness"] = float(np.mean(hand)) if hand else float("nan")
                rows.append(row)
        n_gal[task]["test"] = len(test)
    settings = {"size": int(size), "width": float(width), "embedding_dim": int(embedding_dim),
                "epochs": int(epochs), "sup_epochs": int(sup_epochs),
                "batch_size": int(batch_size), "sup_batch_size": int(sup_batch_size),
                "lr": float(lr), "finetune_lr": float(finetune_lr),
                "finetune_init": list(finetune_init), "k": int(k),
                "fractions": sorted(float(f) for f in fractions), "seeds": int(seeds),
                "test_fraction": float(test_fraction), "augment": list(augment),
                "tasks": list(tasks), "n_boot": int(n_boot), "seed": int(seed),
                "threads": int(threads), "n_images": len(images),
                "splits": "stratified, nested (each fraction a subset of the larger ones), "
                          "one test set for all fractions and seeds"}
    timing.update({"supervised": round(t_sup, 1), "total": round(time.perf_counter() - t0, 1)})
    return {"rows": rows, "n_galaxies": n_gal, "settings": settings, "runtime_s": timing,
            "environment": {"torch": torch.__version__, "python": platform.python_version()}}


def results_table(result):
    """Return the results as reStructuredText tables, one per task.

    Parameters
    ----------
    result : dict
        Output of `label_efficiency`.

    Returns
    -------
    text : str
    """
    out = []
    fracs = result["settings"]["fractions"]
    for task in result["settings"]["tasks"]:
        rows = [r for r in result["rows"] if r["task"] == task]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        cells = {(r["method"], r["fraction"]): r for r in rows}
        n_lab = {r["fraction"]: r["n_labelled"] for r in rows}
        head = ["method"] + [f"{f:g} ({n_lab.get(f, '?')})" for f in fracs]
        table = [head]
        for m in methods:
            line = [m]
            for f in fracs:
                r = cells.get((m, f))
                text = ("" if r is None else
                        f"{r['balanced_accuracy']:.3f} +- {r['bootstrap_std']:.3f}")
                if r is not None and "handedness" in r:
                    text += f" [h {r['handedness']:.2f}]"
                line.append(text)
            table.append(line)
        widths = [max(len(t[i]) for t in table) for i in range(len(head))]
        rule = "  ".join("=" * w for w in widths)
        out += [f"**{task}** (test set: {result['n_galaxies'][task]['test']} galaxies; "
                "columns: label fraction (labelled galaxies))", "", rule,
                "  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip(), rule]
        out += ["  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip()
                for t in table[1:]]
        out += [rule, ""]
    s, rt = result["settings"], result["runtime_s"]
    out.append(f"Balanced accuracy on the test set, mean over {s['seeds']} labelled subsets, "
               f"+- the bootstrap standard deviation; [h]: fraction of the spirals predicted "
               f"as spirals whose handedness is right (chance 0.5). {s['n_images']} images at "
               f"{s['size']}x{s['size']} px, SimCLR {s['epochs']} epochs "
               f"(augment {', '.join(s['augment'])}), supervised {s['sup_epochs']} epochs; "
               f"whole run {rt['total']:.0f} s on {s['threads']} CPU threads.")
    return "\n".join(out) + "\n"


def main(argv=None):
    """Run the label-efficiency experiment from the command line and write its outputs.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    result : dict
        As `label_efficiency`.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(gz1._repo_root().parent / "shared" / "data"),
                        help="shared data directory (default: ../shared/data)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "_static"))
    parser.add_argument("--limit", type=int, default=None,
                        help="seeded, class-stratified subset of this many images")
    parser.add_argument("--fractions", type=float, nargs="+",
                        default=list(LE_DEFAULTS["fractions"]))
    parser.add_argument("--augment", nargs="+", choices=AUGMENTATIONS,
                        default=list(LE_DEFAULTS["augment"]))
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS),
                        default=list(LE_DEFAULTS["tasks"]))
    parser.add_argument("--finetune-init", nargs="+", choices=FINETUNE_INITS,
                        default=list(LE_DEFAULTS["finetune_init"]),
                        help="heads of the fine-tuned encoders: random (finetune-*) and/or "
                             "the linear probe's (lpft-*)")
    for key in ("crop", "size", "width", "embedding_dim", "epochs", "sup_epochs",
                "batch_size", "sup_batch_size", "lr", "finetune_lr", "k", "seeds",
                "test_fraction", "n_boot", "seed", "threads"):
        value = LE_DEFAULTS[key]
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    images, _, ids = gz1.load_gz1(args.data, crop=args.crop, size=args.size, limit=args.limit,
                                  seed=args.seed, progress=not args.quiet)
    gz_classes = _gz_classes(args.data, ids)
    t_read = time.perf_counter() - t0
    kwargs = {k: getattr(args, k) for k in LE_DEFAULTS if k not in ("crop", "size")}
    result = label_efficiency(images, gz_classes, ids, progress=not args.quiet, **kwargs)
    result["runtime_s"]["read"] = round(t_read, 1)
    result["settings"].update({"crop": args.crop, "limit": args.limit})
    write_outputs(result, args.out)
    return result


def _gz_classes(data_dir, ids):
    """Galaxy Zoo 1 classes (0-5) of the given objids, from the ``image-folder`` catalogue."""
    from astro_cl.surveys.image_folder import ImageFolderSurvey

    survey = ImageFolderSurvey(path=Path(data_dir) / "gz1", require_labels=True)
    table = dict(zip(np.asarray(survey.ids).astype(str),
                     np.asarray(survey.catalogue["class"]).astype(int), strict=True))
    return np.array([table[str(i)] for i in ids])


def write_outputs(result, out):
    """Write ``gz1_label_efficiency.json`` and ``.rst`` atomically into ``out``.

    Parameters
    ----------
    result : dict
        Output of `label_efficiency`.
    out : str or `~pathlib.Path`
    """
    from astro_cl.utils.io import atomic_write

    out = Path(out)
    os.makedirs(out, exist_ok=True)
    record = {**result, "rows": [{**r, "fraction": float(r["fraction"])} for r in result["rows"]],
              "data": "SDSS gri cutouts with Galaxy Zoo 1 classes (Lintott et al. 2008, 2011)"}
    with atomic_write(out / "gz1_label_efficiency.json") as fh:
        json.dump(record, fh, indent=1)
    text = results_table(result)
    with atomic_write(out / "gz1_label_efficiency.rst") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
