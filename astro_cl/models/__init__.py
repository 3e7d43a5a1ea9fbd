"""Encoders: trainable models (contrastive encoders and map regressors)."""

from astro_cl.models.base import Encoder

__all__ = ["Encoder"]
