"""
Quickstart: mock galaxies to a contrastive embedding
====================================================

This tutorial runs the whole self-supervised loop on the built-in SDSS-like
mock survey, which needs no download:

1. generate a small survey of ugriz cutouts with known physical properties;
2. scale the images and train a small SimCLR encoder on two augmented views
   of every galaxy;
3. project the 64-d embedding to two dimensions with UMAP and colour it by the
   catalogue properties the network never saw.

The sizes are tutorial sizes (a few dozen 32x32 cutouts, a narrow network, a
few epochs) so that the page builds in seconds; the comments say what to
change for a real run.
"""

# %%
# A mock survey
# -------------
# `~astro_cl.surveys.sdss_mock.SDSSMockSurvey` draws a galaxy population from
# published scaling relations (star-forming main sequence, mass-size relation,
# morphology, environment) and renders each galaxy as ugriz images in
# nanomaggies with SDSS-like PSF and noise. Galaxy ``i`` depends only on
# ``(seed, i)``, so the survey is reproducible and nothing is stored.
import numpy as np

import astro_cl
from astro_cl.surveys.sdss_mock import SDSSMockSurvey

survey = SDSSMockSurvey(n=64, size=32, seed=0)  # a real run: n=5000, size=64
print(survey)
print(survey.catalogue["id", "type", "log_Mass", "log_SFR_Ha", "sfms_class"][:5])

# %%
# Every galaxy is a `~astro_cl.data.GalaxyRecord` built from astropy objects:
# the images are an `~astropy.nddata.NDData` band stack with units, WCS, mask
# and uncertainty, and the truth maps that produced the pixels come along.
record = survey[0]
print(record.images.unit, record.images.data.shape, record.bands)
print(sorted(record.maps))

# %%
# The same survey is available by name through the plugin registry, exactly
# like a third-party survey would be:
assert type(astro_cl.get_survey("sdss-mock", n=64, size=32, seed=0)) is SDSSMockSurvey

# %%
# Scale the images
# ----------------
# Fluxes span orders of magnitude, so the network sees an asinh stretch of
# each band, standardised with statistics fitted on the training set. A fitted
# preprocessor is saved with the model so that inference uses exactly the
# training transformation.
import torch

from astro_cl.data.batch import TensorBatch
from astro_cl.preprocess import ImageScaler

scaler = ImageScaler(method="asinh")
data, mask, std = scaler.fit_transform(survey)
batch = TensorBatch(data=torch.from_numpy(data), mask=torch.from_numpy(mask),
                    ids=survey.ids, meta={"survey": survey.name})
print(batch.data.shape, batch.mask.dtype, len(batch.ids))

# %%
# Train SimCLR
# ------------
# Two random views of every galaxy are made by an augmentation chain
# (here: the eight symmetries of the square, a small blur and a noise
# realisation), and the encoder learns to map the two views of a galaxy close
# together and away from all other galaxies (the NT-Xent loss). Chains are
# plain configuration, so they can live in a TOML file as well.
from astro_cl.augment.config import build_augmenter
from astro_cl.models.simclr import SimCLR

augmenter = build_augmenter([
    {"name": "random-rot90", "transpose": True},
    {"name": "random-flip"},
    {"name": "gaussian-blur", "p": 0.5, "sigma": 1.0},
    {"name": "multiplicative-noise", "p": 0.5, "sn": [5, 20]},
])
encoder = SimCLR(width=0.25,          # a real run: width=1 (64..512 channels)
                 augmenter=augmenter)
# how to train: a dict of the settings that differ from the study's (or a
# TrainerConfig); a real run: 50 epochs with early stopping, the defaults
encoder.fit(batch, trainer={"epochs": 4, "batch_size": 32, "seed": 0, "progress": False})
for row in encoder.history_:
    print(f"epoch {row['epoch']}: loss {row['train_loss']:.3f}")

# %%
# The embedding table
# -------------------
# `~astro_cl.models.simclr.SimCLR.embed` returns a `~astropy.table.QTable` with
# the galaxy ids, one unit vector per galaxy and the provenance of the model.
embeddings = encoder.embed(batch)
print(embeddings[:3])
print(embeddings.meta["model"], embeddings.meta["astro_cl_version"])

# %%
# UMAP, coloured by what the network never saw
# ---------------------------------------------
# The catalogue is only used now, to colour the projection. With a few epochs
# on 64 galaxies the structure is rough; with a full-size survey the mass,
# star-formation and morphology sequences line up along the map.
from astro_cl.report.figures import plot_umap
from astro_cl.tasks import project_2d

xy = project_2d(embeddings["embedding"], method="umap", seed=0,
                umap_params={"n_neighbors": 10})
fig = plot_umap(xy, survey.catalogue, ["log_Mass", "log_SFR_Ha", "EW_Ha_cen",
                                       "Age_LW_Re_fit", "type", "sfms_class"])

# %%
# How much does the embedding know?
# ---------------------------------
# `~astro_cl.tasks.PropertyCorrelation` scores every property by a
# cross-validated kNN regression (or classification) from the embedding,
# with bootstrap uncertainties, and ranks them.
from astro_cl.tasks import PropertyCorrelation

ranking = PropertyCorrelation(
    properties=["log_Mass", "log_SFR_Ha", "EW_Ha_cen", "Age_LW_Re_fit", "type"],
    n_neighbors=5, cv=3, n_bootstrap=20, projection=None, seed=0,
).fit(embeddings, survey.catalogue).evaluate()
print(ranking["rank", "property", "score", "score_err"])
print("mean of the scores:", np.round(np.mean(ranking["score"]), 2))

# %%
# Next steps: :doc:`/user_guide/index` explains each piece, and
# :ref:`sphx_glr_auto_examples_studies_plot_ecalifa_study.py` reproduces the
# eCALIFA study on its catalogue twin.
