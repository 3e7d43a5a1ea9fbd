"""The `DownstreamTask` interface: analyses on embeddings and catalogues.

Tasks work on arrays and `~astropy.table.QTable` catalogues, never on torch
modules.
"""

from astro_cl.base import Component

__all__ = ["DownstreamTask"]


class DownstreamTask(Component):
    """Base class of analyses of an embedding (or of predicted maps) against a catalogue.

    ``fit(embeddings, catalogue)`` learns what the task needs and returns
    ``self``; ``evaluate(...)`` returns a `~astropy.table.QTable` or a dict of
    results with units where they apply.
    """

    def fit(self, embeddings, catalogue=None):
        """Learn from an embedding and its catalogue.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
            ``(n_galaxies, n_features)`` vectors, or a table with ``id`` and
            ``embedding`` columns.
        catalogue : `~astropy.table.QTable`, optional
            Properties of the same galaxies (joined on ``id`` when both are tables).

        Returns
        -------
        self : `DownstreamTask`
        """
        raise NotImplementedError

    def evaluate(self, embeddings=None, catalogue=None):
        """Return the task's results.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`, optional
            Data to evaluate on (default: what `fit` saw).
        catalogue : `~astropy.table.QTable`, optional

        Returns
        -------
        result : `~astropy.table.QTable` or dict
        """
        raise NotImplementedError
