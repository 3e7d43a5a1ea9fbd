"""The U-Net decoder's upsampling: cost per training step and checkerboard in the maps.

PICASSSO's U-Net upsamples with 2x2, stride-2 transposed convolutions; the
maps it predicts show a checkerboard (power at the Nyquist frequency of the
residual maps). `~astro_cl.models.backbones.UNet` offers three decoders
(``upsample``): ``"transpose"`` (PICASSSO's), ``"subpixel"`` (a 1x1
convolution and a pixel shuffle with ICNR initialisation: the same FLOPs as the
transposed convolution) and ``"resize"`` (nearest-neighbour upsampling and a
3x3 convolution). This script measures, at the demo's shape (5 x 64 x 64
ugriz images, batches of 16, width 0.1875, six maps):

* ``--part steps``: the training step (forward, squared-error loss, backward,
  Adam) of each decoder on the same tensors, interleaved (each repeat times
  every decoder in turn, so that a slow spell of the shared machine hits all),
  median wall and CPU time per step, with the load average;
* ``--part maps``: trains the demo's U-Net (the steps of
  `~astro_cl.studies.run_picasso_study` with the demo's "small" settings,
  unless ``--n``/``--epochs`` say otherwise) once per decoder on the same
  mock galaxies, split and seed, and measures the held-out
  residual maps ``log10(true / predicted)``: the fraction of their power at
  the Nyquist frequency (the row and column of the 2-D spectrum at 0.5
  cycles/px, about ``2 / 64`` for white noise), the residual in the outer
  frame against the interior, and `~astro_cl.tasks.MapMetrics`. It saves a
  figure of the residual maps of the same galaxies for each decoder.

Usage::

    python benchmarks/bench_unet_decoder.py --part steps [--repeats 7]
    python benchmarks/bench_unet_decoder.py --part maps --out decoder-runs --n 400 \\
        --epochs 25 --figure docs/science/_static/unet_decoder_residuals.png
    python benchmarks/bench_unet_decoder.py --part figure --out decoder-runs \\
        --figure unet_decoder_residuals.png     # again, from the saved residual maps
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from _clock import Clock, context_line, load_average

MODES = ("transpose", "subpixel", "resize", "bilinear")
#: The demo's U-Net at its default size (astro_cl.demo.SIZES["small"]).
WIDTH, SHAPE, BATCH, N_MAPS = 0.1875, (5, 64, 64), 16, 6


def _flops(net, x):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        net(x).square().mean().backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def steps(repeats, n_steps, threads):
    """Interleaved training-step timings of the three decoders."""
    import torch

    from astro_cl.models.backbones import UNet

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *SHAPE, generator=gen)
    y = torch.randn(BATCH, N_MAPS, *SHAPE[1:], generator=gen)
    nets, opts = {}, {}
    for mode in MODES:
        torch.manual_seed(0)
        nets[mode] = UNet(SHAPE[0], N_MAPS, width=WIDTH, upsample=mode).train()
        opts[mode] = torch.optim.Adam(nets[mode].parameters(), lr=1e-3)
    print(context_line())
    for mode in MODES:
        n_par = sum(p.numel() for p in nets[mode].parameters())
        print(f"{mode:>9s}: {n_par:,} parameters, "
              f"{_flops(nets[mode], x) / 1e9:.2f} GFLOP per training step")

    def step(mode):
        opts[mode].zero_grad(set_to_none=True)
        loss = (nets[mode](x) - y).square().mean()
        loss.backward()
        opts[mode].step()

    for mode in MODES:  # warm-up (oneDNN primitive caches, allocator)
        for _ in range(3):
            step(mode)
    wall = {m: [] for m in MODES}
    cpu = {m: [] for m in MODES}
    loads = [load_average()]
    for _ in range(repeats):
        for mode in MODES:
            with Clock() as clock:
                for _ in range(n_steps):
                    step(mode)
            wall[mode].append(clock.wall / n_steps)
            cpu[mode].append(clock.cpu / n_steps)
        loads.append(load_average())
    ref = statistics.median(wall["transpose"])
    out = {}
    for mode in MODES:
        w, c = statistics.median(wall[mode]), statistics.median(cpu[mode])
        out[mode] = {"wall_ms": 1e3 * w, "cpu_ms": 1e3 * c, "vs_transpose": w / ref,
                     "wall_ms_all": [round(1e3 * v, 1) for v in wall[mode]]}
        print(f"{mode:>9s}: {1e3 * w:7.1f} ms wall, {1e3 * c:7.1f} ms CPU per step "
              f"(median of {repeats} x {n_steps} steps), {w / ref:.2f}x transpose; "
              f"all: {out[mode]['wall_ms_all']}")
    print(f"load average during the repeats: {' | '.join(loads)}")
    out["load_average"] = loads
    return out


def nyquist_fraction(residuals, border=4):
    """Fraction of the (non-constant) power of each map at the Nyquist row and column.

    Parameters
    ----------
    residuals : `numpy.ndarray`
        ``(n, ny, nx)`` maps, even sizes; NaN are set to the map's mean.
    border : int, optional
        Pixels left out at each edge (the frame is measured by `frame_ratio`;
        the loss crops 4).

    Returns
    -------
    fraction : `numpy.ndarray`
        ``(n,)``; ``(nx + ny - 1) / (nx * ny - 1)`` on average for white noise
        (of the cropped size).
    """
    r = np.asarray(residuals, dtype=np.float64)
    if border:
        r = r[:, border:-border, border:-border]
    mean = np.nanmean(r, axis=(1, 2), keepdims=True)
    r = np.where(np.isfinite(r), r, mean) - mean
    power = np.abs(np.fft.fft2(r)) ** 2
    ny, nx = r.shape[1:]
    nyq = power[:, ny // 2, :].sum(axis=1) + power[:, :, nx // 2].sum(axis=1) \
        - power[:, ny // 2, nx // 2]
    total = power.sum(axis=(1, 2)) - power[:, 0, 0]
    return nyq / np.where(total > 0, total, np.nan)


def frame_ratio(residuals, width=3):
    """RMS residual in the outer ``width`` pixels over the RMS residual inside them."""
    r = np.asarray(residuals, dtype=np.float64)
    inner = np.zeros(r.shape[1:], bool)
    inner[width:-width, width:-width] = True
    rms_in = np.sqrt(np.nanmean(r[:, inner] ** 2, axis=1))
    rms_out = np.sqrt(np.nanmean(r[:, ~inner] ** 2, axis=1))
    return rms_out / rms_in


def _train_and_predict(survey, out, unet, test_fraction, seed, threads, train_seed):
    """The maps study's steps (as `~astro_cl.studies.run_picasso_study`), with public calls."""
    import inspect

    from astro_cl.augment.presets import picasso_augmentations
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.preprocess.cache import PreprocessedCache
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.studies import PICASSSO_TARGETS, SourceView

    targets = list(PICASSSO_TARGETS)
    scaler = ImageScaler().fit([survey[i] for i in range(min(len(survey), 100))])
    cutouts = PreprocessedCache(Path(out) / "cache", verify="size").get_or_build(
        survey, preprocessor=scaler, targets=targets, progress=False, workers=threads)
    order = np.random.default_rng(seed).permutation(len(survey))
    n_test = max(2, round(test_fraction * len(survey)))
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    model_keys = set(inspect.signature(CNNRegressor).parameters)
    model = {k: v for k, v in unet.items() if k in model_keys}
    trainer = {k: v for k, v in unet.items() if k not in model_keys}
    trainer.update(seed=train_seed, num_threads=threads, progress=False, device="cpu")
    regressor = CNNRegressor(augmenter=picasso_augmentations(), target_names=tuple(targets),
                             **model)
    regressor.fit(SourceView(cutouts, rows=train_rows), trainer=trainer)
    truth = cutouts.target_maps(test_rows)
    predicted = regressor.predict_maps(SourceView(cutouts, rows=test_rows))
    ids = list(cutouts.ids)
    return truth, predicted, [ids[i] for i in test_rows]


def _as_unit(nd, unit):
    return (np.asarray(nd.data, dtype=np.float64) * (1.0 * nd.unit).to_value(unit)
            if nd.unit is not None and unit is not None else np.asarray(nd.data, np.float64))


def maps(out, n, epochs, seed, figure, modes, threads, train_seed=None, border=None):
    """Train the demo's U-Net once per decoder; measure and draw the residual maps."""
    import torch

    import astro_cl.models.backbones as backbones
    from astro_cl.demo import SIZES
    from astro_cl.studies import PICASSSO_TARGETS
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey
    from astro_cl.tasks import MapMetrics

    cfg = SIZES["small"]
    unet = dict(cfg["unet"])
    train_seed = seed if train_seed is None else train_seed
    if border is not None:
        unet["border"] = border
    if epochs is not None:
        unet["epochs"] = epochs
        unet["schedule"] = {"name": "multistep", "milestones": [max(1, int(0.8 * epochs))],
                            "gamma": 0.1}
    survey = SDSSMockSurvey(n=n, seed=seed, size=cfg["image_size"])
    original = backbones.UNet
    torch.set_num_threads(threads)
    results = {}
    for mode in modes:
        class Decoder(original):
            def __init__(self, *args, _mode=mode, **kwargs):
                super().__init__(*args, upsample=_mode, **kwargs)

        backbones.UNet = Decoder
        try:
            with Clock() as clock:
                # the same folder: the scaled images and maps are cached once
                truth, predicted, ids = _train_and_predict(
                    survey, out, unet, cfg["test_fraction"], seed, threads, train_seed)
        finally:
            backbones.UNet = original
        true_maps = {k: np.stack([np.asarray(t[k].data, np.float64) for t in truth])
                     for k in PICASSSO_TARGETS}
        pred_maps = {k: np.stack([_as_unit(p[k], t[k].unit) for p, t in
                                  zip(predicted, truth, strict=True)])
                     for k in PICASSSO_TARGETS}
        units = {k: truth[0][k].unit for k in PICASSSO_TARGETS}
        res = {}
        for k in PICASSSO_TARGETS:
            t, p = true_maps[k], pred_maps[k]
            with np.errstate(divide="ignore", invalid="ignore"):
                res[k] = (t - p if str(units[k]) in ("dex", "mag")
                          else np.where((t > 0) & (p > 0), np.log10(t / p), np.nan))
        # kept so that the residuals can be measured again without retraining
        tag = f"{mode}_seed{train_seed}_border{unet.get('border', 4)}"
        np.savez_compressed(Path(out) / f"residuals_{tag}.npz", ids=np.asarray(ids),
                            **{k: v.astype(np.float32) for k, v in res.items()})
        table = MapMetrics(properties=list(PICASSSO_TARGETS)).fit(
            {k: v * units[k] for k, v in pred_maps.items()},
            {k: v * units[k] for k, v in true_maps.items()}).evaluate()
        results[mode] = {
            "train_s": clock.wall, "train_cpu_s": clock.cpu, "load_average": load_average(),
            "nyquist_fraction": {k: float(np.nanmedian(nyquist_fraction(v)))
                                 for k, v in res.items()},
            "frame_ratio": {k: float(np.nanmedian(frame_ratio(v))) for k, v in res.items()},
            "metrics": {str(r["property"]): {c: float(getattr(r[c], "value", r[c]))
                                             for c in ("sigma", "mu", "sigma_constant",
                                                       "sigma_ratio", "sigma_pixel")}
                        for r in table},
            "residuals": res, "ids": ids,
        }
        print(f"{mode}: trained and measured in {clock}, load {load_average()}")
        r = results[mode]
        for k in PICASSSO_TARGETS:
            print(f"  {k:<16s} Nyquist power fraction {r['nyquist_fraction'][k]:.4f}, "
                  f"frame/interior RMS {r['frame_ratio'][k]:.2f}, "
                  f"sigma {r['metrics'][k]['sigma']:.3f} dex, "
                  f"sigma/constant {r['metrics'][k]['sigma_ratio']:.2f}, "
                  f"pixel sigma {r['metrics'][k]['sigma_pixel']:.3f} dex")
    side = SHAPE[1] - 8  # the measured interior
    white = (2 * side - 1) / (side * side - 1)
    print(f"white noise: Nyquist power fraction {white:.4f}")
    if figure:
        _figure(results, modes, figure)
    return {m: {k: v for k, v in r.items() if k not in ("residuals", "ids")}
            for m, r in results.items()}


def figure_from_files(out, modes, seed, border, path):
    """Draw the figure again from the residual maps a ``--part maps`` run saved in ``out``."""
    results = {}
    for mode in modes:
        with np.load(Path(out) / f"residuals_{mode}_seed{seed}_border{border}.npz") as npz:
            results[mode] = {"ids": [str(i) for i in npz["ids"]],
                             "residuals": {k: npz[k] for k in npz.files if k != "ids"}}
    _figure(results, modes, path)


def _figure(results, modes, path, names=("age_mw", "metallicity", "stellar_mass"),
            n_galaxies=2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astro_cl.utils.io import atomic_path

    first = results[modes[0]]
    # the galaxies whose first-decoder age residual has the most Nyquist power
    score = nyquist_fraction(first["residuals"]["age_mw"])
    picks = np.argsort(-np.nan_to_num(score))[:n_galaxies]
    rows = [(name, i) for i in picks for name in names]
    fig, axes = plt.subplots(len(rows), len(modes), figsize=(2.3 * len(modes) + 0.6,
                                                             2.1 * len(rows)),
                             squeeze=False, layout="constrained")
    for r, (name, i) in enumerate(rows):
        lim = np.nanpercentile(np.abs(np.concatenate(
            [results[m]["residuals"][name][i].ravel() for m in modes])), 99)
        for c, mode in enumerate(modes):
            ax = axes[r, c]
            img = results[mode]["residuals"][name][i]
            im = ax.imshow(img, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                           interpolation="nearest")
            nyq = nyquist_fraction(img[None])[0]
            ax.set_title(f"{mode}: Nyquist {nyq:.3f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{first['ids'][i]}\n{name}", fontsize=8)
        fig.colorbar(im, ax=axes[r, -1], shrink=0.8, label="dex")
    fig.suptitle("Held-out residual maps log10(true / predicted) by decoder upsampling",
                 fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72, format="png")
    plt.close(fig)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("steps", "maps", "figure"), default="steps",
                        help="figure: draw --figure from the residuals a maps run left in --out")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="training steps per repeat")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=None, help="folder of the maps part")
    parser.add_argument("--n", type=int, default=800, help="mock galaxies (maps part)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mock and the split")
    parser.add_argument("--train-seed", type=int, default=None, help="default: --seed")
    parser.add_argument("--border", type=int, default=None,
                        help="pixels the loss crops (default: the model's, 4)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--figure", default=None, help="PNG of the residual maps")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.part == "steps":
        result = steps(args.repeats, args.steps, args.threads)
    elif args.part == "figure":
        if args.out is None or args.figure is None:
            parser.error("--part figure needs --out and --figure")
        figure_from_files(args.out, args.modes, args.seed if args.train_seed is None
                          else args.train_seed, 4 if args.border is None else args.border,
                          args.figure)
        result = {}
    else:
        if args.out is None:
            parser.error("--part maps needs --out")
        result = maps(args.out, args.n, args.epochs, args.seed, args.figure, args.modes,
                      args.threads, train_seed=args.train_seed, border=args.border)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
