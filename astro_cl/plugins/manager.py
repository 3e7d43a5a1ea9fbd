"""Build the pluggy plugin manager: hook specs, built-ins, then third-party entry points."""

import importlib
import os
import sys
import warnings
from importlib.metadata import entry_points

import pluggy

from astro_cl.plugins import hookspecs

__all__ = [
    "BUILTIN_PLUGINS",
    "DISABLE_AUTOLOAD_ENV",
    "PluginSource",
    "build_plugin_manager",
    "plugin_source",
]

#: Setting this environment variable to ``1`` disables third-party autoloading.
DISABLE_AUTOLOAD_ENV = "ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD"

#: Modules that register astro_cl's own components, through the same hooks.
BUILTIN_PLUGINS = (
    "astro_cl.surveys._plugin",
    "astro_cl.preprocess._plugin",
    "astro_cl.augment._plugin",
    "astro_cl.models._plugin",
    "astro_cl.tasks._plugin",
)


class PluginSource:
    """Where a plugin came from: its name, distribution and version.

    Parameters
    ----------
    name : str
        Plugin (entry point) name.
    distribution : str
        Name of the distribution that provides it.
    version : str
        That distribution's version.
    builtin : bool
        Whether astro_cl itself provides it.
    """

    def __init__(self, name, distribution, version, builtin=False):
        self.name = name
        self.distribution = distribution
        self.version = version
        self.builtin = builtin

    def __repr__(self):
        return f"PluginSource({self.name!r}, {self.distribution!r}, {self.version!r})"


def plugin_source(pm, plugin):
    """Return the `PluginSource` recorded for a registered plugin object.

    Parameters
    ----------
    pm : `pluggy.PluginManager`
    plugin : object
        A registered plugin.

    Returns
    -------
    source : `PluginSource`
    """
    return pm._astro_cl_sources[pm.get_name(plugin)]


def _warn(message):
    from astro_cl.exceptions import PluginWarning  # imports astropy: only now

    warnings.warn(message, PluginWarning, stacklevel=3)


def build_plugin_manager(*, autoload=None):
    """Create the plugin manager with built-in and third-party plugins.

    Built-in plugins are registered exactly as third-party ones are. Each
    third-party entry point is loaded on its own, so that a broken plugin
    (import error, unknown hook) produces a `~astro_cl.exceptions.PluginWarning`
    naming it and its distribution, and is skipped.

    Parameters
    ----------
    autoload : bool, optional
        Load third-party entry points. Default: True unless the environment
        variable ``ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD`` is ``1``.

    Returns
    -------
    pm : `pluggy.PluginManager`
    """
    from astro_cl import __version__

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm._astro_cl_sources = {}
    for modname in BUILTIN_PLUGINS:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        pm._astro_cl_sources[modname] = PluginSource(modname, "astro_cl", __version__, True)
    pm.check_pending()
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() not in ("1", "true", "yes")
    if autoload:
        for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            _load_entry_point(pm, ep)
    return pm


def _describe(exc):
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _load_entry_point(pm, ep):
    dist = getattr(ep, "dist", None)
    dist_name = dist.metadata["Name"] if dist is not None else "<unknown distribution>"
    dist_version = dist.version if dist is not None else "?"
    label = f'plugin "{ep.name}" (distribution {dist_name} {dist_version})'
    if pm.has_plugin(ep.name) or ep.name in pm._astro_cl_sources:
        _warn(f"Skipping {label}: a plugin named {ep.name!r} is already registered")
        return
    # BaseException: a plugin calling sys.exit() (SystemExit) at import must not end
    # the command silently; only Ctrl-C goes through
    try:
        plugin = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        _warn(f"Error importing {label} from {ep.value!r}: {_describe(exc)}")
        sys.modules.pop(ep.module, None)
        return
    try:
        pm.register(plugin, name=ep.name)
        pm.check_pending()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        _warn(f"Skipping {label}: {_describe(exc)}")
        return
    pm._astro_cl_sources[ep.name] = PluginSource(ep.name, dist_name, dist_version)
