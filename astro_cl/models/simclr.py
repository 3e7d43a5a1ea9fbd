"""The contrastive encoder of the eCALIFA study (SimCLR), registered as ``"simclr"``.

This module does not import torch; the network (`astro_cl.models.backbones`)
and the trainer are imported when the encoder is fitted or used.
"""

import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.models.torch_encoder import TorchEncoder
from astro_cl.training.schema import Interval, Options, SequenceOf
from astro_cl.training.settings import TrainerConfig

__all__ = ["READOUTS", "SimCLR"]

#: What `SimCLR.embed` can return: the trained embedding, or the trunk's pooled features.
READOUTS = ("embedding", "features")


class SimCLR(TorchEncoder):
    """Contrastive encoder trained with the NT-Xent loss on two augmented views.

    The defaults are the eCALIFA study's: the conv backbone (64/128/256/512
    channels, kernels 5/3/3/3, ReLU + max-pool + batch norm, masked global max
    pooling, dense 512 -> 128 -> 64 with batch norm and dropout), no projection
    head, temperature 0.5; and, as its `default_trainer`, Adam with lr 8e-4
    decayed x0.75 every 2 epochs, at most 50 epochs, early stopping with
    patience 3, seed 42, one batch of the whole training set.

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

    Notes
    -----
    Training settings (epochs, batch size, learning rate, device, precision)
    are given to `fit` as a `~astro_cl.training.TrainerConfig` or a dict::

        SimCLR(width=0.25).fit(survey, trainer={"epochs": 5, "batch_size": 64})

    As in scikit-learn, the constructor only stores the parameters; `fit`
    checks them first and raises `~astro_cl.exceptions.ValidationError`
    naming a parameter with a value of the wrong type or range (e.g.
    ``width=-1``).
    """

    name = "simclr"
    description = "SimCLR contrastive encoder (eCALIFA study: conv net, NT-Xent, masked pooling)."
    output_type = "embedding"
    _parameter_constraints = {
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
                 negatives="cross", augmenter=None, kind=None):
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

    def default_trainer(self):
        """Return the eCALIFA study's training settings.

        Returns
        -------
        trainer : `~astro_cl.training.TrainerConfig`
            Adam, lr 8e-4, x0.75 every 2 epochs (``"step"``), at most 50
            epochs, patience 3, seed 42, the whole training set per step.
        """
        return TrainerConfig(optimizer="adam", lr=8e-4, weight_decay=0.0, schedule="step",
                             epochs=50, batch_size=None, validation_fraction=0.0, patience=3,
                             seed=42)

    def build_module(self, info):
        """Return the contrastive network (backbone, dense head, optional projection head).

        Parameters
        ----------
        info : dict
            ``in_channels`` (see `~astro_cl.models.TorchEncoder.input_info`).

        Returns
        -------
        module : `~astro_cl.models.backbones.ContrastiveNet`
        """
        from astro_cl.models.backbones import ContrastiveNet, build_backbone

        net = build_backbone(self.backbone, info["in_channels"], hidden=tuple(self.hidden),
                             out_features=int(self.embedding_dim), dropout=float(self.dropout),
                             pooling=self.pooling, width=float(self.width))
        return ContrastiveNet(net, self.projection_head)

    def build_loss(self, info):
        """Return the NT-Xent loss on two augmented views.

        Parameters
        ----------
        info : dict
            Unused.

        Returns
        -------
        loss : object
            With ``prepare(batch, generator)`` (the two views) and
            ``compute(module, prepared)``.
        """
        return _ContrastiveLoss(self.resolve_augmenter(), float(self.temperature),
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
        return self._embed_views(self.input_source(X), n_views=1, seed=0,
                                 batch_size=batch_size)

    def _embed_views(self, source, *, n_views, seed, batch_size, readout="embedding"):
        import torch
        import torch.nn.functional as F

        from astro_cl.augment.base import make_generator

        self._check_fitted()
        aug = self.resolve_augmenter() if n_views > 1 else None
        if n_views > 1 and aug is None:
            msg = ("embed: n_views > 1 needs an augmenter (set the 'augmenter' parameter; a "
                   "model read from its file keeps none: load_model(path, augmenter=...) "
                   "from Python, or --n-views 1)")
            raise ValidationError(msg)
        forward = self.network()
        self.module_.eval()
        out = []
        with torch.no_grad():
            for i, batch in enumerate(self.iter_batches(source, batch_size)):
                views = []
                for v in range(n_views):
                    b = batch
                    if aug is not None:
                        gen = make_generator(int(seed) * 1_000_003 + i * 1009 + v, batch.device)
                        b = aug(batch, generator=gen)
                    z = forward(b.data, b.mask, project=False, readout=readout)
                    views.append(F.normalize(z.float(), dim=1))
                z = torch.stack(views).median(dim=0).values if n_views > 1 else views[0]
                out.append(F.normalize(z, dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    def embed(self, X, *, n_views=1, seed=0, batch_size=None, cache_dir=None,
              readout="embedding"):
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
        readout : {"embedding", "features"}, optional
            ``"embedding"``: the ``embedding_dim`` output the loss was trained
            on (the eCALIFA study's). ``"features"``: the pooled features of
            the convolutional trunk, before the dense head (as wide as the
            last convolution), the representation SimCLR (Chen et al. 2020)
            recommends for downstream use; on the real Galaxy Zoo 1 images it
            scores higher in kNN morphology (``docs/science/real_images.rst``).

        Returns
        -------
        table : `~astropy.table.QTable`
            Columns ``id`` (str) and ``embedding`` (float32, ``(N, D)``); meta
            ``model``, ``model_params``, ``trainer_params`` (the training
            settings), ``survey``, ``astro_cl_version``,
            ``n_views``, ``seed``, ``readout``.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If ``readout`` is not one of the two.
        """
        from astropy.table import QTable

        from astro_cl import __version__
        from astro_cl.surveys.base import Survey
        from astro_cl.training.checkpoints import jsonable
        from astro_cl.training.data import source_meta

        if int(n_views) < 1:
            msg = f"n_views: expected a positive integer, got {n_views!r}"
            raise ValueError(msg)
        if readout not in READOUTS:
            msg = f"readout: expected one of {', '.join(map(repr, READOUTS))}, got {readout!r}"
            raise ValidationError(msg)
        source = self.input_source(X, cache_dir=cache_dir)
        emb = self._embed_views(source, n_views=int(n_views), seed=seed, batch_size=batch_size,
                                readout=readout)
        survey = X.name if isinstance(X, Survey) else source_meta(source).get("survey", "")
        table = QTable({"id": np.asarray(source.ids, dtype=str), "embedding": emb})
        table.meta.update({"model": self.name, "model_params": jsonable(self.get_params(False)),
                           "trainer_params": jsonable(self._settings().get_params(False)),
                           "survey": str(survey), "astro_cl_version": __version__,
                           "n_views": int(n_views), "seed": int(seed),
                           "readout": readout})
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
