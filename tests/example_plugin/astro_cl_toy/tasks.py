"""The toy plugin's downstream task: how isolated each galaxy is in an embedding.

`ToyIsolation` implements `~astro_cl.tasks.DownstreamTask.fit` and the
optional hooks; astro_cl's study layer then adds its per-galaxy column, its
table, its figure and its headline row to results folders and reports, as it
does for a built-in task, without knowing its name. Public names only.
"""

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import ValidationError
from astro_cl.tasks import DownstreamTask
from astro_cl.tasks.catalogue import align

__all__ = ["ToyIsolation"]


class ToyIsolation(DownstreamTask):
    """How isolated each galaxy is: the distance to its k-th nearest neighbour in the embedding.

    Parameters
    ----------
    n_neighbors : int
        The neighbour whose distance is the galaxy's isolation.
    n_listed : int
        The most isolated galaxies listed in the ``toy-most-isolated`` table.

    Attributes
    ----------
    isolation_ : `numpy.ndarray`
        Per galaxy, in embedding units.
    ids_ : `numpy.ndarray` of str
        Galaxy ids (row numbers when the embedding has none).
    results_ : `~astropy.table.QTable`
        Quantiles of the isolation over galaxies.
    """

    name = "toy-isolation"
    description = "Example plugin: each galaxy's distance to its k-th nearest neighbour."

    def __init__(self, *, n_neighbors=5, n_listed=5):
        self.n_neighbors = n_neighbors
        self.n_listed = n_listed

    def fit(self, embeddings, catalogue=None):
        """Measure every galaxy's isolation.

        Parameters
        ----------
        embeddings : `numpy.ndarray` or `~astropy.table.QTable`
        catalogue : `~astropy.table.QTable`, optional

        Returns
        -------
        self : `ToyIsolation`
        """
        X, _, ids = align(embeddings, catalogue)
        k = int(self.n_neighbors)
        if not 1 <= k < len(X):
            msg = (f"ToyIsolation.n_neighbors: expected 1 <= n_neighbors < {len(X)} (the "
                   f"number of galaxies), got {self.n_neighbors!r}")
            raise ValidationError(msg)
        distance = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
        # column 0 of each sorted row is the galaxy itself
        self.isolation_ = np.sort(distance, axis=1)[:, k]
        self.ids_ = (np.arange(len(X)).astype(str) if ids is None
                     else np.asarray(ids).astype(str))
        quantiles = np.array([0.5, 0.9, 1.0])
        self.results_ = QTable({"quantile": quantiles,
                                "isolation": np.quantile(self.isolation_, quantiles)})
        self.results_.meta["task"] = self.name
        return self

    def galaxy_columns(self):
        """Return each galaxy's isolation, as ``toy_isolation``.

        Returns
        -------
        columns : `~astropy.table.QTable`
        """
        return QTable({"id": self.ids_, "toy_isolation": self.isolation_})

    def extra_tables(self):
        """Return the most isolated galaxies, as ``toy-most-isolated``.

        Returns
        -------
        tables : dict of str to `~astropy.table.QTable`
        """
        order = np.argsort(-self.isolation_, kind="stable")[: int(self.n_listed)]
        return {"toy-most-isolated": QTable({"id": self.ids_[order],
                                             "isolation": self.isolation_[order]})}

    def findings(self):
        """Return the most isolated galaxy and its isolation.

        Returns
        -------
        findings : dict
        """
        i = int(np.argmax(self.isolation_))
        return {"most_isolated": str(self.ids_[i]), "isolation": float(self.isolation_[i])}

    def describe(self):
        """Say what was measured.

        Returns
        -------
        text : str
        """
        return f"isolation of each galaxy: distance to its neighbour number {self.n_neighbors}"

    @classmethod
    def figures(cls, outputs):
        """Draw the distribution of the isolation over galaxies.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from matplotlib.figure import Figure

        galaxies = outputs.galaxies
        if galaxies is None or "toy_isolation" not in galaxies.colnames:
            return {}, {}
        fig = Figure(figsize=(4, 3), layout="constrained")
        ax = fig.subplots()
        ax.hist(np.asarray(galaxies["toy_isolation"], dtype=float), bins=20)
        ax.set_xlabel("distance to the k-th neighbour [embedding units]")
        ax.set_ylabel("galaxies")
        return ({"toy isolation": fig},
                {"toy isolation": "How isolated the galaxies are in the embedding (toy plugin)."})

    @classmethod
    def headline(cls, outputs):
        """Return the most isolated galaxy.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        rows : list of dict
        """
        found = outputs.findings
        if "most_isolated" not in found:
            return []
        return [{"result": "the most isolated galaxy (toy-isolation)",
                 "value": f"{found['most_isolated']} ({found['isolation']:.3g})",
                 "reference": "", "criterion": "", "passed": None}]
