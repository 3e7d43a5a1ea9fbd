"""Training throughput of the SimCLR encoder and the U-Net regressor on this CPU.

Reports, in one run:

* the dense float32 matmul peak of this machine (FLOP/s);
* for each model and input shape: the bare model step (forward, backward,
  optimiser on pre-made tensors) in images/s and its FLOP rate as a fraction
  of the matmul peak (FLOPs counted with torch's FlopCounterMode);
* the end-to-end epoch (batch source -> augmentation of both views -> step,
  through `astro_cl.training.trainer.Trainer`) and its time relative to the
  bare steps (target <= 1.25x).

Usage::

    python benchmarks/bench_training.py            # study shapes and mock defaults
    python benchmarks/bench_training.py --small    # quick check (mock shapes only)
"""

import argparse
import time

import numpy as np
import torch


def matmul_peak(n=2048, repeats=5):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _augmenter(kind):
    try:
        from astro_cl.augment import presets

        return presets.ecalifa_views() if kind == "simclr" else presets.picasso_augmentations()
    except Exception as exc:
        print(f"  (no augmentation preset: {type(exc).__name__}: {exc})")
        return None


def _build(kind, shape, width, n_targets=7):
    from astro_cl.models.backbones import ContrastiveNet, UNet, build_backbone

    if kind == "simclr":
        return ContrastiveNet(build_backbone("conv", shape[0], width=width))
    return UNet(shape[0], n_targets, width=width)


def _data(kind, shape, n, n_targets=7, seed=0):
    from astro_cl.data.batch import TensorBatch

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    extra = {}
    if kind == "unet":
        t = np.exp(rng.normal(size=(n, n_targets, *shape[1:]))).astype(np.float32)
        extra = {"targets": t, "target_mask": np.zeros(t.shape, bool)}
    return TensorBatch.from_arrays(x, ids=[str(i) for i in range(n)], **extra)


def _loss(kind, aug):
    from astro_cl.models.simclr import _ContrastiveLoss
    from astro_cl.models.unet import _RegressionLoss

    if kind == "simclr":
        return _ContrastiveLoss(aug, 0.5, "cross")
    return _RegressionLoss(aug, [0.0] * 7, 1e-3, 4, False)


def bare_step(kind, shape, batch, width, steps):
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = _build(kind, shape, width).train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    data = _data(kind, shape, batch)
    loss_fn = _loss(kind, None)
    gen = torch.Generator().manual_seed(0)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net, data, gen)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    return {"images_per_s": batch / dt, "flops_per_s": flops / dt, "step_s": dt}


def end_to_end(kind, shape, batch, width, steps):
    from astro_cl.training.data import InMemorySource
    from astro_cl.training.trainer import Trainer

    torch.manual_seed(0)
    n = batch * steps
    source = InMemorySource(_data(kind, shape, n))
    trainer = Trainer(_build(kind, shape, width), _loss(kind, _augmenter(kind)), epochs=1,
                      batch_size=batch, lr=1e-4, progress=False, seed=0, device="cpu",
                      num_threads=torch.get_num_threads())
    t0 = time.perf_counter()
    trainer.fit(source)
    dt = time.perf_counter() - t0
    return {"images_per_s": n / dt, "step_s": dt / steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="mock shapes only, few steps")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args(argv)

    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"dense float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    cases = [("simclr", (30, 64, 64), 32), ("unet", (5, 64, 64), 8)]
    if not args.small:
        cases = [("simclr", (30, 192, 184), 32), ("unet", (5, 256, 256), 16), *cases]
    print(f"{'model':8s} {'shape':14s} {'batch':>5s} {'bare img/s':>10s} {'GFLOP/s':>8s} "
          f"{'peak %':>6s} {'e2e img/s':>9s} {'e2e/bare':>8s}")
    for kind, shape, batch in cases:
        bare = bare_step(kind, shape, batch, args.width, args.steps)
        e2e = end_to_end(kind, shape, batch, args.width, args.steps)
        ratio = e2e["step_s"] / bare["step_s"]
        print(f"{kind:8s} {'x'.join(map(str, shape)):14s} {batch:5d} "
              f"{bare['images_per_s']:10.1f} {bare['flops_per_s'] / 1e9:8.1f} "
              f"{100 * bare['flops_per_s'] / peak:6.1f} {e2e['images_per_s']:9.1f} {ratio:8.2f}")


if __name__ == "__main__":
    main()
