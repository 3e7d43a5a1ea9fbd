"""Region search on resolved embeddings: precision@10 per truth regime against chance.

Trains `~astro_cl.models.dense.DenseContrastive` on an ``ecalifa-mock`` survey
(CubePCA images, 32 px), indexes every spaxel with
`~astro_cl.tasks.region_search.RegionSearch` and scores queries of each truth
regime (`~astro_cl.tasks.region_search.truth_regimes`) with
`~astro_cl.tasks.region_search.region_precision`, beside two baselines: the
network's input (the standardised PCA channels) and the untrained network.
Prints the stage timings and writes a figure of the hits of one query.

Usage::

    python benchmarks/bench_region_search.py [N_GALAXIES [EPOCHS]]   # default 80 30
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.nddata import NDData

from astro_cl.augment.compose import Compose
from astro_cl.augment.geometric import RandomRotation, RandomTranslation
from astro_cl.augment.photometric import GaussianBlur, MultiplicativeNoise
from astro_cl.models.dense import DenseContrastive
from astro_cl.preprocess.cube_pca import CubePCA
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.tasks.region_search import RegionSearch, region_precision, truth_regimes

N = int(sys.argv[1]) if len(sys.argv) > 1 else 80
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
t0 = time.time()
T = {}
survey = ECALIFAMockSurvey(n=N, seed=0, size=32)
cache = tempfile.mkdtemp(prefix="dense-")
t = time.time()
truth, wcs = {}, {}
fit_records = []
for i, gid in enumerate(survey.ids):
    r = survey[gid]
    truth[gid] = {k: v for k, v in r.maps.items()}
    wcs[gid] = r.cube.wcs.celestial
    if i < 20:
        fit_records.append(r)
T["read_truth_and_pca_sample"] = time.time() - t
t = time.time()
pca = CubePCA(seed=0, fit_snr=10.0, standardize=True, n_components=12).fit(fit_records)
del fit_records
T["pca_fit"] = time.time() - t
aug = Compose(steps=[(MultiplicativeNoise(sn=(3, 10)), 0.5),
                     RandomRotation(angle=(1.0, 359.0), flip=True, mode="bilinear"),
                     RandomTranslation(max_shift=3), (GaussianBlur(sigma=1.0), 0.5)])
enc = DenseContrastive(width=0.25, embedding_dim=32, n_pixels=64, augmenter=aug)
t = time.time()
losses = []
enc.fit(survey, preprocessor=pca, cache_dir=cache,
        trainer={"epochs": EPOCHS, "batch_size": 16, "lr": 1e-3, "progress": False, "seed": 0},
        )
T["train"] = time.time() - t
hist = [round(h.get("train_loss", float("nan")), 3) for h in enc.history_]
t = time.time()
cubes = enc.embed_maps(survey, wcs=wcs, cache_dir=cache)
T["embed"] = time.time() - t
labels = truth_regimes(truth)
t = time.time()
search = RegionSearch().fit(cubes)
T["index"] = time.time() - t
t = time.time()
res = region_precision(search, labels, k=10, n_queries=200, seed=0)
res_same = region_precision(search, labels, k=10, n_queries=200, seed=0, exclude_galaxy=False)
T["evaluate"] = time.time() - t
print("MAIN", T, flush=True)
print("loss", [round(h.get("train_loss", float("nan")), 3) for h in enc.history_], flush=True)
# baseline: the network's input itself (the PCA images, standardised per channel)
source = enc.input_source(survey, cache_dir=cache)
base = []
for s in range(0, len(source), 32):
    b = source.batch(torch.arange(s, min(len(source), s + 32)))
    for gid, x, m in zip(b.ids, b.data.numpy(), b.mask.numpy(), strict=True):
        base.append(NDData(x, mask=m.any(0), meta={"id": gid}))
stack = np.concatenate([c.data[:, ~c.mask].T for c in base])
mu, sd = stack.mean(0), stack.std(0) + 1e-12
base = [NDData(((c.data - mu[:, None, None]) / sd[:, None, None]).astype(np.float32),
               mask=c.mask, meta=c.meta) for c in base]
res_base = region_precision(RegionSearch().fit(base), labels, k=10, n_queries=200, seed=0)
# untrained network (same architecture, initial weights)
init = DenseContrastive(**enc.get_params(deep=False))
init.fit(survey, preprocessor=pca, cache_dir=cache,
         trainer={"epochs": 1, "batch_size": 16, "lr": 1e-12, "progress": False, "seed": 0})
res_init = region_precision(
    RegionSearch().fit(init.embed_maps(survey, wcs=wcs, cache_dir=cache)), labels, k=10,
    n_queries=200, seed=0)
T["total"] = time.time() - t0
hits = search.query(survey.ids[2], 16, 16, k=10, exclude_galaxy=True)
fig = search.plot_hits(hits)
figure = Path(cache) / "region_search_hits.png"
fig.savefig(figure, dpi=80)
print("figure:", figure)
print("N", N, "epochs", EPOCHS, "spaxels", len(search.vectors_), search.backend_,
      search.index_kind_)
print("loss per epoch", hist)
for name, tab in [("dense (other galaxies)", res), ("dense (incl. own galaxy)", res_same),
                  ("PCA input (other galaxies)", res_base),
                  ("untrained net (other galaxies)", res_init)]:
    print("==", name)
    for r in tab:
        print(f"  {r['regime']:13s} n={r['n_spaxels']:6d} chance={r['chance']:.3f} "
              f"P@10={r['precision']:.3f}±{r['precision_err']:.3f} lift={r['lift']:.2f}")
print("timings", json.dumps({k: round(v, 1) for k, v in T.items()}))
print(hits)
