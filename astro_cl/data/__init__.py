"""The data model: galaxy records on astropy objects, and batches of tensors."""

from astro_cl.data.record import GalaxyRecord, ObservingMeta, cube_to_array

__all__ = ["GalaxyRecord", "ObservingMeta", "cube_to_array"]
