"""fp32 vs bf16 training: loss curves, held-out metrics and time, at two seeds.

``precision="auto"`` (`astro_cl.training.TrainerConfig`) trains in bfloat16
autocast on hardware with native bfloat16 (`astro_cl.training.precision`). This
script shows what that costs in accuracy and gains in time, on small versions
of the two studies' models trained on the same mock images:

* the U-Net (`~astro_cl.models.regressor.CNNRegressor`) from ugriz images to
  stellar-mass and SFR maps; metric: the scatter (RMS, dex) of the predicted
  log10 stellar-mass map over the populated pixels of held-out galaxies;
* SimCLR (`~astro_cl.models.simclr.SimCLR`) on the same images; metric: the
  5-fold cross-validated R^2 of a kNN regression of the catalogue's log
  stellar mass on the embedding.

Each model is trained at each seed in fp32 and in bf16 (same data, same
initial weights, same augmentations); the table gives the training and
validation losses per epoch side by side, the metric and the training time.
bf16 runs on any CPU (slowly where it is emulated); its speed only means
something where `astro_cl.training.precision.bf16_native` is true.

Usage::

    python benchmarks/bench_precision.py                 # 96 galaxies, 8 epochs, seeds 0 1
    python benchmarks/bench_precision.py --n 200 --epochs 15 --seeds 0 1 2
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _clock import context_line

TARGETS = ("stellar_mass", "sfr")


def _data(n, size, workdir):
    """The mock survey preprocessed once (asinh-scaled ugriz with truth maps), and a split."""
    from astro_cl.preprocess.cache import PreprocessedCache
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.studies.sources import SourceView
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    survey = SDSSMockSurvey(n=n, size=size, seed=0)
    scaler = ImageScaler().fit(survey)
    cutouts = PreprocessedCache(Path(workdir) / "cache").get_or_build(
        survey, preprocessor=scaler, targets=list(TARGETS), progress=False)
    order = np.random.default_rng(0).permutation(n)
    n_test = max(2, n // 5)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    mass = np.asarray(survey.catalogue["log_Mass"], dtype=float)
    return {"all": cutouts, "train": SourceView(cutouts, rows=train),
            "test": SourceView(cutouts, rows=test), "test_rows": test, "log_mass": mass}


def _unet(data, seed, precision, epochs):
    from astro_cl.augment import picasso_augmentations
    from astro_cl.models.regressor import CNNRegressor

    model = CNNRegressor(width=0.125, target_names=TARGETS, augmenter=picasso_augmentations())
    t0 = time.perf_counter()
    model.fit(data["train"], trainer={"epochs": epochs, "batch_size": 16, "lr": 1e-3,
                                      "schedule": "constant", "validation_fraction": 0.2,
                                      "seed": seed, "precision": precision, "progress": False})
    seconds = time.perf_counter() - t0
    # held-out scatter of log10 stellar mass over populated pixels (inference in the
    # same precision as training)
    predicted = model.transform(data["test"])[:, 0]
    truth = np.stack([m["stellar_mass"].data for m in
                      data["all"].target_maps(data["test_rows"])]).astype(float)
    good = truth > 0
    rms = float(np.sqrt(np.mean((predicted[good] - np.log10(truth[good])) ** 2)))
    return model.history_, {"held-out log M* RMS (dex)": rms}, seconds


def _simclr(data, seed, precision, epochs):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsRegressor

    from astro_cl.augment.config import build_augmenter
    from astro_cl.models.simclr import SimCLR

    views = build_augmenter([{"name": "random-rot90", "transpose": True},
                             {"name": "random-flip"},
                             {"name": "gaussian-blur", "p": 0.5, "sigma": 1.0},
                             {"name": "multiplicative-noise", "p": 0.5, "sn": [5, 20]}])
    model = SimCLR(width=0.25, hidden=(64,), embedding_dim=16, augmenter=views)
    t0 = time.perf_counter()
    model.fit(data["all"], trainer={"epochs": epochs, "batch_size": 32, "lr": 1e-3,
                                    "schedule": "constant", "patience": None, "seed": seed,
                                    "precision": precision, "progress": False})
    seconds = time.perf_counter() - t0
    emb = model.transform(data["all"])
    r2 = cross_val_score(KNeighborsRegressor(n_neighbors=10), emb, data["log_mass"], cv=5,
                         scoring="r2")
    return model.history_, {"kNN R^2 of log M*": float(np.mean(r2))}, seconds


def _fmt(value):
    return "   -  " if value is None else f"{value:6.4f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=96, help="mock galaxies")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", default=["unet", "simclr"],
                        choices=["unet", "simclr"])
    args = parser.parse_args(argv)

    import torch

    from astro_cl.training.precision import bf16_native, cpu_bf16_flags

    print(context_line())
    print(f"torch {torch.__version__}; native bf16 on the CPU: {bf16_native('cpu')} "
          f"(flags {', '.join(cpu_bf16_flags()) or 'none'}); torch threads "
          f"{torch.get_num_threads()}")
    runs = {"unet": _unet, "simclr": _simclr}
    with tempfile.TemporaryDirectory() as tmp:
        data = _data(args.n, args.size, tmp)
        for name in args.models:
            for seed in args.seeds:
                out = {p: runs[name](data, seed, p, args.epochs) for p in ("fp32", "bf16")}
                print(f"\n{name}, seed {seed}: {args.n} galaxies of {args.size} px, "
                      f"{args.epochs} epochs")
                print("epoch  train fp32  train bf16  rel diff   val fp32   val bf16")
                (h32, m32, t32), (h16, m16, t16) = out["fp32"], out["bf16"]
                worst = 0.0
                for r32, r16 in zip(h32, h16, strict=True):
                    rel = abs(r16["train_loss"] - r32["train_loss"]) / abs(r32["train_loss"])
                    worst = max(worst, rel)
                    print(f"{r32['epoch']:5d}      {_fmt(r32['train_loss'])}      "
                          f"{_fmt(r16['train_loss'])}   {rel:7.2%}     "
                          f"{_fmt(r32['val_loss'])}     {_fmt(r16['val_loss'])}")
                for key in m32:
                    print(f"{key}: fp32 {m32[key]:.4f}, bf16 {m16[key]:.4f}")
                print(f"largest relative train-loss difference {worst:.2%}; training "
                      f"{t32:.1f} s fp32, {t16:.1f} s bf16 ({t32 / t16:.2f}x)")
    print(f"\n{context_line()}")


if __name__ == "__main__":
    main()
