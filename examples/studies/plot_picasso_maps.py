"""
PICASSSO: from ugriz images to resolved property maps
=====================================================

Buck & Wolf (2021, arXiv:2111.01154) trained a U-Net to turn SDSS-like ugriz
images of simulated galaxies into maps of stellar mass, age, metallicity, star
formation and gas, and measured the bias and scatter of the recovered
quantities inside two half-mass radii. This tutorial runs the same pipeline on
the SDSS-like mock survey, whose truth maps are exactly the maps that produced
the pixels. The whole study is one call of the study layer,
`~astro_cl.studies.run_picasso_study`:

1. ugriz cutouts and their truth maps from `~astro_cl.surveys.sdss_mock.SDSSMockSurvey`,
   scaled per band and cached with their maps;
2. a U-Net (`~astro_cl.models.regressor.CNNRegressor`) trained on log10 maps with the
   PICASSSO loss (masked squared error, empty pixels down-weighted, border
   cropped) and its augmentations (the eight symmetries of the square);
3. predicted maps as `~astropy.nddata.NDData` with units and uncertainties;
4. the bias/scatter table laid out like the study's, with its numbers beside.

Tutorial sizes: 96 galaxies of 32x32 pixels, a U-Net eight times narrower
than PICASSSO's, a dozen epochs. The study used 256x256 images, the full
width (64...1024 channels) and thousands of galaxies; the numbers below are
therefore much worse than the study's, and improve steadily with size.

.. admonition:: Data credit

   The mock images use the SDSS ugriz filter curves and the kcorrect template
   basis (Blanton & Roweis 2007), which are based on SDSS data.
"""

# %%
# Images and truth maps
# ---------------------
import tempfile
from pathlib import Path

import numpy as np

from astro_cl.surveys.sdss_mock import SDSSMockSurvey

TARGETS = ["stellar_mass", "age_mw", "sfr", "gas_mass"]

survey = SDSSMockSurvey(n=96, size=32, seed=3)
record = survey[0]
print(record.images.data.shape, {name: str(record.maps[name].unit) for name in TARGETS})

# %%
# The study in one call
# ---------------------
# `~astro_cl.studies.run_picasso_study` scales the images
# (`~astro_cl.preprocess.ImageScaler`, asinh per band) and caches them with
# their truth maps, holds out a quarter of the galaxies, trains the U-Net with
# PICASSSO's loss (squared error of log10 maps, empty pixels down-weighted,
# border cropped) and augmentations (the eight symmetries of the square),
# predicts the held-out maps as `~astropy.nddata.NDData` with units, and
# measures them with `~astro_cl.tasks.MapMetrics`. PICASSSO's settings are the
# defaults (Adam, lr 1e-5 divided by 10 after epochs 8 and 10, 13 epochs,
# batch 16); the tutorial's narrow network learns faster with a larger
# learning rate.
from astro_cl.studies import run_picasso_study

out = Path(tempfile.mkdtemp(prefix="picasso-study-"))
study = run_picasso_study(
    survey, out, targets=TARGETS, test_fraction=0.25,
    unet={"width": 0.125, "epochs": 12, "batch_size": 8, "lr": 2e-3, "schedule": "constant",
          "border": 2, "validation_fraction": 0.2, "predict_uncertainty": True},
    seed=0, progress=False)
print(study)
figures, captions = study.figures()
fig = figures["training curves: unet"]

# %%
# Predicted maps
# --------------
# Per held-out galaxy, a dict of `~astropy.nddata.NDData` maps in the truth
# maps' units, each with a `~astropy.nddata.StdDevUncertainty` since the
# network also predicts a per-pixel uncertainty.
first = study.predicted[0]["stellar_mass"]
print(first.unit, first.data.shape, type(first.uncertainty).__name__)
fig = next(f for name, f in figures.items() if name.startswith("maps: typical"))

# %%
# Bias and scatter, beside the study's
# ------------------------------------
# `~astro_cl.tasks.MapMetrics` integrates each property inside an ellipse of
# two half-mass radii measured on the true stellar-mass map (sums for masses
# and SFR; PICASSSO's summed metal mass and age x mass; mass-weighted means of
# ages and metallicities), and reports the mean (mu) and standard deviation
# (sigma) of log10(true/predicted) over galaxies and over pixels, the scatter
# of a constant prediction (sigma_constant) and the ratio of the two, and
# PICASSSO's numbers where the quantity is defined as theirs.
study.table["property", "mu", "sigma", "sigma_constant", "sigma_ratio", "sigma_pixel",
            "study_mu", "study_sigma"].pprint(max_width=120)
print(f"median |delta| of the stellar mass: "
      f"{np.nanmedian(np.abs(study.metrics.delta_['stellar_mass'])):.3f} dex")

# %%
# The report
# ----------
# One HTML page: what was done, the headline numbers beside PICASSSO's, the
# figures, the tables and the provenance.
print(study.report(out / "report"))
