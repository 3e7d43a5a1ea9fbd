"""Augmenters: batched, seeded transformations of galaxy data (torch imported on use).

The augmenter classes are exported lazily (PEP 562): ``import astro_cl.augment``
does not import torch; ``from astro_cl.augment import RandomRotation`` does.
"""

from importlib import import_module as _import_module

from astro_cl.augment.base import SPACES, Augmenter, make_generator
from astro_cl.augment.compose import Compose

_LAZY = {
    "RandomRotation": "astro_cl.augment.geometric",
    "RandomFlip": "astro_cl.augment.geometric",
    "RandomRot90": "astro_cl.augment.geometric",
    "RandomTranslation": "astro_cl.augment.geometric",
    "CropResize": "astro_cl.augment.geometric",
    "ColourJitter": "astro_cl.augment.colour",
    "GaussianBlur": "astro_cl.augment.photometric",
    "MultiplicativeNoise": "astro_cl.augment.photometric",
    "PSFDegradation": "astro_cl.augment.photometric",
    "NoiseToDepth": "astro_cl.augment.photometric",
    "Reddening": "astro_cl.augment.photometric",
    "SurfaceBrightnessDimming": "astro_cl.augment.photometric",
    "StarMask": "astro_cl.augment.masking",
    "RandomCutout": "astro_cl.augment.masking",
    "Rebin": "astro_cl.augment.rebin",
    "PCASpaceNoise": "astro_cl.augment.pca_space",
    "PCASpaceRebin": "astro_cl.augment.pca_space",
    "VelocityShift": "astro_cl.augment.spectral",
    "PreprocessedViews": "astro_cl.augment.preprocessed",
    "build_augmenter": "astro_cl.augment.config",
    "augmenter_spec": "astro_cl.augment.config",
    "bind_preprocessor": "astro_cl.augment.config",
    "build_training_augmenter": "astro_cl.augment.config",
    "ecalifa_views": "astro_cl.augment.presets",
    "picasso_augmentations": "astro_cl.augment.presets",
}

__all__ = ["SPACES", "Augmenter", "Compose", "make_generator", *sorted(_LAZY)]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'astro_cl.augment' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
