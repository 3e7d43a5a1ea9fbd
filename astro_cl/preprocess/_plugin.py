"""Built-in preprocessors, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_preprocessors(register):
    """Register astro_cl's own preprocessors."""
    from astro_cl.preprocess.cube_pca import CubePCA
    from astro_cl.preprocess.images import ImageScaler

    for cls in (CubePCA, ImageScaler):
        register(cls)
