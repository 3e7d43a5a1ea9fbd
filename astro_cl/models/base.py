"""The `Encoder` interface: trainable models that map data to embeddings or maps.

This module does not import torch; concrete encoders build their networks
lazily, so that registering and listing them stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

from astro_cl.base import Component

if TYPE_CHECKING:
    import numpy as np

    from astro_cl.data.batch import TensorBatch
    from astro_cl.surveys.base import Survey

__all__ = ["Encoder"]


class Encoder(Component):
    """Base class of trainable models (contrastive encoders, map regressors).

    The scikit-learn contract applies: ``__init__`` stores keyword-only
    configuration, `fit` trains and returns ``self`` (learned attributes such as
    ``module_`` and ``history_`` end in an underscore), `transform` maps inputs
    to outputs.
    """

    #: ``"embedding"`` for encoders that return vectors, ``"maps"`` for regressors.
    output_kind: ClassVar[str] = "embedding"

    def fit(self, X: Survey | TensorBatch, y: object = None, **fit_params: Any) -> Self:
        """Train the model.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey` or `~astro_cl.data.batch.TensorBatch`
            Training data.
        y : object, optional
            Targets for supervised models.
        **fit_params
            Trainer options.

        Returns
        -------
        self : `Encoder`
        """
        raise NotImplementedError

    def transform(self, X: Survey | TensorBatch) -> np.ndarray:
        """Map inputs to embeddings (or maps).

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey` or `~astro_cl.data.batch.TensorBatch`

        Returns
        -------
        out : `numpy.ndarray`
        """
        raise NotImplementedError

    def fit_transform(self, X: Survey | TensorBatch, y: object = None,
                      **fit_params: Any) -> np.ndarray:
        """Fit, then transform the same data.

        Parameters
        ----------
        X, y, **fit_params
            As for `fit`.

        Returns
        -------
        out : `numpy.ndarray`
        """
        return self.fit(X, y, **fit_params).transform(X)
