"""Hook specifications: the public contract between astro_cl and its plugins.

A plugin is a module (or object) exposed through an entry point in the
``astro_cl.plugins`` group. It implements any of the hooks below, each
decorated with ``@astro_cl.hookimpl``. Every hook receives a ``register``
callable; call it once per component class. The class must subclass the
interface of its kind and declare a unique ``name`` class attribute.

Example
-------
.. code-block:: python

    from astro_cl import hookimpl
    from astro_cl.surveys import Survey

    class MySurvey(Survey):
        name = "my-survey"
        description = "My IFU survey."
        ...

    @hookimpl
    def astro_cl_register_surveys(register):
        register(MySurvey)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from astro_cl.augment.base import Augmenter
    from astro_cl.base import Component
    from astro_cl.models.base import Encoder
    from astro_cl.surveys.base import Survey
    from astro_cl.tasks.base import DownstreamTask

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "astro_cl_register_augmenters",
    "astro_cl_register_encoders",
    "astro_cl_register_preprocessors",
    "astro_cl_register_surveys",
    "astro_cl_register_tasks",
    "hookimpl",
    "hookspec",
]

#: pluggy project name; hook functions must start with ``astro_cl_``.
PROJECT_NAME = "astro_cl"
#: Entry-point group scanned for third-party plugins.
ENTRY_POINT_GROUP = "astro_cl.plugins"

#: Marker for hook specifications (used by astro_cl itself).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marker for hook implementations: ``from astro_cl import hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def astro_cl_register_surveys(register: Callable[[type[Survey]], None]) -> None:
    """Register `~astro_cl.surveys.Survey` subclasses.

    Parameters
    ----------
    register : callable
        ``register(cls)`` adds one survey class under ``cls.name``.
    """


# register takes Preprocessor subclasses; the annotation names their base, as
# preprocess.base imports the plugin machinery (naming it here would be a cycle)
@hookspec
def astro_cl_register_preprocessors(register: Callable[[type[Component]], None]) -> None:
    """Register `~astro_cl.preprocess.Preprocessor` subclasses.

    Parameters
    ----------
    register : callable
        ``register(cls)`` adds one preprocessor class under ``cls.name``.
    """


@hookspec
def astro_cl_register_augmenters(register: Callable[[type[Augmenter]], None]) -> None:
    """Register `~astro_cl.augment.Augmenter` subclasses.

    Parameters
    ----------
    register : callable
        ``register(cls)`` adds one augmenter class under ``cls.name``.
    """


@hookspec
def astro_cl_register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    """Register `~astro_cl.models.Encoder` subclasses (contrastive encoders, regressors).

    Parameters
    ----------
    register : callable
        ``register(cls)`` adds one encoder class under ``cls.name``.
    """


@hookspec
def astro_cl_register_tasks(register: Callable[[type[DownstreamTask]], None]) -> None:
    """Register `~astro_cl.tasks.DownstreamTask` subclasses.

    Parameters
    ----------
    register : callable
        ``register(cls)`` adds one task class under ``cls.name``.
    """
