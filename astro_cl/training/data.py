"""Batch sources: what the trainer reads batches from.

A *batch source* is any object with ``len(source)``, ``source.ids`` (list of
str) and ``source.batch(indices) -> TensorBatch``. The on-disk cache
(`astro_cl.preprocess.cache.CachedArrays`) is one; `InMemorySource` wraps a
`~astro_cl.data.batch.TensorBatch`; `as_batch_source` turns a survey, a batch
or a source into a source.
"""

import numpy as np

from astro_cl.exceptions import ValidationError

__all__ = ["InMemorySource", "as_batch_source", "is_batch_source", "source_meta"]


class InMemorySource:
    """A batch source over a `~astro_cl.data.batch.TensorBatch` held in memory.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`
        All the galaxies.
    """

    def __init__(self, batch):
        from astro_cl.data.batch import TensorBatch

        if not isinstance(batch, TensorBatch):
            msg = f"InMemorySource: expected a TensorBatch, got {type(batch).__name__}"
            raise ValidationError(msg)
        self._batch = batch

    def __len__(self):
        return len(self._batch)

    @property
    def ids(self):
        """List of str: galaxy ids in order."""
        return list(self._batch.ids)

    @property
    def meta(self):
        """dict: the batch metadata (channel names, target names and units, survey).

        A source of cubes also holds their spectral axis (``wavelength``,
        ``rest_frame``, ``flux_unit``) and the per-galaxy ``redshift``
        (see `~astro_cl.data.batch.CUBE_META`).
        """
        return dict(self._batch.meta)

    def batch(self, indices):
        """Return the galaxies at integer positions ``indices``.

        Parameters
        ----------
        indices : sequence of int or `torch.Tensor`

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        return self._batch.index(indices)

    def __repr__(self):
        return f"<InMemorySource: {len(self)} galaxies, data {tuple(self._batch.data.shape[1:])}>"


def is_batch_source(obj):
    """Return whether ``obj`` follows the batch-source protocol.

    Parameters
    ----------
    obj : object

    Returns
    -------
    bool
    """
    return callable(getattr(obj, "batch", None)) and hasattr(obj, "__len__") \
        and hasattr(obj, "ids")


def as_batch_source(x, *, kind=None, targets=None, target_names=None):
    """Return a batch source for a survey, a batch or a source.

    Parameters
    ----------
    x : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        A survey is read once with `~astro_cl.surveys.Survey.to_tensors`.
    kind : str, optional
        For a survey: the record field used as input channels.
    targets : {"maps"}, optional
        For a survey: also read regression targets.
    target_names : sequence of str, optional
        For a survey: which maps are targets (default: every map).

    Returns
    -------
    source : batch source
        With ``meta["target_names"]`` and ``meta["target_units"]`` (unit
        strings) when targets were read from a survey, and the spectral axis
        (``meta["wavelength"]`` ...) when cubes were (see
        `~astro_cl.data.batch.cube_meta`).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If ``x`` is none of these.
    """
    from astro_cl.data.batch import TensorBatch
    from astro_cl.surveys.base import Survey

    if isinstance(x, TensorBatch):
        return InMemorySource(x)
    if isinstance(x, Survey):
        batch = x.to_tensors(kind=kind, targets=targets, target_names=target_names)
        if targets is not None and len(x):
            first = x[0]
            names = list(first.maps) if target_names is None else list(target_names)
            batch.meta["target_names"] = names
            batch.meta["target_units"] = [first.maps[n].unit.to_string() for n in names]
        if len(x) and kind in (None, "images") and x[0].images is not None:
            batch.meta.setdefault("bands", list(x[0].bands))
        return InMemorySource(batch)
    if is_batch_source(x):
        return x
    msg = (f"expected a Survey, a TensorBatch or a batch source (an object with len(), "
           f"ids and batch(indices)), got {type(x).__name__}")
    raise ValidationError(msg)


def source_meta(source):
    """Return the metadata dict of a source (empty if it has none).

    Parameters
    ----------
    source : batch source

    Returns
    -------
    meta : dict
    """
    meta = getattr(source, "meta", None)
    if isinstance(meta, dict):
        return dict(meta)
    if len(source):
        return dict(source.batch(np.array([0])).meta)
    return {}
