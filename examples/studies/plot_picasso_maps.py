"""
PICASSSO: from ugriz images to resolved property maps
=====================================================

Buck & Wolf (2021, arXiv:2111.01154) trained a U-Net to turn SDSS-like ugriz
images of simulated galaxies into maps of stellar mass, age, metallicity, star
formation and gas, and measured the bias and scatter of the recovered
quantities inside two half-mass radii. This tutorial runs the same pipeline on
the SDSS-like mock survey, whose truth maps are exactly the maps that produced
the pixels:

1. ugriz cutouts and their truth maps from `~astro_cl.surveys.sdss_mock.SDSSMockSurvey`;
2. a U-Net (`~astro_cl.models.unet.CNNRegressor`) trained on log10 maps with the
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
import astropy.units as u
import numpy as np
import torch

from astro_cl.data.batch import TensorBatch
from astro_cl.preprocess import ImageScaler
from astro_cl.surveys.sdss_mock import SDSSMockSurvey

TARGETS = ["stellar_mass", "age_mw", "sfr", "gas_mass"]

survey = SDSSMockSurvey(n=96, size=32, seed=3)
records = list(survey)                     # render once, keep in memory
train_ids, test_ids = survey.train_test_split(test_size=0.25, seed=0)
print(len(train_ids), "training and", len(test_ids), "test galaxies")
print({name: str(records[0].maps[name].unit) for name in TARGETS})


# %%
# The network predicts log10 of each map. Surface densities of 1e8 Msun/kpc2
# mean targets near 8, which a tiny network trained for a few epochs cannot
# reach from its initial output near 0; so each map is expressed in units of
# its median over the training galaxies (a scaled astropy unit, so the
# predicted maps come back with correct physical units).
train_records = [records[survey.index_of(i)] for i in train_ids]
units = {}
for t in TARGETS:
    values = np.concatenate([r.maps[t].data.ravel() for r in train_records])
    median = np.median(values[values > 0])
    units[t] = u.CompositeUnit(float(f"{median:.3g}"), [train_records[0].maps[t].unit], [1])
print({t: str(unit) for t, unit in units.items()})


def as_batch(ids, scaler):
    """Scaled images and the target maps of some galaxies as a TensorBatch."""
    recs = [records[survey.index_of(i)] for i in ids]
    data, mask, _ = scaler.transform(recs)
    targets = np.stack([[(r.maps[t].data * r.maps[t].unit).to_value(units[t]) for t in TARGETS]
                        for r in recs]).astype(np.float32)
    return TensorBatch(data=torch.from_numpy(data), mask=torch.from_numpy(mask), ids=list(ids),
                       targets=torch.from_numpy(targets),
                       target_mask=torch.from_numpy(~np.isfinite(targets)),
                       meta={"target_names": TARGETS,
                             "target_units": [units[t].to_string() for t in TARGETS]})


scaler = ImageScaler(method="asinh").fit(train_records)
train, test = as_batch(train_ids, scaler), as_batch(test_ids, scaler)
print(train.data.shape, "->", train.targets.shape)

# %%
# Training the U-Net
# ------------------
# PICASSSO's settings are the defaults (Adam, lr 1e-5 divided by 10 after
# epochs 8 and 10, 13 epochs, batch 16); the tutorial's narrow network learns
# faster with a larger learning rate.
from astro_cl.augment import picasso_augmentations
from astro_cl.models.unet import CNNRegressor
from astro_cl.report.figures import plot_training_curves

unet = CNNRegressor(width=0.125, epochs=12, batch_size=8, lr=2e-3, schedule="constant",
                    border=2, validation_fraction=0.2, augmenter=picasso_augmentations(),
                    predict_uncertainty=True, seed=0, progress=False)
unet.fit(train)
fig = plot_training_curves(unet.history_)

# %%
# Predicted maps
# --------------
# `~astro_cl.models.unet.CNNRegressor.predict_maps` returns, per galaxy, a
# dict of `~astropy.nddata.NDData` maps in the training targets' units, with a
# `~astropy.nddata.StdDevUncertainty` since the network also predicts a
# per-pixel uncertainty.
predicted = unet.predict_maps(test)
first = predicted[0]["stellar_mass"]
print(first.unit, first.data.shape, type(first.uncertainty).__name__)

from astro_cl.report.figures import plot_map_panels

truth = [records[survey.index_of(i)].maps for i in test_ids]
fig = plot_map_panels(truth[0], predicted[0], names=["stellar_mass", "age_mw", "sfr"])

# %%
# Bias and scatter, beside the study's
# ------------------------------------
# `~astro_cl.tasks.MapMetrics` integrates each property inside an ellipse of
# two half-mass radii measured on the true stellar-mass map (sums for masses
# and SFR, mass-weighted means for ages and metallicities), and reports the
# mean (mu) and standard deviation (sigma) of log10(true/predicted) over
# galaxies and over pixels, with PICASSSO's numbers in the last columns.
from astro_cl.tasks import MapMetrics

metrics = MapMetrics(properties=TARGETS).fit(predicted, truth).evaluate()
metrics["label", "n_galaxies", "mu", "sigma", "sigma_pixel", "study_mu", "study_sigma"].pprint(
    max_width=120)
