"""Augmenters: batched, seeded transformations of galaxy data (torch imported on use)."""

from astro_cl.augment.base import Augmenter, Compose, make_generator

__all__ = ["Augmenter", "Compose", "make_generator"]
