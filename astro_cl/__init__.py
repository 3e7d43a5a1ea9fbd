"""astro_cl: self-supervised and supervised deep learning on resolved galaxy surveys.

The package works on astropy objects (`~astropy.nddata.NDData` maps and images,
`specutils.Spectrum` cubes, `~astropy.table.QTable` catalogues) and is extended
through pluggy entry points in the ``astro_cl.plugins`` group.

Importing :mod:`astro_cl` is cheap: it imports neither torch nor astropy. The
public names below are resolved lazily on first use.
"""

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from astro_cl.exceptions import (
    AstroCLError,
    CatalogueError,
    CheckpointError,
    PluginError,
    SurveyError,
    UnknownComponentError,
)
from astro_cl.plugins.hookspecs import hookimpl

try:
    __version__ = _version("astro_cl")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# name -> module holding it; resolved on first attribute access (PEP 562).
_LAZY = {
    # the warning classes subclass astropy's, so they are made on first use
    "AstroCLWarning": "astro_cl.exceptions",
    "PluginWarning": "astro_cl.exceptions",
    "GalaxyRecord": "astro_cl.data.record",
    "ObservingMeta": "astro_cl.data.record",
    "TensorBatch": "astro_cl.data.batch",
    "Component": "astro_cl.base",
    "Survey": "astro_cl.surveys.base",
    "Augmenter": "astro_cl.augment.base",
    "Compose": "astro_cl.augment.compose",
    "Encoder": "astro_cl.models.base",
    "TorchEncoder": "astro_cl.models.torch_encoder",
    "TrainerConfig": "astro_cl.training.settings",
    "DownstreamTask": "astro_cl.tasks.base",
    "get_survey": "astro_cl.plugins.registry",
    "get_preprocessor": "astro_cl.plugins.registry",
    "get_augmenter": "astro_cl.plugins.registry",
    "get_encoder": "astro_cl.plugins.registry",
    "get_task": "astro_cl.plugins.registry",
    "get_component_class": "astro_cl.plugins.registry",
    "available_components": "astro_cl.plugins.registry",
    "load_model": "astro_cl.models.artefact",
}

__all__ = [
    "AstroCLError",
    "CatalogueError",
    "CheckpointError",
    "PluginError",
    "SurveyError",
    "UnknownComponentError",
    "__version__",
    "hookimpl",
    *_LAZY,
]


def __getattr__(name):
    try:
        module = _LAZY[name]
    except KeyError:
        msg = f"module 'astro_cl' has no attribute {name!r}"
        raise AttributeError(msg) from None
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
