"""The plugin system: pluggy hook specifications, the plugin manager and the registry.

Third-party packages extend astro_cl by declaring an entry point in the
``astro_cl.plugins`` group that points at a module (or object) with
`~astro_cl.hookimpl`-decorated functions; see :doc:`/plugins`.
"""

from importlib import import_module as _import_module

from astro_cl.plugins.hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec
from astro_cl.plugins.registry import (
    KINDS,
    ComponentInfo,
    available_components,
    get_augmenter,
    get_component_class,
    get_encoder,
    get_preprocessor,
    get_registry,
    get_survey,
    get_task,
    list_components,
    register_component,
    reset_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "ComponentInfo",
    "ComponentSummary",
    "available_components",
    "component_summaries",
    "get_augmenter",
    "get_component_class",
    "get_encoder",
    "get_preprocessor",
    "get_registry",
    "get_survey",
    "get_task",
    "hookimpl",
    "hookspec",
    "list_components",
    "register_component",
    "reset_registry",
]

# The listing of ``astro-cl plugins`` parses source files (ast): imported on
# first use, not by ``import astro_cl``.
_LAZY = {"ComponentSummary": "astro_cl.plugins._builtins",
         "component_summaries": "astro_cl.plugins._builtins"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'astro_cl.plugins' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
