"""
Writing a survey plugin
=======================

A survey plugin is a small package of its own: astro_cl finds it through an
entry point, and from then on ``astro_cl.get_survey("toy", path=...)``,
``astro-cl plugins`` and every training and analysis step work with it. This
page walks through the complete example package that lives in the
repository under ``tests/example_plugin`` -- the same code that the test suite
installs and runs, so it cannot go stale.

The package layout::

    astro-cl-toy/
    ├── pyproject.toml          # declares the entry point
    ├── conftest.py             # lets pytest import the package from a checkout
    ├── astro_cl_toy/
    │   └── __init__.py         # the reader and the hook
    └── tests/
        └── test_astro_cl_toy.py

1. The entry point
------------------
One table in ``pyproject.toml`` is the whole plugin contract: astro_cl loads
every module named in the ``astro_cl.plugins`` entry-point group.

.. literalinclude:: ../../../tests/example_plugin/pyproject.toml
   :language: toml

2. The reader and the hook
--------------------------
A survey subclasses `~astro_cl.surveys.Survey`, declares a unique ``name``,
stores its keyword-only parameters, and implements two methods: ``_open`` reads
the catalogue (an `~astropy.table.QTable` with an ``id`` column, not the
data) and ``_read_record`` reads one galaxy into a
`~astro_cl.data.GalaxyRecord`. The hook, decorated with ``astro_cl.hookimpl``,
registers the class.

.. literalinclude:: ../../../tests/example_plugin/astro_cl_toy/__init__.py
   :language: python

A reader that only calls NumPy and reads its own files may also declare
``thread_safe = True``: `~astro_cl.preprocess.PreprocessedCache` then reads
several galaxies at once when asked for ``workers=2`` or more. Leave it False
(the default) if reading a record changes process-wide state, such as
warnings filters (``warnings.catch_warnings``) or astropy's enabled units.

3. Tests
--------
`astro_cl.testing.check_survey` checks the contract (catalogue, ids, records,
units, masks, batching) with messages that say what is wrong; the plugin's own
tests call it on a few tiny fixture files.

.. literalinclude:: ../../../tests/example_plugin/tests/test_astro_cl_toy.py
   :language: python

4. Install and use it
---------------------
.. code-block:: bash

   pip install -e tests/example_plugin       # or: pip install astro-cl-toy
   astro-cl plugins                          # lists "toy" with its distribution
   python -m pytest tests/example_plugin     # the plugin's own tests

Below, the same steps run in this page: we make the package importable (which
``pip install`` does for you), write three galaxies in its format, and use it.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.table import QTable


def find_repository():
    """The repository root (the folder with pyproject.toml) above the working directory."""
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "tests" / "example_plugin").is_dir():
            return parent
    raise FileNotFoundError("run this tutorial from inside the astro_cl repository")


sys.path.insert(0, str(find_repository() / "tests" / "example_plugin"))
from astro_cl_toy import ToySurvey, astro_cl_register_surveys

folder = Path(tempfile.mkdtemp()) / "toy"
folder.mkdir()
rng = np.random.default_rng(0)
for gid in ("gal1", "gal2", "gal3"):
    np.save(folder / f"{gid}.npy", rng.lognormal(size=(5, 24, 24)).astype(np.float32))
QTable({"id": ["gal1", "gal2", "gal3"], "redshift": [0.01, 0.02, 0.03]}).write(
    folder / "catalogue.csv", format="ascii.csv")

# %%
# The conformance check passes, and the survey behaves like any built-in one:
from astro_cl.testing import check_survey

survey = ToySurvey(path=folder)
check_survey(survey)
print(survey)
print(survey.catalogue)
record = survey["gal2"]
print(record.bands, record.images.unit, record.observing.redshift)
print(survey.to_tensors().data.shape)

# %%
# What astro_cl does at start-up: call every plugin's hook with a ``register``
# function. Once the package is installed, ``astro_cl.get_survey("toy",
# path=folder)`` returns this survey.
registered = []
astro_cl_register_surveys(register=registered.append)
print(registered)

# %%
# Everything downstream works unchanged, e.g. a similarity search on the raw
# pixels, drawn with the report's thumbnail function:
from astro_cl.report.figures import plot_similarity_grid
from astro_cl.tasks import SimilaritySearch

pixels = survey.to_tensors().data.flatten(1).numpy()
search = SimilaritySearch(n_neighbors=2).fit(pixels, survey.catalogue)
hits = search.query(ids=["gal1"])
print(hits)
fig = plot_similarity_grid(["gal1"], hits, {r.id: r.images for r in survey})
