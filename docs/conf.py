"""Sphinx configuration for astro_cl."""

import os
from importlib.metadata import version as _version

os.environ.setdefault("MPLBACKEND", "Agg")

project = "astro_cl"
author = "The astro_cl developers"
copyright = "2026, The astro_cl developers"
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

def _figure_scraper(block, block_vars, gallery_conf):
    """Scrape matplotlib figures that are not managed by pyplot.

    astro_cl's report functions return `matplotlib.figure.Figure` objects built
    without pyplot (they never touch a global figure manager), so the default
    matplotlib scraper does not see them. This scraper shows every such figure
    that an example binds to a top-level name, once, after the block that made it.
    """
    import weakref

    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = block_vars.setdefault("_astro_cl_seen_figures", weakref.WeakSet())
    paths = []
    for value in list(block_vars["example_globals"].values()):
        if isinstance(value, Figure) and value not in seen and value.canvas.manager is None:
            seen.add(value)
            path = next(block_vars["image_path_iterator"])
            value.savefig(path, dpi=90)
            paths.append(path)
    if not paths:
        return ""
    return figure_rst(paths, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|conftest|_plugin_package)",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "subsection_order": [
        "../examples/getting_started",
        "../examples/studies",
        "../examples/resolved",
        "../examples/cross_modal",
        "../examples/extending",
    ],
    "image_scrapers": ("matplotlib", _figure_scraper),
    "matplotlib_animations": False,
    "show_memory": False,
}

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "pydata_sphinx_theme"
html_static_path = []
html_title = f"astro_cl {release}"
html_theme_options = {"navigation_with_keys": False}
suppress_warnings = ["config.cache"]
