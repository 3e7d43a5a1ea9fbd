"""
Reproducing the eCALIFA contrastive study on its catalogue twin
===============================================================

Martinez-Solaeche et al. (2024, A&A 688, A160) trained a SimCLR encoder on
the V500 data cubes of 895 eCALIFA galaxies and found, without any labels,
that the embedding orders galaxies by EW(Halpha), morphology, stellar
metallicity, age, stellar-mass surface density, [NII]/Halpha and stellar mass,
and separates the blue cloud, green valley and red sequence.

No eCALIFA cube can be downloaded here, so this tutorial runs the study's
pipeline on the **catalogue twin**: one mock V500 cube per row of the real
eCALIFA pyPipe3D catalogue, rendered from real galaxy templates with the
catalogue's stellar mass, SFR, morphological type, size and redshift. The
whole study is one call of the study layer,
`~astro_cl.studies.run_ecalifa_study`; every step is the study's:

1. cubes to 30-channel images (log luminosity + 29 PCA coefficients);
2. the study's augmentations and NT-Xent training;
3. the property ranking, compared with the study's order;
4. k = 2 and 3 clustering against the star-forming main sequence classes;
5. the environment test;
6. the ablation without the luminosity channel.

The sizes are tutorial sizes (a random sample of the catalogue, 24x24-spaxel
cubes, a narrow network, a few epochs). To run it at the study's size, set
``N_GALAXIES = None`` and ``SIZE = 96``, use ``width=1.0``, ``epochs=50`` and the
default augmentation amplitudes, on a GPU. With real cubes, replace the twin by
``astro_cl.get_survey("ecalifa", path=...)``: nothing else changes.
At these sizes the numbers are a demonstration of the pipeline, not a
measurement: the report below says how far they are from the study's.

.. admonition:: Data credit

   The twin uses the eCALIFA pyPipe3D catalogue (Sanchez et al. 2016, 2022;
   CALIFA: Sanchez et al. 2012, A&A 538, A8; eCALIFA: Sanchez et al. 2023, A&A
   682, A32), distributed in the EDGE-CALIFA ``edge_pydb`` package. This study
   uses data provided by the Calar Alto Legacy Integral Field Area (CALIFA)
   survey (https://califa.caha.es/), based on observations collected at the
   Centro Astronomico Hispano Aleman (CAHA) at Calar Alto.
"""

# %%
# The catalogue and its twin
# --------------------------
# The catalogue is looked for in ``$ASTRO_CL_TEST_DATA/ecalifa`` or in
# ``../shared/data/ecalifa`` beside the repository (where CI keeps it). Point
# ``ASTRO_CL_TEST_DATA`` at your own copy; without one, the tutorial falls back
# to the built-in mock population, which follows the same scaling relations.
import os
from pathlib import Path

import numpy as np
from astropy.table import QTable

from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

N_GALAXIES = 64  # None: every galaxy of the catalogue (895)
SIZE = 24        # spaxels per side (real cubes: 192 x 184)


def find_data(relative):
    """Return a data file from $ASTRO_CL_TEST_DATA or ../shared/data, or None."""
    roots = [Path(os.environ["ASTRO_CL_TEST_DATA"])] if "ASTRO_CL_TEST_DATA" in os.environ else []
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "pyproject.toml").is_file():
            roots.append(parent.parent / "shared" / "data")
            break
    return next((root / relative for root in roots if (root / relative).exists()), None)


path = find_data("ecalifa/ecalifa_global.csv")
if path is not None:
    catalogue = QTable.read(path, format="ascii.ecsv")
    usable = np.isfinite(np.asarray(catalogue["log_Mass"].value, dtype=float))
    catalogue = catalogue[usable]
    if N_GALAXIES is not None:
        pick = np.random.default_rng(1).choice(len(catalogue), N_GALAXIES, replace=False)
        catalogue = catalogue[np.sort(pick)]
    survey = ECALIFAMockSurvey(twin=catalogue, size=SIZE, seed=0)
    print(f"twin of {len(survey)} galaxies of {path.name}")
else:
    print("Note: ecalifa_global.csv not found (set ASTRO_CL_TEST_DATA); "
          "using the built-in mock population instead of the catalogue twin.")
    survey = ECALIFAMockSurvey(n=N_GALAXIES or 400, size=SIZE, seed=0)

print(survey.catalogue["Name", "type", "log_Mass", "log_SFR_Ha", "EW_Ha_cen", "environment"][:5])

# %%
# Every record carries a `specutils.Spectrum` cube with the CALIFA flux unit,
# error, bad-pixel and foreground-star masks, as the real reader gives them.
cube = survey[0].cube
print(cube.flux.shape, cube.flux.unit, cube.spectral_axis[[0, -1]].to("Angstrom"))

# %%
# The study in one call
# ---------------------
# `~astro_cl.studies.run_ecalifa_study` fits the study's preprocessing,
# `~astro_cl.preprocess.CubePCA` (rest frame, 3739-6803 A at 2 A, spaxels
# normalised at 5600-6000 A, 29 principal components plus the log-luminosity
# channel: 30 channels, cached on disk); trains `~astro_cl.models.simclr.SimCLR`
# with the study's augmentations (`~astro_cl.augment.ecalifa_views`: rotation
# and flip, translation, noise with S/N 1-10, blur, foreground-star masks and
# the "redshift" rebinning, the noise and rebinning carried through the PCA as
# they would act on the cubes; here with fewer star masks than the default); embeds
# every galaxy as the median of 3 augmented views; runs every downstream task
# through `~astro_cl.studies.run_tasks`; and trains the encoder again without
# the luminosity channel. The encoder is the study's (four convolution blocks,
# a dense head to 64 dimensions, NT-Xent at temperature 0.5, the whole
# training set as one batch), four times narrower and for a few epochs.
import tempfile
import warnings

from astro_cl.exceptions import AstroCLWarning
from astro_cl.studies import run_ecalifa_study

out = Path(tempfile.mkdtemp(prefix="ecalifa-study-"))
with warnings.catch_warnings():
    # with 64 galaxies some classes and environments are too small to score; the
    # study records which ones (study.results.info) and the report lists them
    warnings.simplefilter("ignore", AstroCLWarning)
    study = run_ecalifa_study(
        survey, out, pca={"max_spectra_per_galaxy": 60}, pca_fit_galaxies=len(survey),
        simclr={"width": 0.25, "epochs": 6, "batch_size": None}, n_views=3,
        max_shift=2, view_params={"star_p": 0.2},
        properties=["EW_Ha_cen", "type", "ZH_LW_Re_fit", "Age_LW_Re_fit", "Sigma_Mass_cen",
                    "log_NII_Ha_cen", "log_Mass", "log_SFR_Ha", "Re_kpc"],
        task_params={"property-correlation": {"n_neighbors": 5, "cv": 4, "n_bootstrap": 50,
                                              "umap_params": {"n_neighbors": 10}},
                     "environment": {"tests": ("energy",), "n_permutations": 99,
                                     "min_group": 3}},
        seed=0, progress=False)
print(study)

# %%
# What was done, and whether the embedding is usable: a collapsed embedding
# (every galaxy at nearly the same vector) would be flagged here.
for item, text in study.overview()[:5]:
    print(f"{item}: {text}\n")
print(study.results.info["embedding"]["message"])

# %%
# The 30-channel images the encoder sees (channel 0 is the log luminosity,
# then the first principal components), and its training curves.
from matplotlib.figure import Figure

first = study.images.batch([0])
fig = Figure(figsize=(9, 2.4), layout="constrained")
axes = fig.subplots(1, 4)
for ax, channel, label in zip(axes, [0, 1, 2, 3],
                              ["log luminosity", "PC 1", "PC 2", "PC 3"], strict=True):
    image = np.ma.masked_array(first.data[0, channel].numpy(), first.mask[0, 0].numpy())
    ax.imshow(image, origin="lower", cmap="viridis")
    ax.set_title(label, fontsize=9)
    ax.set_axis_off()

figures, captions = study.figures()
fig = figures["training curves: simclr"]

# %%
# Which properties does the embedding know?
# -----------------------------------------
# The ranking by cross-validated kNN score, beside the study's order, with
# Kendall's tau between the two orders.
study_order = study.results.tables["study-comparison"]
print(study_order["study_rank", "property", "measured_rank", "score"])
print(f"Kendall tau with the study's order: {study_order.meta['kendall_tau']:.2f}")
fig = figures["property ranking"]

# %%
# The UMAP projection, coloured by the best-ranked properties:
fig = next(f for name, f in figures.items() if "projection coloured by property" in name)

# %%
# Clustering along the star-forming main sequence
# -----------------------------------------------
# k-means and Gaussian mixtures with k = 2 and 3 on the embedding; the blue
# cloud (BC), green valley (GV) and red sequence (RS) come from the distance
# to a main sequence fitted to the catalogue. Purity and the adjusted Rand
# index say how well the clusters recover them.
print(study.results.tables["sfms-clustering"]["method", "n_clusters", "purity",
                                               "adjusted_rand"])
fig = figures["clusters on the SFMS plane"]

# %%
# Environment
# -----------
# Do galaxies in voids, walls, filaments and clusters sit in different parts
# of the embedding? Energy-distance tests with permutation p-values, overall
# and at matched stellar mass. With 64 galaxies the test has little power;
# the full catalogue is what the study used.
if "environment" in figures:
    print(study.results.tables["environment"]["group_a", "group_b", "conditioning", "n_a",
                                              "n_b", "p_value"])
    fig = figures["environment"]
else:
    print(study.results.info["skipped_tasks"]["environment"])

# %%
# Ablation: without the luminosity channel
# ----------------------------------------
# The study retrained without channel 0 and found almost the same ranking: the
# embedding is driven by the spectral shape, not by brightness.
print(study.ablation["property", "rank_with_luminosity", "rank_without_luminosity",
                     "delta_score"])
print(f"Kendall tau between the two rankings: {study.ablation.meta['kendall_tau']:.2f}")

# %%
# The report
# ----------
# One HTML page says what was done, puts the headline numbers beside the
# study's findings with pass/miss marks, and shows every figure and table.
index = study.report(out / "report")
for row in study.headline():
    mark = {True: "pass", False: "miss", None: "    "}[row["passed"]]
    value = f"{row['value']:.3f}" if isinstance(row["value"], float) else row["value"]
    print(f"[{mark}] {row['result']}: {value}  (study: {row['reference']})")
print(index)
