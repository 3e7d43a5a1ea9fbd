"""Benchmark: the eCALIFA augmentation chain, batched, vs per-sample scipy and vs Kornia.

Two shapes:

* the study shape, 64 x 30 x 192 x 184 (eCALIFA cubes reduced to 30 PCA
  channels): astro_cl vs the per-sample numpy/scipy chain (target >= 10x) and
  vs Kornia (target >= 1.5x);
* small images, 256 x 3 x 64 x 64: astro_cl vs Kornia (target >= 1.0x).

The scipy reference is the original approach: each galaxy augmented on its
own with numpy/scipy.ndimage (multiplicative noise, block-sum rebinning,
cubic rotation (``ndimage.rotate(order=3, reshape=False)``) + flip,
translation, Gaussian blur ``sigma=(0, 1, 1)``, star masks), in float32 like
the torch side. The astro_cl chain (`astro_cl.augment.presets.ecalifa_views`
with every step applied) does the same on a whole tensor batch, and carries
the mask along as well (neither peer does). Where a galaxy is rebinned,
astro_cl draws its noise on the rebinned blocks rather than on the pixels:
the same distribution from fewer random numbers (see
`astro_cl.augment.Compose`); the reference draws it per pixel, as the
original code did.

Kornia's closest chain (optional: ``pip install kornia``, or the ``bench``
extra; skipped with a message when absent) is ``RandomRotation`` (bicubic)
with random horizontal/vertical flips, ``RandomAffine`` translation (nearest,
up to 16 px), ``RandomGaussianBlur`` (sigma 1, 9 x 9 like astro_cl's 4-sigma
radius) and ``RandomErasing`` (one rectangle of a star mask's area, for the
circular masks Kornia does not have); Kornia has no multiplicative noise or
block-sum rebinning, so the Kornia chain does these two in plain batched
torch, as a Kornia user would.

The sides alternate within each repeat, so that a slow spell of this shared
machine hits them alike; the script prints wall and CPU time (this process,
all threads) and the load average. Finally it profiles the astro_cl chain on
the small images: each step alone, and the torch operators taking the time.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_augment.py [--shapes study small]
        [--repeats 3] [--threads N] [--no-scipy] [--no-profile]
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

SHAPES = {"study": (64, 30, 192, 184), "small": (256, 3, 64, 64)}
#: (scipy, Kornia) speed-up targets per shape; None: not measured
TARGETS = {"study": (10.0, 1.5), "small": (None, 1.0)}
MAX_SHIFT = 16


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
    dy, dx = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, 2)
    cube = ndimage.shift(cube, (0, dy, dx), order=0)
    cube = ndimage.gaussian_filter(cube, sigma=(0, 1, 1))
    yy, xx = np.mgrid[:h, :w]
    stars = np.zeros((h, w), bool)
    for _ in range(rng.integers(0, 4)):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 16)
        stars |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    cube[:, stars] = 0
    return cube


def _torch_noise_rebin(x, generator):
    """Multiplicative noise then block-sum rebinning by 1-5, batched (what Kornia lacks)."""
    b, _, h, w = x.shape
    sn = torch.randint(1, 11, (b, 1, 1, 1), generator=generator).to(x.dtype)
    x = x * (1 + torch.randn(x.shape, generator=generator, dtype=x.dtype) / sn)
    factors = torch.randint(1, 6, (b,), generator=generator)
    out = x.clone()
    for f in factors.unique().tolist():
        if f == 1:
            continue
        sel = (factors == f).nonzero().squeeze(1)
        hp, wp = -(-h // f) * f, -(-w // f) * f
        y0, x0 = (hp - h) // 2, (wp - w) // 2
        padded = F.pad(x[sel], (x0, wp - w - x0, y0, hp - h - y0))
        small = F.avg_pool2d(padded, f) * (f * f)
        placed = torch.zeros_like(x[sel])
        y1, x1 = (h - small.shape[2]) // 2, (w - small.shape[3]) // 2
        placed[:, :, y1:y1 + small.shape[2], x1:x1 + small.shape[3]] = small
        out[sel] = placed
    return out


def kornia_chain(h, w):
    """Return Kornia's closest chain as a callable on a (B, C, H, W) tensor, or None."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    star_area = (np.pi * 2.0**2 / (h * w), np.pi * 16.0**2 / (h * w))
    geometric = K.AugmentationSequential(
        K.RandomRotation(degrees=(1.0, 359.0), resample="bicubic", p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomVerticalFlip(p=0.5),
        K.RandomAffine(degrees=0.0, translate=(MAX_SHIFT / w, MAX_SHIFT / h),
                       resample="nearest", p=1.0),
        K.RandomGaussianBlur(kernel_size=(9, 9), sigma=(1.0, 1.0), p=1.0),
        K.RandomErasing(scale=(max(star_area[0], 1e-4), min(star_area[1], 0.3)),
                        ratio=(1.0, 1.0), value=0.0, p=1.0),
    )

    def run(x, seed):
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # Kornia draws from the global generator
        return geometric(_torch_noise_rebin(x, generator))

    return run


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _load():
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def compare(shape_name, *, repeats, scipy):
    """Time astro_cl, Kornia and (optionally) scipy on one shape, interleaved."""
    from astro_cl.augment.presets import ecalifa_views
    from astro_cl.data.batch import TensorBatch

    b, c, h, w = SHAPES[shape_name]
    rng = np.random.default_rng(0)
    data = rng.lognormal(size=(b, c, h, w)).astype(np.float32)
    batch = TensorBatch.from_arrays(data, np.zeros((b, 1, h, w), bool))
    chain = ecalifa_views(noise_p=1.0, blur_p=1.0, star_p=1.0, rebin_p=1.0, max_shift=MAX_SHIFT)
    kornia = kornia_chain(h, w)
    x = torch.from_numpy(data)
    sides = {"astro_cl": lambda r: chain(batch, seed=r)}
    if kornia is not None:
        sides["kornia"] = lambda r: kornia(x, r)
    if scipy:
        sides["scipy"] = lambda r: [scipy_chain(data[i], np.random.default_rng([r, i]))
                                    for i in range(b)]
    for name, fn in sides.items():  # warm-up (not scipy: nothing to warm, and slow)
        if name != "scipy":
            fn(10_000)
    times = {name: [] for name in sides}
    for r in range(repeats):
        for name, fn in sides.items():
            times[name].append(_timed(lambda fn=fn, r=r: fn(r)))
    print(f"\n{shape_name}: {b} x {c} x {h} x {w} float32, torch threads "
          f"{torch.get_num_threads()}, load average {_load()}")
    if kornia is None:
        print("  Kornia is not installed (pip install kornia, or the 'bench' extra): "
              "no Kornia comparison")
    for name, runs in times.items():
        walls = [t for t, _ in runs]
        print(f"  {name:9s}: wall best {min(walls):8.3f} s, "
              f"median {statistics.median(walls):8.3f} s ({b / min(walls):8.1f} galaxies/s); "
              f"CPU median {statistics.median(cpu for _, cpu in runs):8.3f} s")
    for peer, target in zip(("scipy", "kornia"), TARGETS[shape_name], strict=True):
        if peer not in times or target is None:
            continue
        pairs = [p[0] / a[0] for p, a in zip(times[peer], times["astro_cl"], strict=True)]
        best = min(t for t, _ in times[peer]) / min(t for t, _ in times["astro_cl"])
        cpu = (statistics.median(c for _, c in times[peer])
               / statistics.median(c for _, c in times["astro_cl"]))
        print(f"  speed-up vs {peer}: pairs " + ", ".join(f"{p:.2f}x" for p in pairs)
              + f"; best times {best:.2f}x, median pair {statistics.median(pairs):.2f}x, "
              f"CPU medians {cpu:.2f}x (target >= {target}x)")
    return times


def profile_small(repeats=3):
    """Where the astro_cl chain spends its time on small images: steps alone, torch operators."""
    from torch.profiler import ProfilerActivity, profile

    from astro_cl.augment.compose import Compose
    from astro_cl.augment.presets import ecalifa_views
    from astro_cl.data.batch import TensorBatch

    b, c, h, w = SHAPES["small"]
    data = np.random.default_rng(0).lognormal(size=(b, c, h, w)).astype(np.float32)
    batch = TensorBatch.from_arrays(data, np.zeros((b, 1, h, w), bool))
    chain = ecalifa_views(noise_p=1.0, blur_p=1.0, star_p=1.0, rebin_p=1.0, max_shift=MAX_SHIFT)
    chain(batch, seed=0)
    whole = min(_timed(lambda r=r: chain(batch, seed=r))[0] for r in range(repeats))
    print(f"\nprofile of the astro_cl chain on small images ({b} x {c} x {h} x {w}), "
          f"whole chain best {whole * 1e3:.1f} ms, load average {_load()}:")
    print("  each step alone (Compose of that step, p = 1, on the unmasked input; the chain "
          "fuses noise + rebin, chunks the batch and warps only the pixels the rebinning "
          "left unmasked, so the sum differs):")
    for aug, _ in chain.steps:
        alone = Compose(steps=[(aug, 1.0)])
        alone(batch, seed=0)
        best = min(_timed(lambda r=r, alone=alone: alone(batch, seed=r))[0]
                   for r in range(repeats))
        print(f"    {type(aug).__name__:22s} {best * 1e3:8.1f} ms "
              f"({best / whole:5.1%} of the chain)")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for r in range(repeats):
            chain(batch, seed=r)
    print(f"  torch operators by self CPU time over {repeats} runs:")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    print("\n".join("    " + line for line in table.splitlines()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["study", "small"])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-scipy", action="store_true", help="skip the per-sample scipy chain")
    parser.add_argument("--no-profile", action="store_true", help="skip the small-image profile")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from astro_cl.utils import available_cpus
    from astro_cl.utils.memory import retain_freed_memory

    # what a chunked Compose run sets up anyway; process-wide, so the peers run
    # with the same allocator settings
    print(f"freed memory retained: {retain_freed_memory()}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; {available_cpus()} usable CPUs "
          f"(machine {os.cpu_count()}); load average {_load()}")
    results = {}
    for name in args.shapes:
        results[name] = compare(name, repeats=args.repeats,
                                scipy=name == "study" and not args.no_scipy)
    if not args.no_profile:
        profile_small(args.repeats)
    return results


if __name__ == "__main__":
    main()
