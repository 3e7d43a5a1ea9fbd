"""Training throughput of the SimCLR encoder and the U-Net regressor on this CPU.

For each model and input shape (the studies' shapes and the mock surveys'
defaults) this reports, in one run:

* the dense float32 matmul peak of this machine (GFLOP/s; measured at the
  start and at the end of the run, the higher value is the reference);
* the **bare step**: forward, loss, backward and optimiser (the trainer's Adam) of the
  real network on pre-made tensors; galaxies/s, model GFLOP/s (convolution and
  matmul FLOPs of one step counted with `torch.utils.flop_counter.FlopCounterMode`,
  divided by the mean time of the timed steps, warm-up steps excluded) and that
  rate as a fraction of the matmul peak (target >= 80%);
* the **epoch**: `astro_cl.training.trainer.Trainer.fit` reading a memory-mapped
  cache (`astro_cl.preprocess.cache.CachedArrays`, the class
  `PreprocessedCache.get_or_build` returns), augmenting (both SimCLR views with
  the eCALIFA preset; the PICASSSO symmetries for the U-Net), forward,
  backward and optimiser; galaxies/s after the warm-up steps, and its time
  relative to the same number of bare steps (target <= 1.25x);
* the data cost (cache read + augmentation of one batch, measured alone) that
  the trainer's prefetch thread overlaps with the model step.

SimCLR galaxies count once although each is two augmented views (two network
images). The load average is printed with each figure: on a busy machine the
matmul peak and every rate drop, so compare fractions and ratios measured in
the same run.

Usage::

    python benchmarks/bench_training.py               # study shapes + mock defaults
    python benchmarks/bench_training.py --quick       # mock defaults only
    python benchmarks/bench_training.py --cases simclr-study --steps 2
"""

import argparse
import contextlib
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

#: name -> (model, input shape, batch size, augmentation preset)
CASES = {
    "simclr-study": ("simclr", (30, 192, 184), 16),   # eCALIFA: 30 PCA channels, 192x184
    "unet-study": ("unet", (5, 256, 256), 8),         # PICASSSO: ugriz 256x256
    "simclr-mock": ("simclr", (30, 48, 48), 32),      # ECALIFAMockSurvey(size=48) + CubePCA
    "unet-mock": ("unet", (5, 64, 64), 16),           # SDSSMockSurvey(size=64)
}
N_TARGETS = 4  # predicted maps of the U-Net (e.g. stellar mass, SFR, age, metallicity)
PEAK_TARGET = 0.80
RATIO_TARGET = 1.25


def _load():
    try:
        return f"load {os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover - not Unix
        return "load ?"


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def matmul_peak(sizes=(2048, 4096), seconds=1.5):
    """Return the best dense float32 GEMM rates (FLOP/s) this CPU reaches from PyTorch.

    Two GEMM paths are timed: ``torch.matmul`` (the BLAS library, MKL in the
    x86 wheels: the "dense matmul peak" the targets refer to) and a 1x1
    convolution in channels-last layout, the same GEMM done by oneDNN. On AMD
    CPUs MKL takes a generic AVX2 path while oneDNN uses AVX-512, so the oneDNN
    rate is the higher ceiling that the convolutions could reach.

    Returns
    -------
    rates : dict
        ``{"matmul": ..., "onednn": ...}`` in FLOP/s.
    """
    best_rate = 0.0
    for c in (1024,):
        x = torch.randn(1, c, 64, 64).to(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1).to(memory_format=torch.channels_last)
        torch.nn.functional.conv2d(x, w)
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            torch.nn.functional.conv2d(x, w)
            best_rate = max(best_rate, 2 * c * c * 64 * 64 / (time.perf_counter() - t0))
    rates = {"onednn": best_rate}
    best_rate = 0.0
    for n in sizes:
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        out = torch.empty(n, n)
        torch.matmul(a, b, out=out)
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            torch.matmul(a, b, out=out)
            best_rate = max(best_rate, 2 * n**3 / (time.perf_counter() - t0))
    rates["matmul"] = best_rate
    return rates


def _arrays(kind, shape, n, seed=0):
    """Synthetic galaxies with the masks of real data (FoV, bad pixels, empty target pixels)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2) / (0.5 * min(h, w))
    profile = np.exp(-3 * r).astype(np.float32)
    data = profile * (1 + 0.1 * rng.standard_normal((n, c, h, w), dtype=np.float32))
    if kind == "simclr":
        # the IFU field of view: spaxels outside it are masked in every channel
        mask = np.broadcast_to(r > 0.95, (n, 1, h, w)).copy()
        mask |= rng.random((n, 1, h, w)) < 5e-4
        data[np.broadcast_to(mask, data.shape)] = 0.0
        return {"data": data, "mask": mask}
    mask = rng.random((n, c, h, w)) < 1e-3
    targets = np.exp(rng.standard_normal((n, N_TARGETS, h, w), dtype=np.float32)) * profile
    targets[:, :, r > 0.9] = 0.0  # empty pixels (down-weighted in the loss)
    return {"data": data, "mask": mask, "targets": targets.astype(np.float32),
            "target_mask": np.zeros(targets.shape, bool)}


def make_cache(directory, kind, shape, n):
    """Write a memory-mapped cache entry and open it as the trainer reads it."""
    from astro_cl.preprocess.cache import CachedArrays

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, value in _arrays(kind, shape, n).items():
        np.save(directory / f"{name}.npy", value)
        arrays[name] = np.load(directory / f"{name}.npy", mmap_mode="r")
    meta = {"ids": [f"g{i}" for i in range(n)],
            "batch_meta": {"target_names": [f"map{i}" for i in range(N_TARGETS)]}}
    return CachedArrays(directory, meta, arrays)


def _network(kind, shape):
    from astro_cl.models.backbones import ContrastiveNet, UNet, build_backbone

    if kind == "simclr":  # the SimCLR encoder's defaults (the eCALIFA network)
        return ContrastiveNet(build_backbone("conv", shape[0], hidden=(512, 128),
                                             out_features=64, dropout=0.1, pooling="max"))
    return UNet(shape[0], N_TARGETS)  # the CNNRegressor defaults (PICASSSO widths)


def _loss(kind, augment):
    from astro_cl.models.regressor import _RegressionLoss
    from astro_cl.models.simclr import _ContrastiveLoss

    aug = None
    if augment:
        from astro_cl.augment import presets

        aug = presets.ecalifa_views() if kind == "simclr" else presets.picasso_augmentations()
    if kind == "simclr":
        return _ContrastiveLoss(aug, 0.5, "cross")
    return _RegressionLoss(aug, [-3.0] * N_TARGETS, 1e-3, 4, False,
                           ([False] * N_TARGETS, [0.0] * N_TARGETS, [1.0] * N_TARGETS))


def bare_step(kind, shape, source, batch, warmup, steps):
    """Time forward + loss + backward + Adam on pre-made (un-augmented) tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    from astro_cl.training.trainer import Trainer

    torch.manual_seed(0)
    net = _network(kind, shape).train()
    loss_fn = _loss(kind, augment=False)
    opt = Trainer(net, loss_fn, lr=1e-4)._make_optimizer(net.parameters())  # the same Adam
    prepared = loss_fn.prepare(source.batch(np.arange(batch)), torch.Generator().manual_seed(0))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn.compute(net, prepared)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    cpu = (time.process_time() - c0) / steps
    return {"step_s": dt, "cpu_s": cpu, "flops": flops, "gal_s": batch / dt,
            "flops_s": flops / dt}


def epoch(kind, shape, source, batch, warmup, steps, prefetch=True):
    """Time the Trainer's epoch after ``warmup`` steps; also time the data work alone."""
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.models.simclr import SimCLR
    from astro_cl.training.trainer import Trainer

    marks = {}

    def mark(trainer, event, info):
        if event == "step_end" and info["step"] == warmup - 1:
            marks["start"] = (time.perf_counter(), time.process_time())
        elif event == "epoch_end":
            marks["end"] = (time.perf_counter(), time.process_time())

    torch.manual_seed(0)
    loss_fn = _loss(kind, augment=True)
    trainer = Trainer(_network(kind, shape), loss_fn, epochs=1, batch_size=batch, lr=1e-4,
                      seed=0, device="cpu", progress=False, callbacks=[mark],
                      prefetch=prefetch,  # with the prefetch threads the estimator uses
                      prefetch_threads=(SimCLR if kind == "simclr" else CNNRegressor)
                      .prefetch_threads)
    trainer.fit(source)
    dt = (marks["end"][0] - marks["start"][0]) / steps
    cpu = (marks["end"][1] - marks["start"][1]) / steps
    # the data work of one step (cache read + augmentation), alone
    gen = torch.Generator().manual_seed(1)
    t_data = []
    for s in range(2):
        t0 = time.perf_counter()
        loss_fn.prepare(source.batch(np.arange(s * batch, (s + 1) * batch)), gen)
        t_data.append(time.perf_counter() - t0)
    return {"step_s": dt, "cpu_s": cpu, "gal_s": batch / dt, "data_s": min(t_data)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES),
                        default=["simclr-study", "unet-study", "simclr-mock", "unet-mock"])
    parser.add_argument("--quick", action="store_true", help="mock-default shapes only")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per measurement (default 3 at study shapes, 8 mock)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed warm-up steps (default 1 at study shapes, 2 mock)")
    parser.add_argument("--batch", type=int, default=None, help="override the batch sizes")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="run the Trainer without its prefetch thread")
    parser.add_argument("--repeats", type=int, default=2,
                        help="alternating bare/epoch measurements per case; the fastest of "
                             "each is kept (this VM's speed drifts by tens of per cent)")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases if not (args.quick and c.endswith("-study"))]

    from astro_cl.training.trainer import default_num_threads
    from astro_cl.utils.memory import retain_freed_memory

    torch.set_num_threads(default_num_threads())
    # the trainer's allocator setting, for the bare steps too (it halves their time)
    retained = retain_freed_memory()
    print(f"astro_cl training benchmark: torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {_cpu_name()}, "
          f"freed memory retained: {retained}")
    with contextlib.suppress(OSError):
        load, cores = os.getloadavg()[0], default_num_threads()
        if load > 0.75 * cores:
            print(f"WARNING: load average {load:.1f} on {cores} usable cores: other processes "
                  "share the CPU, so rates drop and the epoch/bare ratios are unreliable "
                  "(a multi-threaded epoch wins a larger share of a busy CPU than the bare "
                  "step); re-run on an idle machine.")
    peak0 = matmul_peak()
    print(f"dense float32 matmul peak (torch.matmul 2048^3/4096^3): {peak0['matmul'] / 1e9:.1f} "
          f"GFLOP/s; oneDNN GEMM (1x1 conv): {peak0['onednn'] / 1e9:.1f} GFLOP/s ({_load()})")
    rows = []
    with tempfile.TemporaryDirectory(prefix="astro-cl-bench-") as tmp:
        for name in cases:
            kind, shape, batch = CASES[name]
            batch = args.batch or batch
            study = name.endswith("-study")
            steps = args.steps or (3 if study else 8)
            warmup = args.warmup if args.warmup is not None else (1 if study else 2)
            n = batch * (warmup + steps)
            source = make_cache(Path(tmp) / name, kind, shape, n)
            load_before = _load()
            # alternate the two measurements so that both see the same drifts of
            # the machine's speed, and keep the fastest of each
            bares, eps = [], []
            for _ in range(max(1, args.repeats)):
                bares.append(bare_step(kind, shape, source, batch, warmup, steps))
                eps.append(epoch(kind, shape, source, batch, warmup, steps,
                                 not args.no_prefetch))
            bare = min(bares, key=lambda m: m["step_s"])
            ep = min(eps, key=lambda m: m["step_s"])
            rows.append((name, kind, shape, batch, bare, ep, f"{load_before} -> {_load()}"))
            each = ", ".join(f"{b['step_s']:.3f}/{e['step_s']:.3f}"
                             for b, e in zip(bares, eps, strict=True))
            print(f"  {name}: bare {bare['step_s']:.3f} s/step, epoch {ep['step_s']:.3f} s/step, "
                  f"data alone {ep['data_s']:.3f} s/step; each repeat bare/epoch {each} "
                  f"({rows[-1][-1]})", flush=True)
    peak1 = matmul_peak()
    peak = max(peak0["matmul"], peak1["matmul"])
    gemm = max(peak0["onednn"], peak1["onednn"])
    print(f"at the end: matmul {peak1['matmul'] / 1e9:.1f}, oneDNN {peak1['onednn'] / 1e9:.1f} "
          f"GFLOP/s ({_load()}); reference matmul peak {peak / 1e9:.1f} GFLOP/s")
    print()
    head = (f"{'case':13s} {'input':12s} {'batch':>5s} {'bare gal/s':>10s} {'GFLOP/step':>10s} "
            f"{'GFLOP/s':>8s} {'of peak':>7s} {'of oneDNN':>9s} {'epoch gal/s':>11s} "
            f"{'epoch/bare':>10s} "
            f"{'(CPU s)':>7s} {'data/bare':>9s}  "
            f"targets: peak >= {PEAK_TARGET:.0%}, epoch/bare <= {RATIO_TARGET}")
    print(head)
    for name, _kind, shape, batch, bare, ep, _load_txt in rows:
        frac = bare["flops_s"] / peak
        ratio = ep["step_s"] / bare["step_s"]
        verdict = (f"peak {'PASS' if frac >= PEAK_TARGET else 'FAIL'}, "
                   f"epoch {'PASS' if ratio <= RATIO_TARGET else 'FAIL'}")
        print(f"{name:13s} {'x'.join(map(str, shape)):12s} {batch:5d} {bare['gal_s']:10.2f} "
              f"{bare['flops'] / 1e9:10.1f} {bare['flops_s'] / 1e9:8.1f} {frac:7.1%} "
              f"{bare['flops_s'] / gemm:9.1%} "
              f"{ep['gal_s']:11.2f} {ratio:10.2f} {ep['cpu_s'] / bare['cpu_s']:7.2f} "
              f"{ep['data_s'] / bare['step_s']:9.2f}  {verdict}")
    print(_FOOTER)


_FOOTER = """
bare: forward + loss + backward + optimiser on pre-made tensors (the network alone).
epoch: Trainer.fit on a memory-mapped cache with augmentation (both views for SimCLR),
  steady state after the warm-up steps, no validation or checkpoint writing.
epoch/bare: wall-time ratio per step (the target), fastest of --repeats alternating
  measurements each; (CPU s): the same ratio in process
  CPU time (counts the prefetch thread's work, and OpenMP spin-waits on a busy machine).
of peak: bare GFLOP/s over the torch.matmul peak of this run (the target); of oneDNN: over
  the oneDNN GEMM rate (AVX-512 on AMD, where MKL's matmul is not); the latter fraction
  shows the headroom left. Over 100% of the matmul peak is possible: the convolutions
  run on oneDNN's faster kernels.
data/bare: cache read + augmentation of one batch alone, relative to the bare step
  (the trainer runs it for the next step in a background thread during the current one).
gal/s: galaxies per second (each SimCLR galaxy is two augmented views).
GFLOP: convolution and matmul FLOPs of forward + backward (FlopCounterMode)."""

if __name__ == "__main__":
    main()
