"""
Regions like this one: per-spaxel embeddings and region search
==============================================================

A `~astro_cl.models.dense.DenseContrastive` encoder gives every spaxel of an
IFU cube its own embedding. It is trained with a dense contrastive loss: two
augmented views of each galaxy are made, and a pixel of one view must be
closer to the pixel of the other view that shows the same sky position than
to any other matched pixel (VADeR, Pinheiro et al. 2020; DenseCL, Wang et al.
2021; PixPro, Xie et al. 2021). The augmenter itself says where each pixel
went (`~astro_cl.augment.correspondence.augment_with_positions`).

`~astro_cl.tasks.region_search.RegionSearch` then indexes every spaxel of the
survey and answers "which regions, in which galaxies, look like this one?".
On a mock survey the truth maps say what each spaxel is, so the answer can be
checked: `~astro_cl.tasks.region_search.region_precision` reports, per
physical regime, the share of hits in the query's regime against chance.

The sizes here are tutorial sizes (20 galaxies of 24 x 24 spaxels, a narrow
network, a few epochs), so the numbers show the path, not the method's
quality.
"""

# %%
# A mock survey with truth maps
# -----------------------------
# The records are read once and kept: the preprocessing and training read
# their cubes, and the truth maps label the spaxels.
import numpy as np

from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

survey = ECALIFAMockSurvey(n=20, size=24, seed=1)
records = [survey[i] for i in range(len(survey))]
print(len(records), records[0].cube.flux.shape)

# %%
# Cubes to images, and the dense encoder
# --------------------------------------
# `~astro_cl.preprocess.CubePCA` turns each cube into a few PCA coefficient
# images; the encoder's augmentations are geometric (a rotation with a flip,
# a shift) plus noise. ``kind="cube"`` reads the records' cubes.
from astro_cl.augment.compose import Compose
from astro_cl.augment.geometric import RandomRotation, RandomTranslation
from astro_cl.augment.photometric import MultiplicativeNoise
from astro_cl.models.dense import DenseContrastive
from astro_cl.preprocess.cube_pca import CubePCA

pca = CubePCA(n_components=6, fit_snr=5.0, standardize=True, seed=0).fit(records[:10])
augmenter = Compose(steps=[(MultiplicativeNoise(sn=(3, 10)), 0.5),
                           RandomRotation(angle=(1.0, 359.0), flip=True, mode="bilinear"),
                           RandomTranslation(max_shift=2)])
model = DenseContrastive(width=0.125, embedding_dim=16, n_pixels=48, augmenter=augmenter,
                         kind="cube")
model.fit(records, preprocessor=pca,
          trainer={"epochs": 6, "batch_size": 10, "lr": 2e-3, "progress": False})
print([round(row["train_loss"], 3) for row in model.history_])

# %%
# Embedding cubes with the WCS of the cubes
# -----------------------------------------
cubes = model.embed_maps(records)
print(cubes[0].data.shape, cubes[0].wcs.celestial.wcs.ctype)

# %%
# Regions like this one
# ---------------------
# A query is a spaxel of a galaxy, by pixel or by sky position; here the
# centre of the first galaxy, given as a `~astropy.coordinates.SkyCoord`.
# Hits in the query's own galaxy are left out.
from astro_cl.tasks.region_search import RegionSearch

search = RegionSearch(n_neighbors=8).fit(cubes)
centre = cubes[0].wcs.pixel_to_world(12, 12)
hits = search.query(records[0].id, coord=centre, exclude_galaxy=True)
print(hits)

# %%
# Each hit's image (the first principal component of the embeddings) with
# the region marked; the query is on the left.
fig = search.plot_hits(hits, n_columns=5)

# %%
# Checked against the truth maps
# ------------------------------
# Star-forming and retired spaxels (EW(Halpha) above 6 A and below 3 A of
# emission), old and young ones (mass-weighted age): precision at 10 of the
# search against chance, the regime's share of all indexed spaxels.
from astro_cl.tasks.region_search import region_precision, truth_regimes

labels = truth_regimes({r.id: r.maps for r in records})
table = region_precision(search, labels, k=10, n_queries=50)
table["chance"].info.format = table["precision"].info.format = ".3f"
table["lift"].info.format = table["precision_err"].info.format = ".2f"
print(table)
print(f"{np.nanmean(table['lift']):.2f} times chance on average over the regimes")
