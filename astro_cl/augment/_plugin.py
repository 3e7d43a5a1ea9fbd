"""Built-in augmenters, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_augmenters(register):
    """Register astro_cl's own augmenters."""
    from astro_cl.augment.colour import ColourJitter
    from astro_cl.augment.compose import Compose
    from astro_cl.augment.geometric import (
        CropResize,
        RandomFlip,
        RandomRot90,
        RandomRotation,
        RandomTranslation,
    )
    from astro_cl.augment.masking import RandomCutout, StarMask
    from astro_cl.augment.pca_space import PCASpaceNoise, PCASpaceRebin
    from astro_cl.augment.photometric import (
        GaussianBlur,
        MultiplicativeNoise,
        NoiseToDepth,
        PSFDegradation,
        Reddening,
        SurfaceBrightnessDimming,
    )
    from astro_cl.augment.rebin import Rebin
    from astro_cl.augment.spectral import VelocityShift

    for cls in (Compose, RandomRotation, RandomFlip, RandomRot90, RandomTranslation, CropResize,
                GaussianBlur, MultiplicativeNoise, PSFDegradation, NoiseToDepth, Reddening,
                SurfaceBrightnessDimming, StarMask, RandomCutout, Rebin, VelocityShift,
                ColourJitter, PCASpaceNoise, PCASpaceRebin):
        register(cls)
