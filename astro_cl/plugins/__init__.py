"""The plugin system: pluggy hook specifications, the plugin manager and the registry.

Third-party packages extend astro_cl by declaring an entry point in the
``astro_cl.plugins`` group that points at a module (or object) with
`~astro_cl.hookimpl`-decorated functions; see :doc:`/plugins`.
"""

from astro_cl.plugins.hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec
from astro_cl.plugins.registry import (
    KINDS,
    ComponentInfo,
    available_components,
    get_augmenter,
    get_component_class,
    get_encoder,
    get_registry,
    get_survey,
    get_task,
    list_components,
    reset_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "ComponentInfo",
    "available_components",
    "get_augmenter",
    "get_component_class",
    "get_encoder",
    "get_registry",
    "get_survey",
    "get_task",
    "hookimpl",
    "hookspec",
    "list_components",
    "reset_registry",
]
