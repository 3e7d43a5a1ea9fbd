"""The one contract of downstream tasks: `DownstreamTask` and `TaskOutputs`.

Tasks work on arrays and `~astropy.table.QTable` catalogues, never on torch
modules. A task implements `~DownstreamTask.fit` and, unless it keeps its
result in ``results_``, `~DownstreamTask.result`; the base implements
`~DownstreamTask.evaluate` once for all. Optional hooks let a task add
per-galaxy columns, tables, facts, figures and headline rows to a study's
results folder and report; the study layer (`astro_cl.studies.run_tasks`)
calls them for every task alike, built-in or third-party, without knowing its
name.

Writing a task::

    import numpy as np
    from astropy.table import QTable
    from astro_cl.tasks import DownstreamTask
    from astro_cl.tasks.catalogue import align

    class Spread(DownstreamTask):
        '''Distance of each galaxy from the mean embedding.'''

        name = "spread"
        description = "Distance of each galaxy from the mean embedding."

        def __init__(self, *, scale=1.0):
            self.scale = scale

        def fit(self, embeddings, catalogue=None):
            X, _, _ = align(embeddings, catalogue)
            self.distance_ = self.scale * np.linalg.norm(X - X.mean(0), axis=1)
            self.results_ = QTable({"median_distance": [np.median(self.distance_)]})
            return self

        def galaxy_columns(self):          # optional hook: one row per galaxy
            return QTable({"spread_distance": self.distance_})

See ``tests/example_plugin`` for a complete third-party task.
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from astro_cl.base import Component, clone
from astro_cl.exceptions import ValidationError

__all__ = ["DownstreamTask", "TaskOutputs"]


@dataclass
class TaskOutputs:
    """What a fitted task left in a run, as the report's hooks see it.

    The study layer builds one per task, from the fitted task or from a
    results folder read back (`~astro_cl.studies.TaskResults.read`), and
    passes it to `DownstreamTask.figures` and `DownstreamTask.headline`.

    Parameters
    ----------
    name : str
        The task's registered name.
    table : `~astropy.table.QTable` or dict
        Its result (`DownstreamTask.result`).
    tables : dict of str to `~astropy.table.QTable`, optional
        Its extra tables (`DownstreamTask.extra_tables`).
    galaxies : `~astropy.table.QTable`, optional
        The run's per-galaxy table: the catalogue rows of the galaxies with
        the per-galaxy columns of every task of the run
        (`DownstreamTask.galaxy_columns`).
    findings : dict, optional
        Its findings (`DownstreamTask.findings`), as kept in ``run.json``.
    params : dict, optional
        Its parameters.
    run : dict, optional
        Facts about the whole run: ``n_galaxies``, ``embedding``
        (`~astro_cl.tasks.embedding_diagnostics`), ``projection`` (the name
        of the 2-D projection in the per-galaxy table), ...
    thumbnails : dict of str to `numpy.ndarray`, optional
        Images by galaxy id, when the run has them.
    options : dict, optional
        Options of the report's figures, read by the tasks that know them
        (``n_columns``: properties drawn on a projection; ``n_queries``,
        ``queries`` and ``thumbnail_label``: the similarity grid).
    """

    name: str
    table: Any
    tables: dict = field(default_factory=dict)
    galaxies: Any = None
    findings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    thumbnails: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def projection(self):
        """`numpy.ndarray` or None: the ``(N, 2)`` projection in the per-galaxy table.

        From the columns ``projection_1`` and ``projection_2`` (or
        ``umap_1`` / ``umap_2`` of older folders).
        """
        if self.galaxies is None:
            return None
        cols = set(self.galaxies.colnames)
        for a, b in (("projection_1", "projection_2"), ("umap_1", "umap_2")):
            if {a, b} <= cols:
                return np.column_stack([np.asarray(self.galaxies[a], dtype=float),
                                        np.asarray(self.galaxies[b], dtype=float)])
        return None

    @property
    def projection_name(self):
        """str: the projection's name for labels (``"UMAP"``, ``"PCA"`` or ``"projection"``)."""
        return self.run.get("projection") or "projection"

    @property
    def collapsed(self):
        """bool: whether the run's embedding collapsed."""
        return bool(self.run.get("embedding", {}).get("collapsed", False))


class DownstreamTask(Component):
    """Base class of analyses of an embedding (or of predicted maps) against a reference.

    The contract, for built-in and third-party tasks alike:

    * ``fit(data, reference=None)`` learns what the task needs and returns
      ``self``. The two arguments are positional; their meaning is given by
      `input_kind`: for ``"embeddings"`` tasks an ``(N, D)`` array or an
      embeddings table (``id``, ``embedding``) and the catalogue of the same
      galaxies; for ``"maps"`` tasks (`~astro_cl.tasks.MapTask`) the
      predicted and the true maps. Learned attributes end in ``_``.
    * `result` returns the fitted task's result, a `~astropy.table.QTable`
      (or a dict), with units where they apply. The default returns a copy
      of ``results_``.
    * `evaluate` is implemented here, once: the fitted task's result, or the
      result of a copy of the task fitted on other data.

    Optional hooks, called by the study layer and the report for every task
    alike (the defaults add nothing): `galaxy_columns` (per-galaxy columns),
    `extra_tables`, `findings` (JSON-able facts kept in ``run.json``),
    `describe` (what was done, for the report), and the class methods
    `figures` and `headline`, which draw from a `TaskOutputs` so that a
    report can be rebuilt from a results folder without refitting.
    `astro_cl.testing.check_task` checks all of them.
    """

    #: What `fit` takes: ``"embeddings"`` (embeddings and a catalogue) or
    #: ``"maps"`` (predicted and true maps, see `~astro_cl.tasks.MapTask`).
    input_kind: ClassVar[str] = "embeddings"

    def fit(self, data, reference=None, /):
        """Learn from the data and its reference; return ``self``.

        Parameters
        ----------
        data : `numpy.ndarray`, `~astropy.table.QTable` or maps
            ``(n_galaxies, n_features)`` embeddings or a table with ``id`` and
            ``embedding`` columns; predicted maps for a `~astro_cl.tasks.MapTask`.
        reference : `~astropy.table.QTable` or maps, optional
            The catalogue of the same galaxies (joined on ``id`` when both are
            tables); the true maps for a `~astro_cl.tasks.MapTask`.

        Returns
        -------
        self : `DownstreamTask`
        """
        msg = f"{type(self).__name__} must implement fit(data, reference=None)"
        raise NotImplementedError(msg)

    def result(self):
        """Return the fitted task's result.

        Returns
        -------
        result : `~astropy.table.QTable` or dict
            A copy: changing it does not change the task.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the task is not fitted.
        """
        if "results_" not in self.__dict__:
            msg = f"{type(self).__name__} is not fitted yet; call fit() first"
            raise ValidationError(msg)
        res = self.results_
        return res.copy() if hasattr(res, "copy") else res

    def evaluate(self, data=None, reference=None, /):
        """Return the task's result on the data it was fitted on, or on other data.

        Parameters
        ----------
        data, reference : optional
            As for `fit`. Omitted (or the very objects `fit` saw, for tasks
            that remember them): the fitted task's `result`. Otherwise an
            unfitted copy of the task (same parameters) is fitted on them and
            its result returned; this task is left as it is.

        Returns
        -------
        result : `~astropy.table.QTable` or dict
        """
        if data is None:
            if reference is not None:
                msg = (f"{type(self).__name__}.evaluate: a reference was given without data; "
                       "pass both, or neither for the fitted result")
                raise ValueError(msg)
            return self.result()
        seen = self.__dict__.get("_fitted_on")
        if seen is not None and data is seen[0] and reference is seen[1]:
            return self.result()
        return clone(self).fit(data, reference).result()

    # -- optional hooks -------------------------------------------------------------
    def galaxy_columns(self):
        """Return per-galaxy columns for the run's per-galaxy table (optional hook).

        Returns
        -------
        columns : `~astropy.table.Table` or None
            One row per galaxy the task was fitted on, in the order of the
            data (or with an ``id`` column, on which the rows are matched);
            column names should say which task made them. None (the
            default): no columns.
        """
        return None

    def extra_tables(self):
        """Return tables beside the result (optional hook).

        Returns
        -------
        tables : dict of str to `~astropy.table.Table`
            By name, written as ``tables/<name>.ecsv`` of a results folder
            and shown in the report; names must not be task names. Default:
            none.
        """
        return {}

    def findings(self):
        """Return JSON-able facts the fit found out, kept in ``run.json`` (optional hook).

        Keys ``left_out`` (catalogue columns not analysed and why),
        ``skipped_properties`` (properties that could not be analysed and
        why) and ``projection`` (the name of a projection put in the
        per-galaxy columns) are also gathered at the run level.

        Returns
        -------
        findings : dict
            Default: empty.
        """
        return {}

    def describe(self):
        """Say in one phrase what the fitted task did, for the report (optional hook).

        Returns
        -------
        text : str
            Default: the class's ``description``.
        """
        return self.description or type(self).__name__

    @classmethod
    def figures(cls, outputs):
        """Draw the task's figures from what it left in a run (optional hook).

        Parameters
        ----------
        outputs : `TaskOutputs`

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
            By title; titles must be unique within a report.
        captions : dict of str to str
            Captions of (some of) the figures.
        """
        return {}, {}

    @classmethod
    def headline(cls, outputs):
        """Return the report's headline rows for the task (optional hook).

        Parameters
        ----------
        outputs : `TaskOutputs`

        Returns
        -------
        rows : list of dict
            Each with ``result``, ``value``, ``reference``, ``criterion`` and
            ``passed`` (True, False or None), as
            `~astro_cl.report.html.write_report` shows them. Default: none.
        """
        return []
