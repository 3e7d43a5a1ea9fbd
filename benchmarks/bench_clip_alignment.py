"""Cube <-> image alignment on paired mocks: retrieval and zero-shot R^2 vs an image-only SimCLR.

Renders one mock population as eCALIFA-like cubes and SDSS-like images
(`astro_cl.surveys.mock.paired_mocks`), holds out a quarter of the pairs,
trains `astro_cl.models.clip.CLIPEncoder` on the rest, trains an image-only
SimCLR on the same images with the same budget
(`astro_cl.tasks.alignment.fit_image_baseline`), and scores both on the
held-out pairs (`astro_cl.tasks.alignment.evaluate_alignment`).

Usage::

    python benchmarks/bench_clip_alignment.py --n 160 --out clip_alignment.json
"""

import argparse
import json
import os
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160, help="paired galaxies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cube-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    from astro_cl.augment.compose import Compose
    from astro_cl.augment.geometric import RandomFlip, RandomRot90, RandomTranslation
    from astro_cl.augment.photometric import GaussianBlur, MultiplicativeNoise
    from astro_cl.models.clip import CLIPEncoder
    from astro_cl.preprocess.cube_pca import CubePCA
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.surveys.mock import paired_mocks
    from astro_cl.tasks.alignment import evaluate_alignment, fit_image_baseline

    walls = {}
    t0 = time.perf_counter()
    paired = paired_mocks(n=args.n, seed=args.seed, cube_size=args.cube_size,
                          image_size=args.image_size)
    train, test = paired.train_test_split(args.test_size, seed=args.seed)
    trainer = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 1e-3,
               "schedule": "constant", "seed": args.seed, "progress": False}
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        clip = CLIPEncoder(width=args.width, hidden=(128,), embedding_dim=64, projection_dim=32,
                           augmenter=Compose(steps=[RandomFlip(), RandomRot90()]))
        # the preprocessing (mock rendering included) is timed with the fit
        clip.fit(train, image_preprocessor=ImageScaler(),
                 cube_preprocessor=CubePCA(fit_snr=10.0, standardize=True, seed=args.seed),
                 trainer=trainer, cache_dir=cache)
        walls["clip_fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        # SimCLR needs views that differ in more than orientation
        views = Compose(steps=[RandomFlip(), RandomRot90(), RandomTranslation(max_shift=3),
                               (GaussianBlur(sigma=(0.1, 1.0)), 0.5),
                               MultiplicativeNoise(sn=(5, 20))])
        baseline = fit_image_baseline(clip, train, augmenter=views)
        walls["simclr_fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        shared = evaluate_alignment(clip, test, baseline=baseline, seed=args.seed)
        tower = evaluate_alignment(clip, test, baseline=baseline, seed=args.seed,
                                   projected=False)
        walls["evaluate_s"] = time.perf_counter() - t
    walls["total_s"] = time.perf_counter() - t0
    # wall beside CPU time and load: a loaded machine shows wall >> CPU / cores
    walls["cpu_total_s"] = time.process_time()
    walls["load_average_1min"] = os.getloadavg()[0]
    print(f"{len(train)} training pairs, {len(test)} held out; logit scale "
          f"{clip.logit_scale():.1f}; last losses "
          f"{[round(r['train_loss'], 3) for r in clip.history_[-3:]]}")
    print("shared space (projected):\n" + shared.summary())
    print("tower embeddings (before the projection):\n" + tower.summary())
    print({k: round(v, 1) for k, v in walls.items()})
    if args.out:
        out = {"args": vars(args), "n_train": len(train), "n_test": len(test),
               "walls": walls, "logit_scale": clip.logit_scale(),
               "history": [dict(r) for r in clip.history_],
               "retrieval": [dict(zip(shared.retrieval.colnames, map(_plain, r), strict=True))
                             for r in shared.retrieval],
               "regression_shared": [dict(zip(shared.regression.colnames, map(_plain, r),
                                              strict=True)) for r in shared.regression],
               "regression_tower": [dict(zip(tower.regression.colnames, map(_plain, r),
                                             strict=True)) for r in tower.regression]}
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


if __name__ == "__main__":
    main()
