"""The component registry: names -> classes, filled through the plugin hooks.

Each kind is collected lazily the first time it is asked for, so that looking
up a survey does not import torch (models and augmenters do).
"""

import threading
import warnings
from dataclasses import dataclass

from astro_cl.exceptions import PluginError, PluginWarning, UnknownComponentError

__all__ = [
    "KINDS",
    "ComponentInfo",
    "Registry",
    "available_components",
    "get_augmenter",
    "get_component_class",
    "get_encoder",
    "get_registry",
    "get_survey",
    "get_task",
    "list_components",
    "reset_registry",
]

#: kind -> (hook name, dotted path of the base class)
KINDS = {
    "survey": ("astro_cl_register_surveys", "astro_cl.surveys.base.Survey"),
    "augmenter": ("astro_cl_register_augmenters", "astro_cl.augment.base.Augmenter"),
    "encoder": ("astro_cl_register_encoders", "astro_cl.models.base.Encoder"),
    "task": ("astro_cl_register_tasks", "astro_cl.tasks.base.DownstreamTask"),
}


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component and its provenance.

    Parameters
    ----------
    kind : str
        ``"survey"``, ``"augmenter"``, ``"encoder"`` or ``"task"``.
    name : str
        Registered name.
    cls : type
        The component class.
    plugin : str
        Name of the plugin that registered it.
    distribution : str
        Distribution providing the plugin.
    version : str
        Version of that distribution.
    builtin : bool
        Whether astro_cl itself provides it.
    """

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str
    version: str
    builtin: bool

    @property
    def description(self):
        """str: the class's one-line description."""
        text = getattr(self.cls, "description", "") or (self.cls.__doc__ or "").strip()
        return text.splitlines()[0] if text else ""


def _import_base(path):
    import importlib

    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


class Registry:
    """Registered components of every kind, collected from a plugin manager.

    Parameters
    ----------
    plugin_manager : `pluggy.PluginManager`, optional
        Default: `~astro_cl.plugins.manager.build_plugin_manager`.
    """

    def __init__(self, plugin_manager=None):
        if plugin_manager is None:
            from astro_cl.plugins.manager import build_plugin_manager

            plugin_manager = build_plugin_manager()
        self.plugin_manager = plugin_manager
        self._kinds = {}
        self._lock = threading.RLock()

    def components(self, kind):
        """Return the registered components of one kind.

        Parameters
        ----------
        kind : str
            One of `KINDS`.

        Returns
        -------
        components : dict of str to `ComponentInfo`
        """
        if kind not in KINDS:
            msg = f"unknown component kind {kind!r}; kinds are {sorted(KINDS)}"
            raise ValueError(msg)
        with self._lock:
            if kind not in self._kinds:
                self._kinds[kind] = self._collect(kind)
            return self._kinds[kind]

    def _collect(self, kind):
        from astro_cl.plugins.manager import plugin_source

        pm = self.plugin_manager
        hook_name, base_path = KINDS[kind]
        base = _import_base(base_path)
        found = {}
        hook = getattr(pm.hook, hook_name)
        # Built-ins first, so that they keep their names; and one plugin at a
        # time, so that a raising hook only loses its own plugin.
        impls = sorted(hook.get_hookimpls(),
                       key=lambda impl: not plugin_source(pm, impl.plugin).builtin)
        for impl in impls:
            source = plugin_source(pm, impl.plugin)
            label = (f'plugin "{source.name}" (distribution {source.distribution} '
                     f"{source.version})")
            staged = {}

            def register(cls, _staged=staged, _label=label, _source=source):
                name = getattr(cls, "name", None) if isinstance(cls, type) else None
                if not isinstance(cls, type) or not issubclass(cls, base):
                    msg = (f"{_label} registered {cls!r} as a {kind}, but it does not "
                           f"subclass {base.__module__}.{base.__qualname__}")
                    raise PluginError(msg)
                if not isinstance(name, str) or not name:
                    msg = f"{_label} registered {cls.__qualname__} without a 'name' class attribute"
                    raise PluginError(msg)
                if name in found or name in _staged:
                    other = (found.get(name) or _staged[name])
                    msg = (f"{_label} registered a {kind} named {name!r}, but that name is "
                           f"already taken by {other.cls.__module__}.{other.cls.__qualname__} "
                           f"from {other.distribution}")
                    raise PluginError(msg)
                _staged[name] = ComponentInfo(kind, name, cls, _source.name,
                                              _source.distribution, _source.version,
                                              _source.builtin)

            try:
                impl.function(register=register)
            except Exception as exc:
                if source.builtin:
                    raise
                detail = str(exc) if isinstance(exc, PluginError) else (
                    f"hook {hook_name} raised {type(exc).__name__}: {exc}")
                warnings.warn(f"Skipping the {kind}s of {label}: {detail}", PluginWarning,
                              stacklevel=4)
                continue
            found.update(staged)
        return dict(sorted(found.items()))

    def get(self, kind, name):
        """Return the class registered under a name.

        Parameters
        ----------
        kind : str
        name : str

        Returns
        -------
        cls : type

        Raises
        ------
        astro_cl.exceptions.UnknownComponentError
            Listing the available names of that kind.
        """
        comps = self.components(kind)
        try:
            return comps[name].cls
        except KeyError:
            avail = ", ".join(comps) or "none"
            msg = f"no {kind} named {name!r}; available {kind}s: {avail}"
            raise UnknownComponentError(msg) from None


_registry = None
_registry_lock = threading.Lock()


def get_registry():
    """Return the process-wide `Registry`, building it on first use.

    Returns
    -------
    registry : `Registry`
    """
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def reset_registry():
    """Forget the process-wide registry, so that plugins are loaded again on next use."""
    global _registry
    with _registry_lock:
        _registry = None


def available_components(kind):
    """Return the registered names of one kind.

    Parameters
    ----------
    kind : {"survey", "augmenter", "encoder", "task"}

    Returns
    -------
    names : list of str
    """
    return list(get_registry().components(kind))


def list_components(kinds=None):
    """Return every registered component with its provenance.

    Parameters
    ----------
    kinds : sequence of str, optional
        Restrict to these kinds (default: all).

    Returns
    -------
    components : list of `ComponentInfo`
    """
    reg = get_registry()
    return [info for kind in (kinds or KINDS) for info in reg.components(kind).values()]


def get_component_class(kind, name):
    """Return the class registered under ``name`` for ``kind``.

    Parameters
    ----------
    kind : {"survey", "augmenter", "encoder", "task"}
    name : str

    Returns
    -------
    cls : type
    """
    return get_registry().get(kind, name)


def get_survey(name, **params):
    """Create and open a survey by name.

    Parameters
    ----------
    name : str
        Registered survey name (``astro-cl plugins`` lists them).
    **params
        Survey configuration (e.g. ``path=``).

    Returns
    -------
    survey : `~astro_cl.surveys.Survey`
        Opened: its catalogue has been read, so bad paths fail here.
    """
    return get_component_class("survey", name)(**params).open()


def get_augmenter(name, **params):
    """Create an augmenter by name.

    Parameters
    ----------
    name : str
    **params
        Augmenter configuration.

    Returns
    -------
    augmenter : `~astro_cl.augment.Augmenter`
    """
    return get_component_class("augmenter", name)(**params)


def get_encoder(name, **params):
    """Create an encoder by name.

    Parameters
    ----------
    name : str
    **params
        Model configuration.

    Returns
    -------
    encoder : `~astro_cl.models.Encoder`
    """
    return get_component_class("encoder", name)(**params)


def get_task(name, **params):
    """Create a downstream task by name.

    Parameters
    ----------
    name : str
    **params
        Task configuration.

    Returns
    -------
    task : `~astro_cl.tasks.DownstreamTask`
    """
    return get_component_class("task", name)(**params)
