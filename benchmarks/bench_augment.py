"""Benchmark: the eCALIFA augmentation chain, batched on tensors vs per sample with scipy.

The reference is the original approach: each 30x192x184 galaxy image is
augmented on its own with numpy/scipy.ndimage (multiplicative noise, block-sum
rebinning, cubic rotation (``ndimage.rotate(order=3, reshape=False)``) + flip,
translation, Gaussian blur ``sigma=(0, 1, 1)``, star masks), in float32 like
the torch side. The astro_cl chain (`astro_cl.augment.presets.ecalifa_views`
with every step applied) does the same on a whole (B, 30, 192, 184) tensor
batch, and carries the mask along as well (the scipy reference does not).
Where a galaxy is rebinned, astro_cl draws its noise on the rebinned blocks
rather than on the pixels: the same distribution from fewer random numbers
(see `astro_cl.augment.Compose`); the reference draws it per pixel, as the
original code did.

On a shared machine the figures depend on the load: the script prints the
load average with them.

Usage::

    python benchmarks/bench_augment.py [--batch 64] [--size 192 184] [--channels 30]
"""

import argparse
import os
import time

import numpy as np
import torch
from scipy import ndimage


def scipy_chain(cube, rng):
    """One galaxy through the study's chain with numpy/scipy.ndimage."""
    c, h, w = cube.shape
    sn = rng.integers(1, 11)
    # float32 throughout, like the torch chain
    cube = cube * (1 + rng.standard_normal(cube.shape, dtype=np.float32) / np.float32(sn))
    f = int(rng.integers(1, 6))
    if f > 1:
        hp, wp = -(-h // f) * f, -(-w // f) * f
        padded = np.zeros((c, hp, wp), cube.dtype)
        y0, x0 = (hp - h) // 2, (wp - w) // 2  # centred, as astro_cl's Rebin
        padded[:, y0:y0 + h, x0:x0 + w] = cube
        small = padded.reshape(c, hp // f, f, wp // f, f).sum(axis=(2, 4))
        cube = np.zeros_like(cube)
        y0, x0 = (h - small.shape[1]) // 2, (w - small.shape[2]) // 2
        cube[:, y0:y0 + small.shape[1], x0:x0 + small.shape[2]] = small
    cube = ndimage.rotate(cube, rng.uniform(1, 359), axes=(1, 2), reshape=False, order=3)
    cube = cube[:, ::-1] if rng.random() < 0.5 else cube[:, :, ::-1]
    dy, dx = rng.integers(-16, 17, 2)
    cube = ndimage.shift(cube, (0, dy, dx), order=0)
    cube = ndimage.gaussian_filter(cube, sigma=(0, 1, 1))
    yy, xx = np.mgrid[:h, :w]
    stars = np.zeros((h, w), bool)
    for _ in range(rng.integers(0, 4)):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 16)
        stars |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    cube[:, stars] = 0
    return cube


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 184))
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved (torch, scipy) pairs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from astro_cl.augment.presets import ecalifa_views
    from astro_cl.data.batch import TensorBatch
    from astro_cl.utils.memory import retain_freed_memory

    # what a chunked Compose run sets up anyway; process-wide, so the scipy
    # reference runs with the same allocator settings
    print(f"freed memory retained: {retain_freed_memory()}")

    rng = np.random.default_rng(0)
    h, w = args.size
    data = rng.lognormal(size=(args.batch, args.channels, h, w)).astype(np.float32)
    batch = TensorBatch.from_arrays(data, np.zeros((args.batch, 1, h, w), bool))
    chain = ecalifa_views(noise_p=1.0, blur_p=1.0, star_p=1.0, rebin_p=1.0)

    chain(batch, seed=0)  # warm-up
    # interleaved: a slow spell of this shared machine hits both sides alike
    t_torch, t_scipy = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        chain(batch, seed=r)
        t_torch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(args.batch):
            scipy_chain(data[i], rng)
        t_scipy.append(time.perf_counter() - t0)
    best_t, best_s = min(t_torch), min(t_scipy)
    ratios = np.array(t_scipy) / np.array(t_torch)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"input: {args.batch} x {args.channels} x {h} x {w} float32, "
          f"torch threads {torch.get_num_threads()}, load average {load}")
    for label, t in (("batched torch chain", best_t), ("per-sample scipy   ", best_s)):
        print(f"{label} : {t:8.3f} s per batch ({args.batch / t:7.1f} galaxies/s)")
    print("pairs (scipy / torch): " + ", ".join(f"{x:.1f}x" for x in ratios))
    print(f"speed-up, best times: {best_s / best_t:8.1f}x (target >= 10x)")
    print(f"speed-up, median pair: {np.median(ratios):7.1f}x")
    return best_s / best_t


if __name__ == "__main__":
    main()
