"""
Bringing your own data: a folder of cutouts
===========================================

Many astronomers start from cutouts they already have: JPEG or PNG colour
images from a survey viewer, or FITS stamps. The ``image-folder`` survey reads
any folder of JPEG/PNG/FITS files plus an optional CSV of labels, so that the
whole toolkit works on them at once. This tutorial uses **real SDSS galaxies**:
gri colour cutouts with their Galaxy Zoo 1 morphological classes, trains a
small contrastive encoder, and searches for look-alike galaxies.

.. admonition:: Data credit

   Images: Sloan Digital Sky Survey (SDSS). Funding for the SDSS has been
   provided by the Alfred P. Sloan Foundation, the Participating
   Institutions, the National Science Foundation and the U.S. Department of
   Energy (https://www.sdss.org). Morphologies: Galaxy Zoo 1 (Lintott et al.
   2008, MNRAS 389, 1179; data release Lintott et al. 2011, MNRAS 410, 166).

To use your own folder, point ``path`` at it::

    survey = astro_cl.get_survey("image-folder", path="my_cutouts/",
                                 labels="my_cutouts/labels.csv", size=64)

where ``labels.csv`` has an ``id`` (or ``objid``, ``filename``, ``name``) column
matching the file names without extension, and any other columns you want to
analyse. Without a CSV the catalogue lists only the files.
"""

# %%
# Finding the images
# ------------------
# The sample is looked for in ``$ASTRO_CL_TEST_DATA/gz1`` or in
# ``../shared/data/gz1`` beside the repository (where CI keeps it). It holds
# 4,615 cutouts; a labels file listing a few of them selects a subset
# (``require_labels=True`` leaves out the images without a row).
import os
import tempfile
from pathlib import Path

import numpy as np
from astropy.table import Table

import astro_cl

N_PER_CLASS = 30  # the tutorial's sample: 30 ellipticals, 30 spirals, 30 edge-on
CLASSES = {0: "elliptical", 1: "spiral", 2: "spiral", 3: "edge-on"}


def find_data(relative):
    """Return a data folder from $ASTRO_CL_TEST_DATA or ../shared/data, or None."""
    roots = [Path(os.environ["ASTRO_CL_TEST_DATA"])] if "ASTRO_CL_TEST_DATA" in os.environ else []
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "pyproject.toml").is_file():
            roots.append(parent.parent / "shared" / "data")
            break
    return next((root / relative for root in roots if (root / relative).exists()), None)


gz1 = find_data("gz1")
if gz1 is not None:
    labels = Table.read(gz1 / "labels.csv", format="ascii.csv",
                        converters={"objid": str})
    labels["morphology"] = [CLASSES.get(int(c), "other") for c in labels["class"]]
    rng = np.random.default_rng(0)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels["morphology"] == m), N_PER_CLASS,
                                      replace=False)
                           for m in ("elliptical", "spiral", "edge-on")])
    subset = Path(tempfile.mkdtemp()) / "labels.csv"
    labels[np.sort(keep)].write(subset, format="ascii.csv")
    survey = astro_cl.get_survey("image-folder", path=gz1, labels=subset,
                                 require_labels=True, size=64)
    label_column = "morphology"
    print(f"{len(survey)} SDSS galaxies from {gz1}")
else:
    print("Note: the Galaxy Zoo sample was not found (set ASTRO_CL_TEST_DATA); "
          "using the built-in SDSS-like mock survey instead.")
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    survey = SDSSMockSurvey(n=90, size=64, seed=0)
    label_column = "type"

print(survey.catalogue[:3])
record = survey[0]
print(record.bands, record.images.data.shape, record.images.unit)

# %%
# Training on the colour images
# -----------------------------
# The JPEG pixels are scaled to 0-1 already; the encoder gets the three
# channels as they are. Augmentations: the symmetries of the square and a
# small random crop (galaxies are centred in the cutouts).

from astro_cl.augment.config import build_augmenter
from astro_cl.models.simclr import SimCLR

batch = survey.to_tensors()
augmenter = build_augmenter([
    {"name": "random-rot90", "transpose": True},
    {"name": "random-flip"},
    {"name": "gaussian-blur", "p": 0.3, "sigma": 1.0},
])
encoder = SimCLR(width=0.25, augmenter=augmenter)
encoder.fit(batch, trainer={"epochs": 5, "batch_size": 45, "seed": 0, "progress": False})
embeddings = encoder.embed(batch)
print(embeddings.meta["survey"], embeddings["embedding"].shape)

# %%
# How well does the embedding know the morphology?
# -------------------------------------------------
# A kNN classifier on the embedding, cross-validated, scored as the
# chance-corrected balanced accuracy (0 = chance, 1 = perfect):
from astro_cl.tasks import PropertyCorrelation

morph = PropertyCorrelation(properties=[label_column], n_neighbors=5, cv=3, n_bootstrap=20,
                            projection=None, seed=0)
print(morph.fit(embeddings, survey.catalogue).evaluate()["property", "metric", "score"])

# %%
# Similarity search
# -----------------
# The most similar galaxies (cosine similarity of the embeddings) to three
# query galaxies, one of each class. For catalogues of millions, install
# ``faiss`` and the same call uses it.
from astro_cl.report.figures import plot_similarity_grid
from astro_cl.tasks import SimilaritySearch

column = np.asarray(survey.catalogue[label_column]).astype(str)
queries = [survey.ids[int(np.flatnonzero(column == c)[0])] for c in np.unique(column)[:3]]
search = SimilaritySearch(n_neighbors=5).fit(embeddings, survey.catalogue)
hits = search.query(ids=queries)
print(hits[:5])
thumbnails = {gid: survey[gid].images for gid in set(hits["id"]) | set(queries)}
fig = plot_similarity_grid(queries, hits, thumbnails)
