"""The contrastive encoder of the eCALIFA study (SimCLR), registered as ``"simclr"``.

This module does not import torch; the network (`astro_cl.models.backbones`)
and the trainer are imported when the encoder is fitted or used.
"""

from pathlib import Path

import numpy as np

from astro_cl.exceptions import CheckpointError, ValidationError
from astro_cl.models.base import Encoder
from astro_cl.training.schema import (
    TRAINER_CONSTRAINTS,
    Interval,
    Options,
    SequenceOf,
    validate_params,
)

__all__ = ["SimCLR"]

_SCHEDULES = {
    "constant": {"name": "constant"},
    "step": {"name": "step", "step_size": 2, "gamma": 0.75},
    "multistep": {"name": "multistep", "milestones": [8, 10], "gamma": 0.1},
}


def _schedule(spec):
    if spec is None or isinstance(spec, dict):
        return spec
    if spec in _SCHEDULES:
        return dict(_SCHEDULES[spec])
    msg = f"schedule: expected a dict or one of {sorted(_SCHEDULES)}, got {spec!r}"
    raise ValueError(msg)


def _resolve_augmenter(spec):
    """Return an Augmenter from an instance, a spec list or a TOML path (or None)."""
    from astro_cl.augment.base import Augmenter

    if spec is None or isinstance(spec, Augmenter):
        return spec
    try:
        from astro_cl.augment.config import build_augmenter
    except ImportError as exc:
        msg = (f"augmenter: got a specification {spec!r}, but astro_cl.augment.config is not "
               "available to build it; pass an Augmenter instance")
        raise ValidationError(msg) from exc
    return build_augmenter(spec)


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


class _NetworkEncoder(Encoder):
    """Shared machinery of the torch encoders: training, checkpoints, batching."""

    _trainer_params = ("optimizer", "lr", "weight_decay", "schedule", "epochs", "batch_size",
                       "validation_fraction", "patience", "seed", "device", "checkpoint_dir",
                       "progress", "num_threads", "bf16")
    #: Intra-op threads of the trainer's prefetch thread (None: as for training);
    #: see `~astro_cl.training.trainer.Trainer`.
    _prefetch_threads = None
    #: Accepted values of the parameters (`astro_cl.training.schema`), checked by
    #: `_validate_params` when fitting: construction only stores them (scikit-learn's rule).
    _parameter_constraints = {k: TRAINER_CONSTRAINTS[k] for k in _trainer_params}

    # -- to implement ------------------------------------------------------
    def _build_module(self, info):
        raise NotImplementedError

    def _loss(self):
        raise NotImplementedError

    def _source(self, X, *, with_targets=True):
        from astro_cl.training.data import as_batch_source

        return as_batch_source(X, kind=self.kind)

    def _info_from_source(self, source):
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

    # -- provided ------------------------------------------------------------
    def _device(self):
        import torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _header(self):
        from astro_cl.training.checkpoints import make_header

        return make_header(self.name, self.get_params(deep=False))

    def fit(self, X, y=None, *, resume=False, callbacks=(), preprocessor=None, cache_dir=None,
            provenance=None, fast_dev_run=False):
        """Train the network.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
            Training data. With a ``preprocessor``, a survey (or a list of
            `~astro_cl.data.GalaxyRecord`) of raw records.
        y : None
            Unused (targets come with the batches).
        resume : bool, optional
            Continue from ``checkpoint_dir/last.pt`` when it exists.
        callbacks : sequence of callable, optional
            Passed to `~astro_cl.training.trainer.Trainer`.
        preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
            Turns raw records into network inputs; fitted on ``X`` first if it
            is not fitted yet. It is kept as ``preprocessor_``, saved with the
            model, and applied by `embed` / `transform` to new raw data.
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
        """
        from astro_cl.models.contract import InputContract
        from astro_cl.training.trainer import Trainer

        self._validate_params()
        if preprocessor is not None:
            survey = _as_survey(X)
            if survey is None:
                msg = (f"{type(self).__name__}.fit: with a preprocessor, give a survey or a list "
                       f"of GalaxyRecord, not {type(X).__name__}")
                raise ValidationError(msg)
            if cache_dir is None and self.checkpoint_dir and not fast_dev_run:
                cache_dir = Path(self.checkpoint_dir) / "cache"
            if getattr(getattr(self, "augmenter", None), "changes_channels", False):
                # per-view preprocessing (astro_cl.augment.PreprocessedViews): the
                # augmenter preprocesses every view, so training reads the raw cubes
                from astro_cl.preprocess.store import fit_preprocessor

                fit_preprocessor(survey, preprocessor, directory=cache_dir, kind=self.kind,
                                 device=self._device())
                source = self._source(survey)
            else:
                # the store fits the preprocessor first if needed (on a sample, once
                # per torchrun job)
                source = self._preprocessed_source(survey, preprocessor, cache_dir=cache_dir,
                                                   targets=self._training_targets())
        else:
            survey = _as_survey(X) if not _is_source_like(X) else None
            source = self._source(X)
        if len(source) == 0:
            msg = f"{type(self).__name__}.fit: no galaxies to train on"
            raise ValidationError(msg)
        info = self._info_from_source(source)
        first = source.batch(np.array([0]))
        contract = None
        if survey is not None and len(survey):
            contract = InputContract.from_record(
                survey[0], kind=self.kind or survey.default_kind,
                in_channels=info["in_channels"], spatial_shape=tuple(first.data.shape[-2:]),
                preprocessor=preprocessor)
        else:
            contract = InputContract(kind=str(self.kind or first.meta.get("kind") or "images"),
                                     in_channels=info["in_channels"],
                                     spatial_shape=tuple(first.data.shape[-2:]),
                                     bands=[str(b) for b in first.meta.get("bands", [])])
        import torch

        torch.manual_seed(int(self.seed))
        module = self._build_module(info)
        trainer = Trainer(
            module, self._loss(), optimizer=self.optimizer, lr=self.lr,
            weight_decay=self.weight_decay, schedule=_schedule(self.schedule),
            epochs=self.epochs, batch_size=self.batch_size,
            validation_fraction=self.validation_fraction, patience=self.patience,
            seed=self.seed, device=self._device(),
            checkpoint_dir=None if fast_dev_run else self.checkpoint_dir,
            header=self._header(), extra_state={"info": info}, progress=self.progress,
            num_threads=self.num_threads, bf16=self.bf16, callbacks=callbacks,
            prefetch_threads=self._prefetch_threads,
            max_batches=None if not fast_dev_run else int(fast_dev_run))
        self.history_ = trainer.fit(source, resume=resume and not fast_dev_run)
        self.module_ = trainer.module.eval()
        self.info_ = info
        self.preprocessor_ = preprocessor
        self.contract_ = contract
        self.provenance_ = dict(provenance or {})
        return self

    # -- preprocessing and the input contract ---------------------------------------
    def _training_targets(self):
        """Return what the cache stores as targets when training (None: no targets)."""
        return None

    def _preprocessed_source(self, survey, preprocessor, *, cache_dir=None, targets=None):
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
            survey, preprocessor=preprocessor, kind=self.kind, targets=targets,
            progress=bool(self.progress), distributed=None if tmp is None else False,
            device=self._device())
        if tmp is not None:
            # the source reads its chunks lazily: the folder goes when the source does
            weakref.finalize(source, shutil.rmtree, tmp, ignore_errors=True)
        return source

    def _input_source(self, X, *, cache_dir=None):
        """Return the network inputs of new data, preprocessed as in training.

        Raw surveys and records are checked against ``contract_`` and go
        through ``preprocessor_``; batches and sources are used as they are.
        """
        pre = getattr(self, "preprocessor_", None)
        contract = getattr(self, "contract_", None)
        survey = None if _is_source_like(X) else _as_survey(X)
        if survey is not None and contract is not None and len(survey):
            contract.check_record(survey[0], source=f"survey {survey.name!r}")
        if survey is not None and pre is not None:
            source = self._preprocessed_source(survey, pre, cache_dir=cache_dir)
        else:
            source = self._source(survey if survey is not None else X, with_targets=False)
        if contract is not None and len(source):
            where = f"survey {survey.name!r}" if survey is not None else type(X).__name__
            contract.check_input(tuple(source.batch(np.array([0])).data.shape), source=where)
        return source

    def _check_fitted(self):
        if getattr(self, "module_", None) is None:
            msg = f"{type(self).__name__} is not fitted: call fit() or load() first"
            raise ValidationError(msg)

    def _validate_params(self):
        """Check every parameter's type and range, and the device; raise `ValidationError`."""
        validate_params(type(self), self.get_params(deep=False), where=type(self).__name__,
                        fallback=TRAINER_CONSTRAINTS)

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

    def _iter_batches(self, source, batch_size=None):
        import torch

        n = len(source)
        step = int(batch_size or self.batch_size or 64)
        device = next(self.module_.parameters()).device
        for start in range(0, n, step):
            batch = source.batch(torch.arange(start, min(n, start + step)))
            if start == 0:  # checked before torch fails with a shape error deep in the network
                self._check_input_shape(tuple(batch.data.shape))
            yield batch.to(device)

    def save(self, path):
        """Write the fitted model to one self-contained file (tensors and plain types only).

        Besides the weights, the file holds the fitted preprocessor, the input
        contract, the training history and provenance, and the versions of
        the packages it was trained with, so that `astro_cl.load_model` can
        apply the model to new raw data. A human-readable model card is
        written beside it (``<stem>.md``).

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
                               **artefact_state(self)},
                        self._header())
        write_model_card(self, path)

    @classmethod
    def load(cls, path, *, device="cpu", **overrides):
        """Build a fitted encoder from a checkpoint (written by `save` or the trainer).

        Parameters
        ----------
        path : str or `~pathlib.Path`
        device : str, optional
            Where to put the network.
        **overrides
            Parameters replacing those stored in the checkpoint (e.g. ``augmenter``).

        Returns
        -------
        encoder
            Fitted, in evaluation mode.

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            If the checkpoint belongs to another model or astro_cl version.
        """
        from astro_cl.training.checkpoints import load_checkpoint

        ckpt = load_checkpoint(path, model_name=cls.name, map_location=device)
        config = dict(ckpt["header"]["config"])
        valid = set(cls._param_names())
        params = {k: (tuple(v) if isinstance(v, list) and k in ("hidden", "projection_head",
                                                                "target_names") else v)
                  for k, v in config.items() if k in valid}
        # Stored components are descriptions only: never rebuilt from a file.
        params = {k: (None if isinstance(v, dict) and "params" in v else v)
                  for k, v in params.items()}
        params.update(overrides)
        params["device"] = device
        self = cls(**params)
        info = ckpt.get("extra", {}).get("info")
        if not isinstance(info, dict):
            msg = f"{path}: checkpoint has no network description ('extra' -> 'info')"
            raise CheckpointError(msg)
        module = self._build_module(info)
        try:
            module.load_state_dict(ckpt["model_state"])
        except RuntimeError as exc:
            msg = f"{path}: weights do not fit the {cls.name!r} network: {exc}"
            raise CheckpointError(msg) from exc
        self.module_ = module.to(device).eval()
        self.info_ = info
        self.history_ = list(ckpt.get("history", []))
        from astro_cl.models.artefact import restore_artefact

        restore_artefact(self, ckpt, source=str(path))
        return self


class SimCLR(_NetworkEncoder):
    """Contrastive encoder trained with the NT-Xent loss on two augmented views.

    The defaults are the eCALIFA study's: the conv backbone (64/128/256/512
    channels, kernels 5/3/3/3, ReLU + max-pool + batch norm, masked global max
    pooling, dense 512 -> 128 -> 64 with batch norm and dropout), no projection
    head, temperature 0.5, Adam with lr 8e-4 decayed x0.75 every 2 epochs, at
    most 50 epochs, early stopping with patience 3, seed 42, one batch of the
    whole training set.

    Parameters
    ----------
    backbone : {"conv", "resnet"}, optional
        Network trunk.
    width : float, optional
        Width multiplier of every hidden layer.
    embedding_dim : int, optional
        Size of the embedding (64).
    hidden : tuple of int, optional
        Hidden widths of the dense head.
    dropout : float, optional
        Dropout of the dense head.
    pooling : {"max", "mean"}, optional
        Masked global pooling.
    projection_head : tuple of int, optional
        Widths of a projection MLP used in training only (None: the study).
    temperature : float, optional
        NT-Xent temperature.
    negatives : {"cross", "all"}, optional
        See `astro_cl.models.losses.nt_xent`.
    augmenter : `~astro_cl.augment.Augmenter`, list of dict or str, optional
        Makes the two views; a specification is built with
        ``astro_cl.augment.config.build_augmenter``. None: views differ only by
        dropout (useful for tests, not for science).
    kind : str, optional
        Record field used as input when fitting on a survey.
    optimizer : {"adam", "adamw", "sgd"}, optional
        See `~astro_cl.training.trainer.Trainer`.
    lr : float, optional
    weight_decay : float, optional
    schedule : str or dict, optional
        ``"step"`` (x0.75 every 2 epochs), ``"multistep"``, ``"constant"`` or
        a dict (see `astro_cl.training.trainer.lr_factor`).
    epochs : int, optional
    batch_size : int or None, optional
        None: the whole training set per step (the study).
    validation_fraction : float, optional
    patience : int or None, optional
    seed : int, optional
    device : str, optional
    checkpoint_dir : str, optional
    progress : bool, optional
    num_threads : int, optional
    bf16 : bool, optional

    Notes
    -----
    As in scikit-learn, the constructor only stores the parameters; `fit`
    checks them first and raises `~astro_cl.exceptions.ValidationError`
    naming a parameter with a value of the wrong type or range (e.g.
    ``width=-1``) or a device this machine does not have.
    """

    name = "simclr"
    description = "SimCLR contrastive encoder (eCALIFA study: conv net, NT-Xent, masked pooling)."
    output_kind = "embedding"
    _parameter_constraints = {
        **_NetworkEncoder._parameter_constraints,
        "backbone": [Options("conv", "resnet")],
        "width": [Interval(float, 0, None, closed="neither")],
        "embedding_dim": [Interval(int, 1, None)],
        "hidden": [SequenceOf(Interval(int, 1, None))],
        "dropout": [Interval(float, 0, 1, closed="left")],
        "pooling": [Options("max", "mean")],
        "projection_head": [None, SequenceOf(Interval(int, 1, None))],
        "temperature": [Interval(float, 0, None, closed="neither")],
        "negatives": [Options("cross", "all")],
        "kind": [None, str],
    }

    def __init__(self, *, backbone="conv", width=1.0, embedding_dim=64, hidden=(512, 128),
                 dropout=0.1, pooling="max", projection_head=None, temperature=0.5,
                 negatives="cross", augmenter=None, kind=None, optimizer="adam", lr=8e-4,
                 weight_decay=0.0, schedule="step", epochs=50, batch_size=None,
                 validation_fraction=0.0, patience=3, seed=42, device=None, checkpoint_dir=None,
                 progress=True, num_threads=None, bf16=False):
        self.backbone = backbone
        self.width = width
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.dropout = dropout
        self.pooling = pooling
        self.projection_head = projection_head
        self.temperature = temperature
        self.negatives = negatives
        self.augmenter = augmenter
        self.kind = kind
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
        self.bf16 = bf16

    def _build_module(self, info):
        from astro_cl.models.backbones import ContrastiveNet, build_backbone

        net = build_backbone(self.backbone, info["in_channels"], hidden=tuple(self.hidden),
                             out_features=int(self.embedding_dim), dropout=float(self.dropout),
                             pooling=self.pooling, width=float(self.width))
        return ContrastiveNet(net, self.projection_head)

    def _loss(self):
        return _ContrastiveLoss(_resolve_augmenter(self.augmenter), float(self.temperature),
                                self.negatives)

    def transform(self, X, *, batch_size=None):
        """Return L2-normalised embeddings of un-augmented inputs.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        batch_size : int, optional

        Returns
        -------
        embeddings : `numpy.ndarray`
            ``(N, embedding_dim)`` float32 unit vectors.
        """
        return self._embed_views(self._input_source(X), n_views=1, seed=0,
                                 batch_size=batch_size)

    def _embed_views(self, source, *, n_views, seed, batch_size):
        import torch
        import torch.nn.functional as F

        from astro_cl.augment.base import make_generator

        self._check_fitted()
        aug = _resolve_augmenter(self.augmenter) if n_views > 1 else None
        if n_views > 1 and aug is None:
            msg = "embed: n_views > 1 needs an augmenter (set the 'augmenter' parameter)"
            raise ValidationError(msg)
        self.module_.eval()
        out = []
        with torch.no_grad():
            for i, batch in enumerate(self._iter_batches(source, batch_size)):
                views = []
                for v in range(n_views):
                    b = batch
                    if aug is not None:
                        gen = make_generator(int(seed) * 1_000_003 + i * 1009 + v, batch.device)
                        b = aug(batch, generator=gen)
                    z = self.module_(b.data, b.mask, project=False)
                    views.append(F.normalize(z.float(), dim=1))
                z = torch.stack(views).median(dim=0).values if n_views > 1 else views[0]
                out.append(F.normalize(z, dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    def embed(self, X, *, n_views=1, seed=0, batch_size=None, cache_dir=None):
        """Return the embedding table of a survey or batch.

        A galaxy's embedding is, as in the eCALIFA study, the median over
        ``n_views`` augmented realisations of its L2-normalised vectors,
        re-normalised (``n_views=1``: the un-augmented input).

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        n_views : int, optional
            Augmented realisations per galaxy.
        seed : int, optional
            Seed of the augmentations.
        batch_size : int, optional
        cache_dir : str or `~pathlib.Path`, optional
            Where raw data preprocessed with the model's saved preprocessor
            are cached (default: a temporary folder).

        Returns
        -------
        table : `~astropy.table.QTable`
            Columns ``id`` (str) and ``embedding`` (float32, ``(N, D)``); meta
            ``model``, ``model_params``, ``survey``, ``astro_cl_version``,
            ``n_views``, ``seed``.
        """
        from astropy.table import QTable

        from astro_cl import __version__
        from astro_cl.surveys.base import Survey
        from astro_cl.training.checkpoints import jsonable
        from astro_cl.training.data import source_meta

        if int(n_views) < 1:
            msg = f"n_views: expected a positive integer, got {n_views!r}"
            raise ValueError(msg)
        source = self._input_source(X, cache_dir=cache_dir)
        emb = self._embed_views(source, n_views=int(n_views), seed=seed, batch_size=batch_size)
        survey = X.name if isinstance(X, Survey) else source_meta(source).get("survey", "")
        table = QTable({"id": np.asarray(source.ids, dtype=str), "embedding": emb})
        table.meta.update({"model": self.name, "model_params": jsonable(self.get_params(False)),
                           "survey": str(survey), "astro_cl_version": __version__,
                           "n_views": int(n_views), "seed": int(seed)})
        return table


class _ContrastiveLoss:
    """NT-Xent on two augmented views; embeddings gathered over ranks."""

    def __init__(self, augmenter, temperature, negatives):
        self.augmenter = augmenter
        self.temperature = temperature
        self.negatives = negatives

    def __call__(self, model, batch, generator):
        return self.compute(model, self.prepare(batch, generator))

    def prepare(self, batch, generator):
        """Augment two views and stack them into one network input (data work only)."""
        n = len(batch)
        both = batch.repeat(2)
        if self.augmenter is not None:
            # one call on the doubled batch: every row gets its own draws, so the
            # two halves are independent views, at half the per-call overhead
            both = self.augmenter(both, generator=generator)
        if len(both) != 2 * n:
            msg = (f"the augmenter returned {len(both)} images for {2 * n} views: "
                   "augmenters must keep the batch size")
            raise ValidationError(msg)
        return both.data, both.mask

    def compute(self, model, prepared):
        """Return the NT-Xent loss of the stacked views (embeddings gathered over ranks)."""
        from astro_cl.models.losses import nt_xent
        from astro_cl.training.distributed import all_gather_with_grad

        data, mask = prepared
        z1, z2 = model(data, mask).float().chunk(2)
        return nt_xent(all_gather_with_grad(z1), all_gather_with_grad(z2), self.temperature,
                       negatives=self.negatives)
