"""Benchmark: the eCALIFA chain with the cube noise and rebinning carried through CubePCA.

`~astro_cl.augment.ecalifa_views` with a fitted `~astro_cl.preprocess.CubePCA`
(``preprocessor=``) adds the study's noise and block sums as they would act on
the cubes (`~astro_cl.augment.PCASpaceNoise`, `~astro_cl.augment.PCASpaceRebin`);
without it the same formulas act on the standardised channels
(`~astro_cl.augment.MultiplicativeNoise`, `~astro_cl.augment.Rebin`, which
the chain fuses into one pass). This times ``two_views`` of both chains on a
batch of the demo's shape (64 galaxies x 30 channels x 32 x 32 spaxels) and
of a larger one, alternating the two within each repeat, and prints wall and
CPU time with the load average. The exact alternative, preprocessing every
view (`~astro_cl.augment.PreprocessedViews`), is timed by ``bench_per_view.py``.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pca_space.py [--repeats 5]
"""

import argparse
import statistics

import torch
from _clock import Clock, context_line

from astro_cl.augment import ecalifa_views, make_generator
from astro_cl.data.batch import TensorBatch
from astro_cl.preprocess.cube_pca import CubePCA
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey


def _batch(n, size, channels, seed=0):
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn((n, channels, size, size), generator=gen)
    mask = torch.zeros((n, 1, size, size), dtype=torch.bool)
    mask[..., : size // 8, :] = True  # a masked band, as outside a galaxy's region
    return TensorBatch(data=data, mask=mask, ids=[str(i) for i in range(n)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="two_views calls per timing")
    args = parser.parse_args()
    print(context_line())
    # a fitted 30-channel CubePCA (its components and sky statistics are what the steps read)
    pca = CubePCA(n_components=29, fit_snr=5.0, standardize=True, seed=0).fit(
        ECALIFAMockSurvey(n=6, size=16, seed=0))
    chains = {"image-space (literal)": ecalifa_views(max_shift=2),
              "pca-space": ecalifa_views(max_shift=2, preprocessor=pca)}
    for n, size in ((64, 32), (64, 64)):
        batch = _batch(n, size, 30)
        times = {name: [] for name in chains}
        for chain in chains.values():  # warm-up
            chain.two_views(batch, generator=make_generator(0))
        for r in range(args.repeats):
            for name, chain in chains.items():
                gen = make_generator(r)
                with Clock() as clock:
                    for _ in range(args.steps):
                        chain.two_views(batch, generator=gen)
                times[name].append((clock.wall / args.steps, clock.cpu / args.steps))
        print(f"\n{n} x 30 x {size} x {size}, two_views per call (median of {args.repeats}):")
        for name, t in times.items():
            wall = statistics.median(w for w, _ in t) * 1e3
            cpu = statistics.median(c for _, c in t) * 1e3
            print(f"  {name:22s} {wall:7.1f} ms wall  {cpu:7.1f} ms CPU")
        ratio = statistics.median(p[0] / q[0] for p, q in zip(times["pca-space"],
                                                            times["image-space (literal)"],
                                                            strict=True))
        print(f"  pca-space / literal (same-repeat ratio, median): {ratio:.2f}")
    print("\n" + context_line())


if __name__ == "__main__":
    main()
