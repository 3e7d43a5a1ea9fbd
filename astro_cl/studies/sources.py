"""Row and channel subsets of a batch source, without copying the data.

Training and embedding read galaxies from a *batch source*: anything with
``len()``, ``ids`` and ``batch(indices) -> TensorBatch`` (a
`~astro_cl.preprocess.cache.CachedArrays`, a survey's batch view, a
`~astro_cl.data.batch.TensorBatch`). A study often needs part of one: the
training split, the held-out galaxies, the channels without the luminosity.
`SourceView` is that part, read lazily from the source it wraps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from astro_cl.exceptions import ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import ArrayLike

    from astro_cl.data.batch import BatchSource, TensorBatch

__all__ = ["SourceView"]


class SourceView:
    """A batch source seen through a row subset, a channel subset and extra metadata.

    Parameters
    ----------
    source : `~astro_cl.data.batch.BatchSource` or `~astro_cl.data.batch.TensorBatch`
        Anything with ``len()``, ``ids`` and ``batch(indices)`` returning a
        `~astro_cl.data.batch.TensorBatch` (e.g. a
        `~astro_cl.preprocess.cache.CachedArrays`), or a batch in memory.
    rows : array-like of int, optional
        Rows of ``source`` in this view, in this order (default: all).
    channels : array-like of int, optional
        Channels kept in ``data`` (and in ``mask`` / ``uncertainty`` when they
        have one plane per channel); default: all.
    meta : dict, optional
        Added to every batch's ``meta`` (and to this view's ``meta``), e.g.
        ``{"channels_dropped": [0]}``.

    Attributes
    ----------
    meta : dict
        The source's batch metadata updated with ``meta``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from astro_cl.data.batch import TensorBatch
    >>> batch = TensorBatch(data=torch.zeros(4, 3, 8, 8), mask=torch.zeros(4, 1, 8, 8, dtype=bool),
    ...                     ids=["a", "b", "c", "d"])
    >>> view = SourceView(batch, rows=[3, 1], channels=[1, 2])
    >>> view.ids, view.batch([0]).data.shape
    (['d', 'b'], torch.Size([1, 2, 8, 8]))
    """

    def __init__(self, source: BatchSource | TensorBatch, *, rows: ArrayLike | None = None,
                 channels: Iterable[int] | None = None, meta: dict[str, Any] | None = None,
                 ) -> None:
        self._source = source
        n = len(source)
        if rows is not None:
            rows = np.asarray(rows, dtype=int).reshape(-1)
            if rows.size and (rows.min() < -n or rows.max() >= n):
                msg = (f"SourceView: rows must lie in [0, {n}) for a source of {n} galaxies, "
                       f"got values from {rows.min()} to {rows.max()}")
                raise ValidationError(msg)
        self._rows = rows
        self._channels = None if channels is None else [int(c) for c in channels]
        base = getattr(source, "meta", None)
        base = dict(base.get("batch_meta", base)) if isinstance(base, dict) else {}
        self.meta = {**base, **(meta or {})}

    @property
    def source(self) -> BatchSource | TensorBatch:
        """The wrapped batch source."""
        return self._source

    @property
    def rows(self) -> np.ndarray | None:
        """`numpy.ndarray` or None: the source rows of this view (None: all)."""
        return None if self._rows is None else self._rows.copy()

    def __len__(self) -> int:
        return len(self._source) if self._rows is None else len(self._rows)

    @property
    def ids(self) -> list[str]:
        """The galaxy ids (list of str) of the view's rows."""
        ids = list(self._source.ids)
        return ids if self._rows is None else [ids[i] for i in self._rows]

    def batch(self, indices: ArrayLike) -> TensorBatch:
        """Return the rows ``indices`` of the view as a `~astro_cl.data.batch.TensorBatch`.

        Parameters
        ----------
        indices : array-like of int
            Rows of the view.

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        rows = np.asarray(indices, dtype=int).reshape(-1)
        if self._rows is not None:
            rows = self._rows[rows]
        if hasattr(self._source, "batch"):
            batch = self._source.batch(rows)
        else:  # a TensorBatch in memory
            batch = self._source.index(rows.tolist())
        changes: dict[str, Any] = {"meta": {**batch.meta, **self.meta}}
        if self._channels is not None:
            changes["data"] = batch.data[:, self._channels]
            for name in ("mask", "uncertainty"):
                value = getattr(batch, name)
                if value is not None and value.shape[1] == batch.data.shape[1] > 1:
                    changes[name] = value[:, self._channels]
        return batch.replace(**changes)
