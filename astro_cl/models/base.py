"""The `Encoder` interface: trainable models that map data to embeddings or maps.

This module does not import torch; concrete encoders build their networks
lazily, so that registering and listing them stays cheap.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Self

from astro_cl.base import Component
from astro_cl.exceptions import CheckpointError

if TYPE_CHECKING:
    import os

    import numpy as np

    from astro_cl.data.batch import TensorBatch
    from astro_cl.surveys.base import Survey

__all__ = ["Encoder"]


class Encoder(Component):
    """Base class of trainable models (contrastive encoders, map regressors).

    The scikit-learn contract applies: ``__init__`` stores keyword-only
    configuration, `fit` trains and returns ``self`` (learned attributes such as
    ``module_`` and ``history_`` end in an underscore), `transform` maps inputs
    to outputs. `save` writes a fitted model to one file and the class method
    `load` rebuilds it (`astro_cl.load_model` calls the latter for whichever
    registered encoder wrote the file); `~astro_cl.models.TorchEncoder`
    implements both, other encoders must implement them to be saved.
    """

    #: What `transform` returns: ``"embedding"`` (one vector per galaxy) or
    #: ``"maps"`` (a regressor's property maps).
    output_type: ClassVar[str] = "embedding"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "output_kind" in cls.__dict__:  # the attribute's former name
            from astro_cl.exceptions import AstroCLDeprecationWarning

            warnings.warn(f"{cls.__module__}.{cls.__qualname__}: the class attribute "
                          "output_kind is deprecated; name it output_type",
                          AstroCLDeprecationWarning, stacklevel=2)
            if "output_type" not in cls.__dict__:
                cls.output_type = cls.__dict__["output_kind"]

    @property
    def output_kind(self) -> str:
        """str: deprecated former name of `output_type` (warns)."""
        from astro_cl.exceptions import AstroCLDeprecationWarning

        warnings.warn(f"{type(self).__name__}.output_kind is deprecated; use output_type",
                      AstroCLDeprecationWarning, stacklevel=2)
        return self.output_type

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

    # -- files ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to one file that `load` reads back.

        The file's header must record the encoder's registered ``name`` (as
        `astro_cl.training.checkpoints.make_header` does), so that
        `astro_cl.load_model` finds the class to load it with.

        Parameters
        ----------
        path : str or `os.PathLike`
            Destination file.

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            Here: the encoder does not implement saving.
        """
        msg = (f"{type(self).__name__} ({self.name!r}) cannot save a model file: "
               f"implement {type(self).__name__}.save(path) and the class method "
               f"{type(self).__name__}.load(path, *, device='cpu', **overrides) "
               "(astro_cl.models.TorchEncoder implements both)")
        raise CheckpointError(msg)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "cpu",
             **overrides: Any) -> Self:
        """Build a fitted model from a file written by `save`.

        Parameters
        ----------
        path : str or `os.PathLike`
            The model file.
        device : str, optional
            Where to put the model (for encoders with a network).
        **overrides
            Model parameters replacing the saved ones.

        Returns
        -------
        model : `Encoder`
            Fitted, ready for `transform`.

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            If the file cannot be loaded; here: the encoder does not implement
            loading.
        """
        msg = (f"{path}: {cls.__name__} ({cls.name!r}) cannot load a model file: "
               f"implement the class method {cls.__name__}.load(path, *, device='cpu', "
               f"**overrides) and {cls.__name__}.save(path) "
               "(astro_cl.models.TorchEncoder implements both)")
        raise CheckpointError(msg)
