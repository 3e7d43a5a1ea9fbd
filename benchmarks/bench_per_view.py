"""Benchmark: per-view preprocessing (`astro_cl.augment.PreprocessedViews`) on mock cubes.

With ``[[augment.cube_steps]]`` every view of every training step is made from
the raw cube: cube-space steps (here ``velocity-shift``), then the fitted
`~astro_cl.preprocess.CubePCA` (29 components, 30 channels), then the
image-space steps (here the eCALIFA chain without its star masks). The usual
path reads the preprocessed image from the cache and runs the image steps only.
The script times, per view (galaxy), on one torch / BLAS thread by default:

* the velocity shift of the raw 1877 x S x S cube;
* ``CubePCA.transform_batch`` (the preprocessing of one view);
* the whole `PreprocessedViews` call (cube steps, preprocessing, image steps);
* the image steps alone on preprocessed images (what the cached path costs).

On a shared machine the figures depend on the load: the script prints the
load average with them.

Usage::

    python benchmarks/bench_per_view.py [--galaxies 8] [--size 48] [--threads 1] [--repeats 3]
"""

import argparse
import os
import time


def best_of(func, repeats):
    """Smallest wall time of ``repeats`` calls of ``func``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--galaxies", type=int, default=8)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from astro_cl.augment import PreprocessedViews, build_augmenter
    from astro_cl.preprocess import CubePCA
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    torch.set_num_threads(args.threads)
    survey = ECALIFAMockSurvey(n=args.galaxies, size=args.size, seed=0)
    records = list(survey)
    pca = CubePCA(fit_snr=5.0, standardize=True, seed=0).fit(records)
    cubes = survey.to_tensors()
    n = len(cubes)
    cube_steps = build_augmenter([{"name": "velocity-shift", "velocity": [-100, 100]}])
    image_steps = build_augmenter([
        {"name": "multiplicative-noise", "p": 0.5, "sn": [1, 10]},
        {"name": "rebin", "p": 0.5, "factor": [1, 5]},
        {"name": "random-rotation", "angle": [1, 359], "flip": True, "mode": "bicubic"},
        {"name": "random-translation", "max_shift": 16},
        {"name": "gaussian-blur", "p": 0.5, "sigma": 1.0},
    ])
    views = PreprocessedViews(preprocessor=pca, cube_augmenter=cube_steps,
                              image_augmenter=image_steps, workers=args.workers)
    images = pca.transform_batch(cubes)
    rows = {
        "velocity-shift (cube)": best_of(lambda: cube_steps(cubes, seed=0), args.repeats),
        "CubePCA.transform_batch": best_of(lambda: pca.transform_batch(cubes), args.repeats),
        "PreprocessedViews (all)": best_of(lambda: views(cubes, seed=0), args.repeats),
        "image steps only (cached path)": best_of(lambda: image_steps(images, seed=0),
                                                  args.repeats),
    }
    print(f"{n} galaxies, cubes {tuple(cubes.data.shape[1:])} -> images "
          f"{tuple(images.data.shape[1:])}; torch threads {args.threads}, "
          f"preprocessing workers {args.workers}; load average {os.getloadavg()[0]:.2f}")
    for name, seconds in rows.items():
        print(f"  {name:32s} {1e3 * seconds / n:8.1f} ms per view")


if __name__ == "__main__":
    main()
