"""The component registry: names -> classes, filled through the plugin hooks.

Each kind is collected lazily the first time it is asked for, so that looking
up a survey does not import torch (models and augmenters do). Classes can
also be registered at run time, without a plugin (`register_component`).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from astro_cl.exceptions import PluginError, UnknownComponentError

if TYPE_CHECKING:
    import pluggy

    from astro_cl.augment.base import Augmenter
    from astro_cl.base import Component
    from astro_cl.models.base import Encoder
    from astro_cl.plugins.manager import PluginSource
    from astro_cl.surveys.base import Survey
    from astro_cl.tasks.base import DownstreamTask

__all__ = [
    "KINDS",
    "RUNTIME_DISTRIBUTION",
    "ComponentInfo",
    "Registry",
    "available_components",
    "get_augmenter",
    "get_component_class",
    "get_encoder",
    "get_preprocessor",
    "get_registry",
    "get_survey",
    "get_task",
    "list_components",
    "register_component",
    "reset_registry",
    "runtime_registrations",
]

_C = TypeVar("_C", bound="type[Component]")

#: kind -> (hook name, dotted path of the base class), in the order of the data flow
KINDS: dict[str, tuple[str, str]] = {
    "survey": ("astro_cl_register_surveys", "astro_cl.surveys.base.Survey"),
    "preprocessor": ("astro_cl_register_preprocessors", "astro_cl.preprocess.base.Preprocessor"),
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
        One of `KINDS`: ``"survey"``, ``"preprocessor"``, ``"augmenter"``,
        ``"encoder"`` or ``"task"``.
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
    cls: type[Component]
    plugin: str
    distribution: str
    version: str
    builtin: bool

    @property
    def description(self) -> str:
        """str: the class's one-line description."""
        text = getattr(self.cls, "description", "") or (self.cls.__doc__ or "").strip()
        return text.splitlines()[0] if text else ""


def _import_base(path: str) -> type[Component]:
    import importlib

    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _check_class(kind: str, cls: object, who: str) -> str:
    """Raise `PluginError` unless ``cls`` is a named subclass of ``kind``'s interface."""
    base = _import_base(KINDS[kind][1])
    name = getattr(cls, "name", None) if isinstance(cls, type) else None
    if not isinstance(cls, type) or not issubclass(cls, base):
        msg = (f"{who} registered {cls!r} as a {kind}, but it does not "
               f"subclass {base.__module__}.{base.__qualname__}")
        raise PluginError(msg)
    if not isinstance(name, str) or not name:
        msg = f"{who} registered {cls.__qualname__} without a 'name' class attribute"
        raise PluginError(msg)
    return name


#: The ``distribution`` of the classes registered with `register_component`.
RUNTIME_DISTRIBUTION = "(registered at run time)"

#: ``(kind, cls)`` registered with `register_component`, in order; every
#: registry built in this process includes them, after the plugins' own.
_RUNTIME: list[tuple[str, type[Component]]] = []


class Registry:
    """Registered components of every kind, collected from a plugin manager.

    Parameters
    ----------
    plugin_manager : `pluggy.PluginManager`, optional
        Default: `~astro_cl.plugins.manager.build_plugin_manager`.
    """

    def __init__(self, plugin_manager: pluggy.PluginManager | None = None) -> None:
        if plugin_manager is None:
            from astro_cl.plugins.manager import build_plugin_manager

            plugin_manager = build_plugin_manager()
        self.plugin_manager = plugin_manager
        self._kinds: dict[str, dict[str, ComponentInfo]] = {}
        self._collecting: set[str] = set()  # kinds whose hooks are running
        self._lock = threading.RLock()

    def components(self, kind: str) -> dict[str, ComponentInfo]:
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
            if kind in self._collecting:
                msg = (f"the {kind}s were asked for while the {KINDS[kind][0]} hooks run "
                       "(by a hook calling register_component or a get_* function?); a hook "
                       "registers its classes by calling its register argument")
                raise PluginError(msg)
            if kind not in self._kinds:
                self._collecting.add(kind)
                try:
                    self._kinds[kind] = self._collect(kind)
                finally:
                    self._collecting.discard(kind)
            return self._kinds[kind]

    def _collect(self, kind: str) -> dict[str, ComponentInfo]:
        from astro_cl.plugins.manager import plugin_source

        pm = self.plugin_manager
        hook_name, _ = KINDS[kind]
        found: dict[str, ComponentInfo] = {}
        hook = getattr(pm.hook, hook_name)
        # Built-ins first, so that they keep their names; and one plugin at a
        # time, so that a raising hook only loses its own plugin.
        impls = sorted(hook.get_hookimpls(),
                       key=lambda impl: not plugin_source(pm, impl.plugin).builtin)
        for impl in impls:
            source = plugin_source(pm, impl.plugin)
            label = (f'plugin "{source.name}" (distribution {source.distribution} '
                     f"{source.version})")
            staged: dict[str, ComponentInfo] = {}

            def register(cls: type[Component], _staged: dict[str, ComponentInfo] = staged,
                         _label: str = label, _source: PluginSource = source) -> None:
                name = _check_class(kind, cls, _label)
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
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a plugin's sys.exit() must not end the command
                if source.builtin:
                    raise
                detail = str(exc) if isinstance(exc, PluginError) else (
                    f"hook {hook_name} raised {type(exc).__name__}: {exc}")
                _warn(f"Skipping the {kind}s of {label}: {detail}")
                continue
            found.update(staged)
        for kind_, cls in list(_RUNTIME):
            if kind_ != kind:
                continue
            other = found.get(cls.name)
            if other is not None and other.cls is not cls:
                # a plugin loaded since took the name: the plugin keeps it
                _warn(f"Skipping the {kind} {cls.__module__}.{cls.__qualname__} registered at "
                      f"run time: a plugin of {other.distribution} registered the name "
                      f"{cls.name!r} for {other.cls.__module__}.{other.cls.__qualname__}")
                continue
            found[cls.name] = _runtime_info(kind, cls)
        return dict(sorted(found.items()))

    def add(self, kind: str, cls: type[Component]) -> ComponentInfo:
        """Register a class of ``kind`` in this registry only (see `register_component`).

        Parameters
        ----------
        kind : str
            One of `KINDS`.
        cls : type
            A subclass of that kind's interface with a ``name``.

        Returns
        -------
        info : `ComponentInfo`

        Raises
        ------
        astro_cl.exceptions.PluginError
            If ``cls`` is not a named subclass of the interface, or its name
            is taken by another class of that kind.
        """
        if kind not in KINDS:
            msg = f"unknown component kind {kind!r}; kinds are {sorted(KINDS)}"
            raise ValueError(msg)
        name = _check_class(kind, cls, "register_component()")
        with self._lock:
            comps = self.components(kind)
            other = comps.get(name)
            if other is not None and other.cls is not cls:
                msg = (f"register_component(): the {kind} name {name!r} of "
                       f"{cls.__module__}.{cls.__qualname__} is already taken by "
                       f"{other.cls.__module__}.{other.cls.__qualname__} from "
                       f"{other.distribution}; choose another name")
                raise PluginError(msg)
            info = other or _runtime_info(kind, cls)
            self._kinds[kind] = dict(sorted({**comps, name: info}.items()))
            return info

    def get(self, kind: str, name: str) -> type[Component]:
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


def _runtime_info(kind: str, cls: type[Component]) -> ComponentInfo:
    return ComponentInfo(kind, cls.name, cls, cls.__module__, RUNTIME_DISTRIBUTION, "", False)


def _warn(message: str) -> None:
    from astro_cl.exceptions import PluginWarning  # imports astropy: only now

    warnings.warn(message, PluginWarning, stacklevel=5)


_registry: Registry | None = None
_registry_lock = threading.Lock()
#: Set while this thread builds the process-wide registry (loading the plugins).
_building = threading.local()


def get_registry() -> Registry:
    """Return the process-wide `Registry`, building it on first use.

    Returns
    -------
    registry : `Registry`
    """
    global _registry
    if getattr(_building, "active", False):
        # a plugin module being imported while the registry is built asked for it
        msg = ("the astro_cl registry was asked for while the plugins are being loaded (by "
               "the import of a plugin module, e.g. a register_preprocessor decorator); a "
               "plugin registers its classes through its astro_cl_register_* hooks instead")
        raise PluginError(msg)
    with _registry_lock:
        if _registry is None:
            _building.active = True
            try:
                _registry = Registry()
            finally:
                _building.active = False
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry, so that plugins are loaded again on next use.

    Classes registered with `register_component` stay registered.
    """
    global _registry
    with _registry_lock:
        _registry = None


def available_components(kind: str) -> list[str]:
    """Return the registered names of one kind.

    Parameters
    ----------
    kind : {"survey", "preprocessor", "augmenter", "encoder", "task"}

    Returns
    -------
    names : list of str
    """
    return list(get_registry().components(kind))


def list_components(kinds: Sequence[str] | None = None) -> list[ComponentInfo]:
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


# the kinds whose interface this module may name (not "preprocessor": see
# get_preprocessor) give their class type to a type checker
@overload
def get_component_class(kind: Literal["survey"], name: str) -> type[Survey]: ...


@overload
def get_component_class(kind: Literal["augmenter"], name: str) -> type[Augmenter]: ...


@overload
def get_component_class(kind: Literal["encoder"], name: str) -> type[Encoder]: ...


@overload
def get_component_class(kind: Literal["task"], name: str) -> type[DownstreamTask]: ...


@overload
def get_component_class(kind: str, name: str) -> type[Component]: ...


def get_component_class(kind: str, name: str) -> type[Component]:
    """Return the class registered under ``name`` for ``kind``.

    Parameters
    ----------
    kind : {"survey", "preprocessor", "augmenter", "encoder", "task"}
    name : str

    Returns
    -------
    cls : type
    """
    return get_registry().get(kind, name)


def register_component(kind: str, cls: _C) -> _C:
    """Register a component class at run time, without a plugin (usable as a decorator).

    For classes defined in a script or a notebook. The class is checked as a
    plugin's would be and registered in the process-wide registry, and in
    every registry built later in this process (`reset_registry` keeps it); a
    plugin loaded later that registers the same name keeps it. A package
    should declare a plugin instead (see :doc:`/plugins`): its classes are
    then listed by ``astro-cl plugins`` and available in every process.

    Parameters
    ----------
    kind : {"survey", "preprocessor", "augmenter", "encoder", "task"}
    cls : type
        A subclass of the kind's interface with a unique ``name``.

    Returns
    -------
    cls : type
        The class itself. Registering it again does nothing.

    Raises
    ------
    astro_cl.exceptions.PluginError
        If ``cls`` is not a named subclass of the interface, or another class
        of that kind has its name.
    ValueError
        If ``kind`` is not one of `KINDS`.
    """
    if kind not in KINDS:  # before loading the plugins
        msg = f"unknown component kind {kind!r}; kinds are {sorted(KINDS)}"
        raise ValueError(msg)
    info = get_registry().add(kind, cls)
    if info.distribution == RUNTIME_DISTRIBUTION and (kind, cls) not in _RUNTIME:
        _RUNTIME.append((kind, cls))
    return cls


def get_survey(name: str, **params: Any) -> Survey:
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


def runtime_registrations() -> tuple[tuple[str, type[Component]], ...]:
    """Return the classes registered with `register_component` in this process.

    Returns
    -------
    registrations : tuple of (str, type)
        ``(kind, cls)`` in the order they were registered.
    """
    return tuple(_RUNTIME)


def get_preprocessor(name: str, **params: Any) -> Component:
    """Create an (unfitted) preprocessor by name.

    Parameters
    ----------
    name : str
    **params
        Preprocessor configuration.

    Returns
    -------
    preprocessor : `~astro_cl.preprocess.Preprocessor`
    """
    # typed as a Component: preprocess.base imports this module, so naming its
    # Preprocessor here would close an import cycle (see get_preprocessor_class)
    return get_component_class("preprocessor", name)(**params)


def get_augmenter(name: str, **params: Any) -> Augmenter:
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


def get_encoder(name: str, **params: Any) -> Encoder:
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


def get_task(name: str, **params: Any) -> DownstreamTask:
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
