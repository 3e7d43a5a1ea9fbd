"""Exceptions and warnings raised by astro_cl.

Every error names what was wrong (the file, the field, the value) and what was
expected, so that a user can fix the input without reading the source.

The warning classes subclass astropy's `~astropy.utils.exceptions.AstropyUserWarning`,
but importing astropy costs more than the whole command line needs, so they
are defined in a private module imported on first access to them
(``from astro_cl.exceptions import AstroCLWarning`` works as usual).
"""

__all__ = [
    "AstroCLDeprecationWarning",  # noqa: F822 - made on first access, see __getattr__
    "AstroCLError",
    "AstroCLWarning",  # noqa: F822 - made on first access, see __getattr__
    "CatalogueError",
    "CheckpointError",
    "PluginError",
    "PluginWarning",  # noqa: F822 - made on first access, see __getattr__
    "SurveyError",
    "UnknownComponentError",
    "ValidationError",
]


class AstroCLError(Exception):
    """Base class of every error raised by astro_cl."""


class ValidationError(AstroCLError, ValueError):
    """A data container (record, batch, map) failed validation."""


class SurveyError(AstroCLError, ValueError):
    """A survey could not read its files, or they are not what the survey expects.

    The message names the file and the problem (truncated file, missing
    extension, wrong dimensionality, missing unit or WCS keywords, ...).
    """


class CatalogueError(SurveyError):
    """A catalogue is missing a required column or its values are unusable."""


class CheckpointError(AstroCLError, ValueError):
    """A checkpoint or fitted preprocessor cannot be loaded into this model or version."""


class PluginError(AstroCLError):
    """A plugin or component registration is invalid."""


class UnknownComponentError(AstroCLError, KeyError):
    """A component name was asked for that no plugin registered.

    The message lists the names that are available for that kind.
    """

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


#: Warning classes, defined in `astro_cl.warning_classes` (which imports astropy).
_WARNINGS = ("AstroCLDeprecationWarning", "AstroCLWarning", "PluginWarning")


def __getattr__(name):
    # PEP 562: only reached for names not yet in this module's namespace
    if name in _WARNINGS:
        from astro_cl import warning_classes

        value = getattr(warning_classes, name)
        globals()[name] = value
        return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__():
    return sorted(set(globals()) | set(_WARNINGS))
