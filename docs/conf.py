"""Sphinx configuration for astro_cl."""

import os
from importlib.metadata import version as _version

os.environ.setdefault("MPLBACKEND", "Agg")

project = "astro_cl"
author = "The astro_cl developers"
copyright = "2026, The astro_cl developers"  # noqa: A001
release = _version("astro_cl")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "pytest_doctestplus.sphinx.doctestplus",
]

numpydoc_show_class_members = False
numpydoc_xref_param_type = False
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
autodoc_typehints = "none"
default_role = "obj"
nitpicky = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "specutils": ("https://specutils.readthedocs.io/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "pluggy": ("https://pluggy.readthedocs.io/en/stable/", None),
}
# The docs build offline (CI has no route to the inventories): cross-references
# to external projects render as plain text there instead of failing.
if os.environ.get("ASTRO_CL_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|conftest|_plugin_package)",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "pydata_sphinx_theme"
html_static_path = []
html_title = f"astro_cl {release}"
html_theme_options = {"navigation_with_keys": False}
suppress_warnings = ["config.cache"]
