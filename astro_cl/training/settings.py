"""Training settings as one component: `TrainerConfig`.

A model (`~astro_cl.models.TorchEncoder`) holds the network's parameters and
its loss; how it is trained -- optimiser, learning rate and schedule, epochs,
batch size, validation split, early stopping, seed, device, checkpoints,
threads, precision -- is a `TrainerConfig` given to ``fit``::

    from astro_cl.models.simclr import SimCLR
    from astro_cl.training import TrainerConfig

    model = SimCLR(width=0.25).fit(survey, trainer=TrainerConfig(epochs=5, batch_size=64))
    model = SimCLR(width=0.25).fit(survey, trainer={"epochs": 5})  # over the model's defaults

The settings build the `~astro_cl.training.trainer.Trainer` that runs the
loop (`TrainerConfig.build`). In a TOML run configuration they are the keys of
``[optimizer]`` (``name`` is the optimiser) and ``[training]``.

This module does not import torch until a trainer is built or a device
resolved.
"""

from collections.abc import Mapping

from astro_cl.base import Component, clone
from astro_cl.exceptions import ValidationError
from astro_cl.training.precision import resolve_precision
from astro_cl.training.schema import (
    SCHEDULE_PRESETS,
    TRAINER_CONSTRAINTS,
    TRAINER_SETTINGS,
    normalise_trainer_settings,
    validate_params,
)

__all__ = ["TrainerConfig"]

_SETTINGS = TRAINER_SETTINGS


class TrainerConfig(Component):
    """How a model is trained: the settings of `~astro_cl.training.trainer.Trainer`.

    Parameters
    ----------
    optimizer : {"adam", "adamw", "sgd"}, optional
        Adam, AdamW, or SGD with Nesterov momentum 0.9.
    lr : float, optional
        Base learning rate.
    weight_decay : float, optional
    schedule : str, dict or None, optional
        Learning-rate schedule: ``"constant"``, ``"step"`` (x0.75 every 2
        epochs), ``"multistep"`` (/10 after epochs 8 and 10), or a table such
        as ``{"name": "cosine", "epochs": 50}`` (see
        `~astro_cl.training.trainer.lr_factor`); None: constant.
    epochs : int, optional
        Maximum number of epochs (0: the seeded, untrained network).
    batch_size : int or None, optional
        Global batch size; None: the whole training set per step.
    validation_fraction : float, optional
        Fraction of the galaxies held out (seeded) to monitor.
    patience : int or None, optional
        Early stopping after this many epochs without improvement; 0 or None:
        no early stopping (0 is how a TOML configuration says so).
    seed : int, optional
        Seed of the network's initial weights, the split, the shuffles and
        the augmentations.
    device : str or None, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None: CUDA when
        available, else the CPU.
    checkpoint_dir : str or `~pathlib.Path`, optional
        Where ``last.pt`` and ``history.csv`` are written every epoch.
    progress : bool, optional
        Show progress bars.
    num_threads : int or None, optional
        Intra-op CPU threads (None: the usable cores per process).
    precision : {"auto", "fp32", "bf16"}, optional
        ``"bf16"``: bfloat16 autocast in training and inference, with float32
        weights and the loss in float32; ``"auto"``: bf16 where it pays (GPUs
        with native bfloat16, since Ampere; CPUs with AMX), fp32 elsewhere
        (see `astro_cl.training.precision`).

    Notes
    -----
    As for every component, the constructor only stores the settings;
    `validate` (called by ``fit``) raises
    `~astro_cl.exceptions.ValidationError` naming a setting whose value has
    the wrong type or range, or a device this machine does not have.

    `from_spec` also takes ``bf16 = true`` / ``false``, the name of the
    setting in earlier configurations, as ``precision = "bf16"`` / ``"fp32"``.

    Examples
    --------
    >>> from astro_cl.training import TrainerConfig
    >>> defaults = TrainerConfig(lr=8e-4, epochs=50, schedule="step")
    >>> TrainerConfig.from_spec({"epochs": 3}, defaults=defaults).epochs
    3
    >>> TrainerConfig.from_spec({"bf16": True}).precision
    'bf16'
    """

    name = "trainer"
    description = "Training settings: optimiser, schedule, epochs, batches, device, precision."
    _parameter_constraints = {k: TRAINER_CONSTRAINTS[k] for k in _SETTINGS}

    def __init__(self, *, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule=None, epochs=10,
                 batch_size=32, validation_fraction=0.0, patience=None, seed=0, device=None,
                 checkpoint_dir=None, progress=True, num_threads=None, precision="auto"):
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.seed = seed
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.num_threads = num_threads
        self.precision = precision

    @classmethod
    def settings(cls):
        """Return the names of the settings (tuple of str)."""
        return _SETTINGS

    @classmethod
    def from_spec(cls, spec=None, *, defaults=None, where="trainer"):
        """Return the settings a ``trainer=`` argument describes.

        Parameters
        ----------
        spec : `TrainerConfig`, dict or None, optional
            None: ``defaults``; a `TrainerConfig`: a copy of it; a dict:
            ``defaults`` with these settings replaced (``bf16`` is taken as
            ``precision``, see Notes of `TrainerConfig`).
        defaults : `TrainerConfig`, optional
            Default: ``TrainerConfig()``. Not modified.
        where : str, optional
            Names the argument in error messages.

        Returns
        -------
        config : `TrainerConfig`
            A new instance.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If ``spec`` is none of these, or a dict key is not a setting.
        """
        base = clone(defaults) if defaults is not None else cls()
        if spec is None:
            return base
        if isinstance(spec, TrainerConfig):
            return clone(spec)
        if not isinstance(spec, Mapping):
            msg = (f"{where}: expected a TrainerConfig, a dict of its settings or None, got "
                   f"{type(spec).__name__}")
            raise ValidationError(msg)
        settings = cls.normalise(spec, where=where)
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            msg = (f"{where}: {unknown} are not training settings; valid settings are "
                   f"{sorted(_SETTINGS)}")
            raise ValidationError(msg)
        return base.set_params(**settings)

    @staticmethod
    def normalise(settings, *, where="trainer"):
        """Return a dict of settings with the ``bf16`` alias turned into ``precision``.

        Parameters
        ----------
        settings : dict
        where : str, optional
            Names the settings in error messages.

        Returns
        -------
        settings : dict
            A new dict (see `~astro_cl.training.schema.normalise_trainer_settings`).
        """
        return normalise_trainer_settings(settings, where=where)

    def validate(self, where="TrainerConfig"):
        """Check every setting's type and range, and that the device exists.

        Parameters
        ----------
        where : str, optional
            Prefix of error messages.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            Naming the setting, its value and what was expected.
        """
        validate_params(type(self), self.get_params(deep=False), where=where)

    def resolve_device(self):
        """Return the `torch.device` training runs on (``device``, else CUDA if available)."""
        import torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def resolved_precision(self, device=None):
        """Return the precision used on a device: ``"fp32"`` or ``"bf16"``.

        Parameters
        ----------
        device : str or `torch.device`, optional
            Default: `resolve_device`.

        Returns
        -------
        str
        """
        return resolve_precision(self.precision,
                                 self.resolve_device() if device is None else device)

    def schedule_table(self):
        """Return the schedule as a table for `~astro_cl.training.trainer.lr_factor` (or None).

        A cosine schedule without ``epochs`` anneals over this run's ``epochs``.
        """
        spec = self.schedule
        if spec is None:
            return None
        table = (dict(spec) if isinstance(spec, Mapping)
                 else dict(SCHEDULE_PRESETS[spec]) if spec in SCHEDULE_PRESETS else None)
        if table is not None:
            if table.get("name") == "cosine":
                table.setdefault("epochs", int(self.epochs))
            return table
        msg = (f"schedule = {spec!r}: expected a table or one of "
               f"{', '.join(map(repr, SCHEDULE_PRESETS))}")
        raise ValidationError(msg)

    def build(self, module, loss, *, header=None, extra_state=None, callbacks=(),
              prefetch_threads=None, max_batches=None):
        """Return the `~astro_cl.training.trainer.Trainer` of these settings.

        Parameters
        ----------
        module : `torch.nn.Module`
            The network.
        loss : callable
            The model's loss (see `~astro_cl.training.trainer.Trainer`).
        header : dict, optional
            Checkpoint header (`~astro_cl.training.checkpoints.make_header`).
        extra_state : dict, optional
            Plain data saved in every checkpoint.
        callbacks : sequence of callable, optional
        prefetch_threads : int, optional
            Threads of the batch-preparation thread (a property of the loss).
        max_batches : int, optional
            A quick check of the whole path: one epoch of at most this many
            batches, and no checkpoints.

        Returns
        -------
        trainer : `~astro_cl.training.trainer.Trainer`
        """
        from astro_cl.training.trainer import Trainer

        return Trainer(
            module, loss, optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
            schedule=self.schedule_table(), epochs=self.epochs, batch_size=self.batch_size,
            validation_fraction=self.validation_fraction, patience=self.patience,
            seed=self.seed, device=self.resolve_device(),
            checkpoint_dir=None if max_batches else self.checkpoint_dir, header=header,
            extra_state=extra_state, progress=self.progress, num_threads=self.num_threads,
            precision=self.precision, callbacks=callbacks, prefetch_threads=prefetch_threads,
            max_batches=max_batches)
