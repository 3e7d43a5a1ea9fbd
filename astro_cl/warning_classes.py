"""The warning classes of astro_cl, loaded on first use through `astro_cl.exceptions`.

They live here, not in `astro_cl.exceptions`, because subclassing
`~astropy.utils.exceptions.AstropyUserWarning` imports astropy, which the
command line's start-up (``astro-cl --help``, ``astro-cl plugins``) does not
otherwise need. Import them from `astro_cl.exceptions`.
"""

from astropy.utils.exceptions import AstropyDeprecationWarning, AstropyUserWarning

__all__ = ["AstroCLDeprecationWarning", "AstroCLWarning", "PluginWarning"]


class AstroCLWarning(AstropyUserWarning):
    """Base class of warnings issued by astro_cl."""


class PluginWarning(AstroCLWarning):
    """A third-party plugin was broken and has been skipped."""


class AstroCLDeprecationWarning(AstroCLWarning, AstropyDeprecationWarning):
    """A deprecated name or feature of astro_cl was used; the message says what replaces it.

    Like astropy's `~astropy.utils.exceptions.AstropyDeprecationWarning` (and
    unlike Python's `DeprecationWarning`) it is shown by default, and as an
    `AstroCLWarning` it is caught with the rest of astro_cl's warnings.
    """


# Their public home: pickling, reprs and the API docs name astro_cl.exceptions.
for _cls in (AstroCLWarning, AstroCLDeprecationWarning, PluginWarning):
    _cls.__module__ = "astro_cl.exceptions"
del _cls
