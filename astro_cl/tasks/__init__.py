"""Downstream tasks: analyses of embeddings and predicted maps against catalogues."""

from astro_cl.tasks.base import DownstreamTask

__all__ = ["DownstreamTask"]
