"""Built-in augmenters, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_augmenters(register):
    """Register astro_cl's own augmenters."""
    from astro_cl.augment.base import Compose

    register(Compose)
