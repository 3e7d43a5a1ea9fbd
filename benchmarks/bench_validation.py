"""What the validation pass costs beside the training steps of an epoch: the demo's U-Net.

The demo's U-Net (`~astro_cl.models.regressor.CNNRegressor`, width 0.1875,
ugriz 64 x 64 px, six maps, batches of 16, the PICASSSO augmentations) is
trained on random images of the demo's size (the cost does not depend on the
content) with 10 % of the galaxies held out for validation. The trainer's
history times the training steps (``seconds``) and the validation pass
(``val_seconds``) of every epoch; this prints their ratio with validation
batches of 1x (before) and 4x (now) the training batch, interleaved, with CPU
time and the load average.

Usage::

    python benchmarks/bench_validation.py            # 800 galaxies, 2 epochs, 2 rounds
    python benchmarks/bench_validation.py --n 200 --rounds 1
"""

import argparse
import time

import numpy as np
import torch
from _clock import context_line

from astro_cl.augment.presets import picasso_augmentations
from astro_cl.data.batch import TensorBatch
from astro_cl.models.regressor import CNNRegressor
from astro_cl.training import trainer as trainer_module


def _data(n, size=64, maps=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 5, size, size)).astype(np.float32)
    targets = 10 ** rng.normal(7, 0.5, (n, maps, size, size)).astype(np.float32)
    return TensorBatch(data=torch.from_numpy(images),
                       mask=torch.zeros(n, 1, size, size, dtype=bool),
                       targets=torch.from_numpy(targets),
                       ids=[f"g{i}" for i in range(n)])


def _run(batch, factor, epochs):
    trainer_module.VALIDATION_BATCH_FACTOR = factor
    model = CNNRegressor(width=0.1875, augmenter=picasso_augmentations())
    started = time.process_time()
    model.fit(batch, trainer={"epochs": epochs, "batch_size": 16, "lr": 1e-3,
                              "validation_fraction": 0.1, "progress": False, "seed": 0})
    cpu = time.process_time() - started
    train = sum(h["seconds"] for h in model.history_)
    val = sum(h["val_seconds"] for h in model.history_)
    return train, val, cpu


def main(argv=None):
    """Run the comparison and print one line per run.

    Parameters
    ----------
    argv : list of str, optional
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    batch = _data(args.n)
    print(context_line())
    ratios = {1: [], 4: []}
    for _ in range(args.rounds):
        for factor in (1, 4):
            train, val, cpu = _run(batch, factor, args.epochs)
            ratios[factor].append(val / train)
            print(f"validation batch {factor}x16: training steps {train:6.1f} s, validation "
                  f"{val:5.2f} s ({100 * val / train:4.1f} % of the steps), process CPU "
                  f"{cpu:6.1f} s; {context_line()}")
    for factor, values in ratios.items():
        print(f"{factor}x: validation / training steps, median {100 * np.median(values):.1f} %")


if __name__ == "__main__":
    main()
