"""The warning classes of astro_cl, loaded on first use through `astro_cl.exceptions`.

They live here, not in `astro_cl.exceptions`, because subclassing
`~astropy.utils.exceptions.AstropyUserWarning` imports astropy, which the
command line's start-up (``astro-cl --help``, ``astro-cl plugins``) does not
otherwise need. Import them from `astro_cl.exceptions`.
"""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["AstroCLWarning", "PluginWarning"]


class AstroCLWarning(AstropyUserWarning):
    """Base class of warnings issued by astro_cl."""


class PluginWarning(AstroCLWarning):
    """A third-party plugin was broken and has been skipped."""


# Their public home: pickling, reprs and the API docs name astro_cl.exceptions.
for _cls in (AstroCLWarning, PluginWarning):
    _cls.__module__ = "astro_cl.exceptions"
del _cls
