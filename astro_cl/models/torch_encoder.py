"""`TorchEncoder`: the base of models that are a torch network plus a loss.

A model is a network and a loss; how it is trained is a
`~astro_cl.training.TrainerConfig` given to `TorchEncoder.fit` (as in
torchgeo and Lightning: the model holds the module and the loss, the trainer
the epochs, devices and precision). A subclass -- astro_cl's own
`~astro_cl.models.simclr.SimCLR` and `~astro_cl.models.regressor.CNNRegressor`,
or a plugin's -- stores its model parameters in ``__init__`` and implements:

``build_module(info)``
    Return the `torch.nn.Module` for inputs described by ``info`` (a dict
    from `TorchEncoder.input_info`: ``in_channels``, ``survey``, ``bands``).
``build_loss(info)``
    Return the loss: ``loss(module, batch, generator) -> scalar tensor``, or
    an object with ``prepare(batch, generator)`` (data work, run ahead in a
    background thread) and ``compute(module, prepared)`` (see
    `~astro_cl.training.trainer.Trainer`).

and may override:

``input_info(source)``
    Describe the training inputs (add what the network or the loss needs;
    the dict is saved with the model and given back to ``build_module`` on
    `load`).
``training_targets()``
    What the batches carry as targets (None: none; ``"maps"``: every map; a
    tuple of map names).
``default_trainer()``
    The training settings used when ``fit`` gets none (the study's).
``transform(X)``
    The model's output (default: the network's output on every input).

Everything else is provided: fitting on surveys, records, batches or batch
sources, with a preprocessor whose state is saved with the model; the input
contract checked on new data; batching; precision; `save` and `load` of one
self-contained file (`astro_cl.models.artefact`).

This module does not import torch; it is imported when a model is fitted or
used.
"""

from pathlib import Path
from typing import ClassVar

import numpy as np

from astro_cl.exceptions import CheckpointError, ValidationError
from astro_cl.models.base import Encoder
from astro_cl.training.schema import validate_params
from astro_cl.training.settings import TrainerConfig

__all__ = ["TorchEncoder"]


def _is_source_like(X):
    from astro_cl.data.batch import TensorBatch
    from astro_cl.training.data import is_batch_source

    return isinstance(X, TensorBatch) or (is_batch_source(X) and not _is_survey(X))


def _is_survey(X):
    from astro_cl.surveys.base import Survey

    return isinstance(X, Survey)


def _as_survey(X):
    """Return ``X`` as a survey (a list of records becomes an in-memory one), else None."""
    from astro_cl.data.record import GalaxyRecord
    from astro_cl.surveys.base import Survey

    if isinstance(X, Survey):
        return X
    if isinstance(X, GalaxyRecord):
        X = [X]
    if isinstance(X, (list, tuple)) and X and all(isinstance(r, GalaxyRecord) for r in X):
        from astro_cl.surveys.memory import InMemorySurvey

        return InMemorySurvey(records=list(X))
    return None


class TorchEncoder(Encoder):
    """Base class of models made of a torch network and a loss.

    Subclasses implement `build_module` and `build_loss` (see the module
    documentation for the optional hooks). Their ``__init__`` takes the model
    parameters only; training settings go to `fit` as a
    `~astro_cl.training.TrainerConfig`.

    Attributes
    ----------
    module_ : `torch.nn.Module`
        The trained network (in evaluation mode).
    info_ : dict
        The description of the inputs the network was built for.
    trainer_ : `~astro_cl.training.TrainerConfig`
        The settings it was trained with.
    history_ : list of dict
        One row per epoch (``epoch``, ``lr``, ``train_loss``, ``val_loss`` ...).
    preprocessor_ : `~astro_cl.preprocess.Preprocessor` or None
        The fitted preprocessing of raw data.
    contract_ : `~astro_cl.models.InputContract` or None
        What inputs the model accepts.
    provenance_ : dict
        Plain description of the run.
    """

    #: Intra-op threads of the trainer's batch-preparation thread (None: as for
    #: training). One suits a light ``prepare`` (pixel permutations, element-wise
    #: maps); see ``prefetch_threads`` of `~astro_cl.training.trainer.Trainer`.
    prefetch_threads: ClassVar[int | None] = None

    # -- hooks ------------------------------------------------------------------
    def build_module(self, info):
        """Return the network for inputs described by ``info``.

        Parameters
        ----------
        info : dict
            From `input_info` (when fitting) or the saved model (when loading).

        Returns
        -------
        module : `torch.nn.Module`
        """
        msg = f"{type(self).__name__} must implement build_module(info)"
        raise NotImplementedError(msg)

    def build_loss(self, info):
        """Return the training loss.

        Parameters
        ----------
        info : dict
            From `input_info`.

        Returns
        -------
        loss : callable or object
            ``loss(module, batch, generator) -> scalar tensor``, or an object
            with ``prepare(batch, generator)`` and ``compute(module, prepared)``
            (see `~astro_cl.training.trainer.Trainer`). ``module`` is what the
            loss must call to run the network (it may be wrapped for
            precision and data parallelism).
        """
        msg = f"{type(self).__name__} must implement build_loss(info)"
        raise NotImplementedError(msg)

    def input_info(self, source):
        """Describe the training inputs for `build_module` and `build_loss`.

        Parameters
        ----------
        source : batch source
            The training data (``len``, ``ids``, ``batch(indices)``).

        Returns
        -------
        info : dict
            Plain types only (it is saved with the model): ``in_channels``
            (those the network sees: an augmenter with ``output_channels``,
            such as `~astro_cl.augment.PreprocessedViews`, may change them),
            ``survey`` and ``bands``.
        """
        first = source.batch(np.array([0]))
        channels = int(first.data.shape[1])
        aug = getattr(self, "augmenter", None)
        if callable(getattr(aug, "output_channels", None)):
            # a per-view preprocessor (astro_cl.augment.PreprocessedViews) feeds the
            # network other channels than the source holds
            channels = int(aug.output_channels(channels))
        return {"in_channels": channels,
                "survey": str(first.meta.get("survey", "")),
                "bands": [str(b) for b in first.meta.get("bands", [])]}

    def training_targets(self):
        """Return what the training batches carry as targets.

        Returns
        -------
        targets : None, "maps" or tuple of str
            None (the default): no targets; ``"maps"``: every map of the
            records; a tuple: these maps.
        """
        return None

    def default_trainer(self):
        """Return the training settings `fit` uses when it is given none.

        Returns
        -------
        trainer : `~astro_cl.training.TrainerConfig`
            Here ``TrainerConfig()``; models override it with their study's.
        """
        return TrainerConfig()

    def resolve_augmenter(self):
        """Return the model's ``augmenter`` parameter as an Augmenter (or None).

        A specification (a list of step dicts or a TOML path) is built with
        ``astro_cl.augment.config.build_augmenter``.

        Returns
        -------
        augmenter : `~astro_cl.augment.Augmenter` or None
        """
        from astro_cl.augment.base import Augmenter

        spec = getattr(self, "augmenter", None)
        if spec is None or isinstance(spec, Augmenter):
            return spec
        try:
            from astro_cl.augment.config import build_augmenter
        except ImportError as exc:
            msg = (f"augmenter: got a specification {spec!r}, but astro_cl.augment.config is "
                   "not available to build it; pass an Augmenter instance")
            raise ValidationError(msg) from exc
        return build_augmenter(spec)

    @classmethod
    def split_settings(cls, params):
        """Split a dict of model parameters and training settings.

        For callers that take both in one dict (the studies' ``simclr=`` and
        ``unet=`` arguments).

        Parameters
        ----------
        params : dict

        Returns
        -------
        model_params, settings : dict
            Parameters of the model's ``__init__``, and training settings
            (`~astro_cl.training.TrainerConfig`; ``bf16`` as ``precision``).

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If a key is neither.
        """
        names = set(cls._param_names())
        model = {k: v for k, v in params.items() if k in names}
        settings = TrainerConfig.normalise({k: v for k, v in params.items() if k not in names},
                                           where=cls.__name__)
        unknown = sorted(set(settings) - set(TrainerConfig.settings()))
        if unknown:
            msg = (f"{cls.__name__}: {unknown} are neither model parameters ({sorted(names)}) "
                   f"nor training settings ({sorted(TrainerConfig.settings())})")
            raise ValidationError(msg)
        return model, settings

    # -- training -----------------------------------------------------------------
    def fit(self, X, y=None, *, trainer=None, resume=False, callbacks=(), preprocessor=None,
            cache_dir=None, provenance=None, fast_dev_run=False):
        """Train the network.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
            Training data. With a ``preprocessor``, a survey (or a list of
            `~astro_cl.data.GalaxyRecord`) of raw records.
        y : None
            Unused (targets come with the batches).
        trainer : `~astro_cl.training.TrainerConfig`, dict or None, optional
            How to train: None, the model's `default_trainer`; a dict, those
            defaults with some settings replaced (e.g. ``{"epochs": 5}``).
            Kept as ``trainer_`` and saved with the model.
        resume : bool, optional
            Continue from ``checkpoint_dir/last.pt`` when it exists.
        callbacks : sequence of callable, optional
            Passed to `~astro_cl.training.trainer.Trainer`.
        preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
            Turns raw records into network inputs; fitted on ``X`` first if it
            is not fitted yet. It is kept as ``preprocessor_``, saved with the
            model, and applied by `input_source` to new raw data.
        cache_dir : str or `~pathlib.Path`, optional
            Where the preprocessed inputs are cached (default:
            ``checkpoint_dir/cache``, or a temporary folder).
        provenance : dict, optional
            Plain description of the run (training configuration, survey
            parameters), saved with the model as ``provenance_``.
        fast_dev_run : bool or int, optional
            Run only this many training (and validation) batches of one
            epoch (``True``: one), write no checkpoints, and keep the result
            in memory: a check that the whole path works, as in PyTorch
            Lightning.

        Returns
        -------
        self

        Raises
        ------
        astro_cl.exceptions.ValidationError
            Before anything is read: if a model parameter or a training
            setting has the wrong type or range, or the device does not exist.
        """
        settings = TrainerConfig.from_spec(trainer, defaults=self.default_trainer(),
                                           where=f"{type(self).__name__}.fit: trainer")
        self._validate_params()
        settings.validate(where=f"{type(self).__name__}.fit: trainer")
        source, survey = self._training_source(X, settings, preprocessor, cache_dir,
                                               fast_dev_run)
        info = self.input_info(source)
        contract = self._contract(source, survey, info, preprocessor)
        self._train(source, info, settings, callbacks=callbacks, resume=resume,
                    fast_dev_run=fast_dev_run)
        self.preprocessor_ = preprocessor
        self.contract_ = contract
        self.provenance_ = dict(provenance or {})
        if not fast_dev_run:
            self.after_fit(source)
        return self

    def _train(self, source, info, settings, *, callbacks, resume, fast_dev_run):
        """Build the network and its loss, train them, and keep the fitted state.

        Sets ``history_``, ``module_`` (in eval mode), ``info_`` and ``trainer_``.
        """
        import torch

        torch.manual_seed(int(settings.seed))  # the network's initial weights
        module = self.build_module(info)
        runner = settings.build(module, self.build_loss(info), header=self._header(settings),
                                extra_state={"info": info}, callbacks=callbacks,
                                prefetch_threads=self.prefetch_threads,
                                max_batches=int(fast_dev_run) if fast_dev_run else None)
        self.history_ = runner.fit(source, resume=resume and not fast_dev_run)
        self.module_ = runner.module.eval()
        self.info_ = info
        self.trainer_ = settings

    def after_fit(self, source):
        """Finish the fitted model on its training data (a hook; the default does nothing).

        Called by `fit` after training, with the training batch source (not
        after a fast dev run). A model can store what it learns here in
        ``info_``, which is saved with it (e.g. the calibration of
        `~astro_cl.models.regressor.CNNRegressor`).

        Parameters
        ----------
        source : batch source
            The training inputs (and targets).
        """

    def _training_source(self, X, settings, preprocessor, cache_dir, fast_dev_run):
        """Return the training batch source and the survey it comes from (or None)."""
        kind = getattr(self, "kind", None)
        if preprocessor is None:
            survey = _as_survey(X) if not _is_source_like(X) else None
            source = self._source(X)
        else:
            survey = _as_survey(X)
            if survey is None:
                msg = (f"{type(self).__name__}.fit: with a preprocessor, give a survey or a list "
                       f"of GalaxyRecord, not {type(X).__name__}")
                raise ValidationError(msg)
            if cache_dir is None and settings.checkpoint_dir and not fast_dev_run:
                cache_dir = Path(settings.checkpoint_dir) / "cache"
            device = settings.resolve_device()
            if getattr(getattr(self, "augmenter", None), "changes_channels", False):
                # per-view preprocessing (astro_cl.augment.PreprocessedViews): the
                # augmenter preprocesses every view, so training reads the raw cubes
                from astro_cl.preprocess.store import fit_preprocessor

                fit_preprocessor(survey, preprocessor, directory=cache_dir, kind=kind,
                                 device=device)
                source = self._source(survey)
            else:
                # the store fits the preprocessor first if needed (on a sample, once
                # per torchrun job)
                source = self._preprocessed_source(
                    survey, preprocessor, cache_dir=cache_dir, targets=self.training_targets(),
                    device=device, progress=bool(settings.progress))
        if len(source) == 0:
            msg = f"{type(self).__name__}.fit: no galaxies to train on"
            raise ValidationError(msg)
        return source, survey

    def _contract(self, source, survey, info, preprocessor):
        """Return the `~astro_cl.models.InputContract` of the training inputs."""
        from astro_cl.models.contract import InputContract

        kind = getattr(self, "kind", None)
        first = source.batch(np.array([0]))
        shape = tuple(first.data.shape[-2:])
        if survey is not None and len(survey):
            return InputContract.from_record(
                survey[0], kind=kind or survey.default_kind, in_channels=info["in_channels"],
                spatial_shape=shape, preprocessor=preprocessor)
        return InputContract(kind=str(kind or first.meta.get("kind") or "images"),
                             in_channels=info["in_channels"], spatial_shape=shape,
                             bands=[str(b) for b in first.meta.get("bands", [])])

    def _header(self, settings=None):
        from astro_cl.training.checkpoints import make_header

        settings = settings if settings is not None else getattr(self, "trainer_", None)
        return make_header(self.name, self.get_params(deep=False),
                           trainer=None if settings is None else settings.get_params(deep=False))

    def _validate_params(self):
        """Check every parameter's type and range; raise `ValidationError`."""
        validate_params(type(self), self.get_params(deep=False), where=type(self).__name__)

    # -- data ----------------------------------------------------------------------
    def _source(self, X, *, with_targets=True):
        """Return a batch source of ``X`` (a survey read with `training_targets`)."""
        from astro_cl.training.data import as_batch_source

        kind = getattr(self, "kind", None)
        targets = self.training_targets() if with_targets and _is_survey(X) else None
        if targets is None:
            return as_batch_source(X, kind=kind)
        names = None if isinstance(targets, str) else tuple(targets)
        return as_batch_source(X, kind=kind, targets="maps", target_names=names)

    def _preprocessed_source(self, survey, preprocessor, *, cache_dir=None, targets=None,
                             device=None, progress=True):
        """Return the preprocessed inputs of a survey as a batch source (a store entry).

        The store (`~astro_cl.preprocess.store.PreprocessedStore`) fits the
        preprocessor if needed; under torchrun, rank 0 fits and builds and the
        other ranks read. Without ``cache_dir`` the entry lives in a temporary
        folder of this process, removed when the source is garbage-collected.
        """
        import shutil
        import tempfile
        import weakref

        from astro_cl.preprocess.store import PreprocessedStore

        tmp = None
        if cache_dir is None:
            tmp = tempfile.mkdtemp(prefix="astro_cl-inputs-")
            cache_dir = tmp
        source = PreprocessedStore(cache_dir).get_or_build(
            survey, preprocessor=preprocessor, kind=getattr(self, "kind", None),
            targets=targets, progress=bool(progress), distributed=None if tmp is None else False,
            device=device)
        if tmp is not None:
            # the source reads its chunks lazily: the folder goes when the source does
            weakref.finalize(source, shutil.rmtree, tmp, ignore_errors=True)
        return source

    def input_source(self, X, *, cache_dir=None):
        """Return the network inputs of new data, preprocessed as in training.

        Raw surveys and records are checked against ``contract_`` and go
        through ``preprocessor_``; batches and sources are used as they are.

        Parameters
        ----------
        X : survey, list of `~astro_cl.data.GalaxyRecord`, TensorBatch or batch source
        cache_dir : str or `~pathlib.Path`, optional
            Where raw data preprocessed with ``preprocessor_`` are cached
            (default: a temporary folder).

        Returns
        -------
        source : batch source

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the data break the model's input contract.
        """
        pre = getattr(self, "preprocessor_", None)
        contract = getattr(self, "contract_", None)
        survey = None if _is_source_like(X) else _as_survey(X)
        if survey is not None and contract is not None and len(survey):
            contract.check_record(survey[0], source=f"survey {survey.name!r}")
        if survey is not None and pre is not None:
            source = self._preprocessed_source(
                survey, pre, cache_dir=cache_dir, device=self._module_device(),
                progress=bool(getattr(self._settings(), "progress", True)))
        else:
            source = self._source(survey if survey is not None else X, with_targets=False)
        if contract is not None and len(source):
            where = f"survey {survey.name!r}" if survey is not None else type(X).__name__
            contract.check_input(tuple(source.batch(np.array([0])).data.shape), source=where)
        return source

    # -- inference -----------------------------------------------------------------
    def _settings(self):
        """Return the training settings of a fitted model, else the defaults."""
        settings = getattr(self, "trainer_", None)
        return settings if settings is not None else self.default_trainer()

    def _module_device(self):
        return next(self.module_.parameters()).device if self._is_fitted() else None

    def _is_fitted(self):
        return getattr(self, "module_", None) is not None

    def _check_fitted(self):
        if not self._is_fitted():
            msg = f"{type(self).__name__} is not fitted: call fit() or load() first"
            raise ValidationError(msg)

    def network(self):
        """Return the trained network as a callable in the model's precision.

        Under ``precision`` bf16 (`~astro_cl.training.TrainerConfig`; "auto"
        on hardware with native bfloat16) calls run under bfloat16 autocast
        and return float32 outputs; otherwise this is ``module_`` itself.

        Returns
        -------
        forward : callable
        """
        from astro_cl.training.precision import precision_forward, resolve_precision

        self._check_fitted()
        device = self._module_device()
        return precision_forward(self.module_,
                                 resolve_precision(self._settings().precision, device), device)

    def _check_input_shape(self, shape):
        """Refuse network inputs of another channel count, or too small for the network."""
        name = type(self).__name__
        if len(shape) != 4:
            msg = f"{name}: expected inputs of shape (N, C, H, W), got {tuple(shape)}"
            raise ValidationError(msg)
        channels, height, width = (int(v) for v in shape[1:])
        info = getattr(self, "info_", None) or {}
        expected = info.get("in_channels")
        size = int(getattr(self.module_, "min_input_size", 1))
        bands = info.get("bands") or []
        wanted = (f"{expected} input channels" + (f" (bands {', '.join(bands)})" if bands else "")
                  + f" of at least {size}x{size} px")
        if (expected is not None and channels != int(expected)) or min(height, width) < size:
            msg = (f"{name}: the model expects {wanted}; the data have {channels} channels of "
                   f"{height}x{width} px")
            raise ValidationError(msg)

    def iter_batches(self, source, batch_size=None):
        """Yield the batches of a source on the network's device, checked against the model.

        Parameters
        ----------
        source : batch source
            E.g. from `input_source`.
        batch_size : int, optional
            Default: the training batch size, or 64.

        Yields
        ------
        batch : `~astro_cl.data.batch.TensorBatch`

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the inputs have another channel count than the network, or are
            too small for it (checked on the first batch).
        """
        import torch

        self._check_fitted()
        n = len(source)
        step = int(batch_size or self._settings().batch_size or 64)
        device = self._module_device()
        for start in range(0, n, step):
            batch = source.batch(torch.arange(start, min(n, start + step)))
            if start == 0:  # checked before torch fails with a shape error deep in the network
                self._check_input_shape(tuple(batch.data.shape))
            yield batch.to(device)

    def transform(self, X, *, batch_size=None):
        """Return the network's output for every input.

        Subclasses whose network needs other arguments, or whose output
        needs post-processing, override this.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        batch_size : int, optional

        Returns
        -------
        out : `numpy.ndarray`
            float32, one row per input, ``module_(data, mask)``.
        """
        import torch

        source = self.input_source(X)
        forward = self.network()
        self.module_.eval()
        out = []
        with torch.no_grad():
            for batch in self.iter_batches(source, batch_size):
                out.append(forward(batch.data, batch.mask).float().cpu())
        return torch.cat(out).numpy().astype(np.float32)

    # -- files ---------------------------------------------------------------------
    def save(self, path):
        """Write the fitted model to one self-contained file (tensors and plain types only).

        Besides the weights, the file holds the fitted preprocessor, the input
        contract, the training settings, history and provenance, and the
        versions of the packages it was trained with, so that
        `astro_cl.load_model` can apply the model to new raw data. A
        human-readable model card is written beside it (``<stem>.md``).

        Parameters
        ----------
        path : str or `~pathlib.Path`
        """
        from astro_cl.models.artefact import artefact_state, write_model_card
        from astro_cl.training.checkpoints import save_checkpoint

        self._check_fitted()
        state = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
        save_checkpoint(path, {"model_state": state, "extra": {"info": dict(self.info_)},
                               "history": [dict(r) for r in getattr(self, "history_", [])],
                               **artefact_state(self), **self._extra_artefact_state()},
                        self._header())
        write_model_card(self, path)

    def _extra_artefact_state(self):
        """Return more entries for the model file (plain types); none by default.

        A subclass that keeps more fitted state than one preprocessor and one
        contract (`~astro_cl.models.clip.CLIPEncoder`: its cube side) adds
        it here and reads it back in `_restore_extra_artefact_state`.
        """
        return {}

    def _restore_extra_artefact_state(self, checkpoint, path):
        """Read back what `_extra_artefact_state` wrote; nothing by default.

        Parameters
        ----------
        checkpoint : dict
            The loaded model file.
        path : str or `~pathlib.Path`
            Its path, for messages.
        """

    @classmethod
    def load(cls, path, *, device="cpu", trainer=None, **overrides):
        """Build a fitted model from its file (written by `save` or the trainer).

        Parameters
        ----------
        path : str or `~pathlib.Path`
        device : str, optional
            Where to put the network.
        trainer : dict, optional
            Settings replacing the saved ones (e.g. ``{"precision": "fp32"}``
            for inference in float32).
        **overrides
            Model parameters replacing the saved ones (e.g. ``augmenter``).

        Returns
        -------
        model : `TorchEncoder`
            Fitted, in evaluation mode.

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            If the file belongs to another model or astro_cl version, or its
            weights do not fit the network.
        """
        from astro_cl.models.artefact import restore_artefact
        from astro_cl.training.checkpoints import load_checkpoint

        ckpt = load_checkpoint(path, model_name=cls.name, map_location=device)
        header = ckpt["header"]
        config = dict(header["config"])
        valid = set(cls._param_names())
        # JSON has no tuples; stored components are descriptions only, never rebuilt
        params = {k: (tuple(v) if isinstance(v, list) else
                      None if isinstance(v, dict) and "params" in v else v)
                  for k, v in config.items() if k in valid}
        params.update(overrides)
        self = cls(**params)
        # files written before TrainerConfig kept the settings among the parameters
        saved = header.get("trainer") or {k: v for k, v in config.items()
                                          if k in TrainerConfig.settings() or k == "bf16"}
        settings = TrainerConfig.from_spec(saved, defaults=self.default_trainer(),
                                           where=f"{path}: trainer")
        self.trainer_ = TrainerConfig.from_spec(trainer, defaults=settings, where="trainer")
        info = ckpt.get("extra", {}).get("info")
        if not isinstance(info, dict):
            msg = f"{path}: checkpoint has no network description ('extra' -> 'info')"
            raise CheckpointError(msg)
        module = self.build_module(info)
        try:
            module.load_state_dict(ckpt["model_state"])
        except RuntimeError as exc:
            msg = f"{path}: weights do not fit the {cls.name!r} network: {exc}"
            raise CheckpointError(msg) from exc
        self.module_ = module.to(device).eval()
        self.info_ = info
        self.history_ = list(ckpt.get("history", []))
        restore_artefact(self, ckpt, source=str(path))
        self._restore_extra_artefact_state(ckpt, path)
        return self
