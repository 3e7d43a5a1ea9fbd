"""Exceptions and warnings raised by astro_cl.

Every error names what was wrong (the file, the field, the value) and what was
expected, so that a user can fix the input without reading the source.
"""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "AstroCLError",
    "AstroCLWarning",
    "CatalogueError",
    "CheckpointError",
    "PluginError",
    "PluginWarning",
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


class AstroCLWarning(AstropyUserWarning):
    """Base class of warnings issued by astro_cl."""


class PluginWarning(AstroCLWarning):
    """A third-party plugin was broken and has been skipped."""
