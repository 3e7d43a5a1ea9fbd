"""Built-in encoders, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_encoders(register):
    """Register astro_cl's own encoders."""
    from astro_cl.models.clip import CLIPEncoder
    from astro_cl.models.dense import DenseContrastive
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.models.simclr import SimCLR

    register(SimCLR)
    register(CNNRegressor)
    register(CLIPEncoder)
    register(DenseContrastive)
