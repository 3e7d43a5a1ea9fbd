"""Cube <-> image alignment: a two-tower CLIP encoder, registered as ``"clip"``.

`CLIPEncoder` learns one embedding space for two views of the same galaxies
by different instruments: ugriz images (the image tower, a CNN on the scaled
bands) and IFU cubes (the cube tower, a CNN on the `~astro_cl.preprocess.CubePCA`
channels). Each tower ends in a linear projection into the shared space, and
the towers are trained together with the symmetric contrastive loss of CLIP
(`~astro_cl.models.losses.clip_loss`; Radford et al. 2021) and a learnable
temperature, as AstroCLIP did for images and spectra (Parker et al. 2024,
MNRAS 531, 4990). A galaxy's image embedding then lies next to its own cube's
embedding: an image retrieves its cube, and the image embedding carries what
the cube measures.

It trains on pairs of records matched by id (`~astro_cl.surveys.paired.PairedSurvey`,
e.g. `~astro_cl.surveys.mock.paired_mocks`) and embeds either modality
(``embed(survey, modality="image" | "cube")``).

Built on `~astro_cl.models.TorchEncoder`: its hooks give the network
(`build_module`), the loss (`build_loss`), the training settings
(`default_trainer`), the trainer, precision and the checkpoint format. Its
``fit``, ``input_source`` and ``save`` assume one input stream with one
preprocessor and one input contract, so this class overrides them to keep
one of each per modality (the image side in the base class's
``preprocessor_`` and ``contract_``, both sides in ``preprocessors_`` and
``contracts_``).

This module does not import torch; the network is built when the encoder is
fitted or loaded.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from astro_cl.exceptions import CheckpointError, ValidationError
from astro_cl.models.torch_encoder import TorchEncoder, _as_survey, _is_source_like
from astro_cl.training.schema import Interval, Options, SequenceOf
from astro_cl.training.settings import TrainerConfig

__all__ = ["CLIPEncoder", "PairedBatch", "PairedSource"]

#: Modality -> the record field (a survey's ``default_kind``) it is read from.
KINDS = {"image": "images", "cube": "cube"}


@dataclass
class PairedBatch:
    """Paired batches of the two modalities: row ``i`` of both is one galaxy.

    Parameters
    ----------
    image, cube : `~astro_cl.data.batch.TensorBatch`
        The image and cube inputs, with the same ids in the same order.
    """

    image: Any
    cube: Any

    def __len__(self):
        return len(self.image)

    @property
    def ids(self):
        """List of str: the galaxy ids."""
        return list(self.image.ids)

    def to(self, device):
        """Return the batches on ``device``.

        Parameters
        ----------
        device : str or `torch.device`

        Returns
        -------
        batch : `PairedBatch`
        """
        return PairedBatch(self.image.to(device), self.cube.to(device))


class PairedSource:
    """A batch source of pairs: two sources (one per modality) read by galaxy id.

    Parameters
    ----------
    image, cube : batch source
        Sources of the two modalities (``len``, ``ids``, ``batch(indices)``),
        in any order; every id of ``ids`` must be in both.
    ids : sequence of str, optional
        The paired galaxies, in order (default: the image source's ids).

    Raises
    ------
    KeyError
        Naming the first id missing from a source.
    """

    def __init__(self, image, cube, ids=None):
        from astro_cl.preprocess.cache import positions_of

        self.image = image
        self.cube = cube
        self._ids = [str(i) for i in (image.ids if ids is None else ids)]
        self._rows = {
            name: positions_of({str(g): i for i, g in enumerate(src.ids)}, self._ids,
                               f"{name} source")
            for name, src in (("image", image), ("cube", cube))}

    def __len__(self):
        return len(self._ids)

    @property
    def ids(self):
        """List of str: the paired galaxy ids."""
        return list(self._ids)

    def batch(self, indices):
        """Return the pairs at integer positions ``indices``.

        Parameters
        ----------
        indices : sequence of int or `torch.Tensor`

        Returns
        -------
        batch : `PairedBatch`
        """
        from astro_cl.preprocess.cache import rows_of

        rows = rows_of(indices, len(self), "paired source")
        return PairedBatch(self.image.batch(self._rows["image"][rows]),
                           self.cube.batch(self._rows["cube"][rows]))


def _modality(modality):
    if modality not in KINDS:
        msg = f"modality: expected one of {sorted(KINDS)}, got {modality!r}"
        raise ValidationError(msg)
    return modality


class CLIPEncoder(TorchEncoder):
    """Two-tower encoder aligning images and IFU cubes of the same galaxies (CLIP loss).

    Each tower is the backbone of `~astro_cl.models.simclr.SimCLR` (conv or
    ResNet blocks, masked global pooling, a dense head giving an
    ``embedding_dim`` vector) followed by a linear projection to
    ``projection_dim``; the loss is `~astro_cl.models.losses.clip_loss` of the
    two projections with a learnable logit scale, initialised at
    ``1 / temperature``.

    Parameters
    ----------
    backbone : {"conv", "resnet"}, optional
        Trunk of both towers.
    width : float, optional
        Width multiplier of every hidden layer.
    hidden : tuple of int, optional
        Hidden widths of each tower's dense head.
    embedding_dim : int, optional
        Output size of each tower before the projection.
    projection_dim : int, optional
        Size of the shared space.
    dropout : float, optional
        Dropout of the dense heads.
    pooling : {"max", "mean"}, optional
        Masked global pooling.
    temperature : float, optional
        Initial temperature (CLIP: 0.07).
    learn_temperature : bool, optional
        Learn the temperature with the towers (CLIP does).
    augmenter : `~astro_cl.augment.Augmenter`, list of dict or str, optional
        Applied to each modality independently while training (geometric
        steps such as flips and 90-degree rotations suit both); None: the
        pairs themselves are the only views.

    Attributes
    ----------
    module_ : `~astro_cl.models.two_tower.TwoTowerNet`
    preprocessors_ : dict of str to `~astro_cl.preprocess.Preprocessor` or None
        The fitted preprocessing of each modality (``"image"``, ``"cube"``).
    contracts_ : dict of str to `~astro_cl.models.InputContract`
        What raw data each modality accepts.

    Notes
    -----
    Fit on a `~astro_cl.surveys.paired.PairedSurvey` with one preprocessor
    per modality::

        paired = paired_mocks(n=200, seed=0)
        model = CLIPEncoder(width=0.25).fit(
            paired, image_preprocessor=ImageScaler(),
            cube_preprocessor=CubePCA(fit_snr=10.0, standardize=True),
            trainer={"epochs": 30, "batch_size": 32})
        images = model.embed(paired, modality="image")
        cubes = model.embed(paired, modality="cube")

    Examples
    --------
    >>> from astro_cl.models.clip import CLIPEncoder
    >>> CLIPEncoder(projection_dim=16).name
    'clip'
    """

    name = "clip"
    description = "Two-tower image/cube encoder aligned with the CLIP loss (learnable temperature)."
    output_type = "embedding"
    _parameter_constraints = {
        "backbone": [Options("conv", "resnet")],
        "width": [Interval(float, 0, None, closed="neither")],
        "hidden": [SequenceOf(Interval(int, 1, None))],
        "embedding_dim": [Interval(int, 1, None)],
        "projection_dim": [Interval(int, 1, None)],
        "dropout": [Interval(float, 0, 1, closed="left")],
        "pooling": [Options("max", "mean")],
        "temperature": [Interval(float, 0, None, closed="neither")],
        "learn_temperature": [bool],
    }

    def __init__(self, *, backbone="conv", width=0.25, hidden=(128,), embedding_dim=64,
                 projection_dim=32, dropout=0.1, pooling="max", temperature=0.07,
                 learn_temperature=True, augmenter=None):
        self.backbone = backbone
        self.width = width
        self.hidden = hidden
        self.embedding_dim = embedding_dim
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.pooling = pooling
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.augmenter = augmenter

    # -- hooks ------------------------------------------------------------------------
    def default_trainer(self):
        """Return the default training settings.

        Returns
        -------
        trainer : `~astro_cl.training.TrainerConfig`
            Adam, lr 1e-3, constant, 30 epochs, batches of 32, seed 42.
        """
        return TrainerConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
                             epochs=30, batch_size=32, validation_fraction=0.0, patience=None,
                             seed=42)

    def input_info(self, source):
        """Describe the inputs of both towers.

        Parameters
        ----------
        source : `PairedSource`

        Returns
        -------
        info : dict
            ``image_channels``, ``cube_channels``, ``image_bands``,
            ``image_survey``, ``cube_survey``; ``in_channels`` and ``bands``
            repeat the image side's (for the base class).
        """
        first = source.batch(np.array([0]))
        info = {"image_channels": int(first.image.data.shape[1]),
                "cube_channels": int(first.cube.data.shape[1]),
                "image_bands": [str(b) for b in first.image.meta.get("bands", [])],
                "image_survey": str(first.image.meta.get("survey", "")),
                "cube_survey": str(first.cube.meta.get("survey", ""))}
        info.update(in_channels=info["image_channels"], bands=info["image_bands"],
                    survey=info["image_survey"])
        return info

    def build_module(self, info):
        """Return the two-tower network for inputs described by ``info``.

        Parameters
        ----------
        info : dict
            ``image_channels`` and ``cube_channels`` (see `input_info`).

        Returns
        -------
        module : `~astro_cl.models.two_tower.TwoTowerNet`
        """
        from astro_cl.models.backbones import ContrastiveNet, build_backbone
        from astro_cl.models.two_tower import TwoTowerNet

        def tower(channels):
            net = build_backbone(self.backbone, int(channels), hidden=tuple(self.hidden),
                                 out_features=int(self.embedding_dim),
                                 dropout=float(self.dropout), pooling=self.pooling,
                                 width=float(self.width))
            return ContrastiveNet(net, (int(self.projection_dim),))

        return TwoTowerNet(tower(info["image_channels"]), tower(info["cube_channels"]),
                           temperature=float(self.temperature),
                           learn_temperature=bool(self.learn_temperature))

    def build_loss(self, info):
        """Return the CLIP loss of paired batches.

        Parameters
        ----------
        info : dict
            Unused.

        Returns
        -------
        loss : object
            With ``prepare(batch, generator)`` (the augmented pairs) and
            ``compute(module, prepared)``.
        """
        return _CLIPLoss(self.resolve_augmenter())

    # -- training -------------------------------------------------------------------------
    def fit(self, X, y=None, *, trainer=None, resume=False, callbacks=(), image_preprocessor=None,
            cube_preprocessor=None, cache_dir=None, provenance=None, fast_dev_run=False):
        """Train both towers on pairs of records.

        Parameters
        ----------
        X : `~astro_cl.surveys.paired.PairedSurvey`, tuple of two surveys, or `PairedSource`
            The pairs: one survey of default kind ``"images"`` and one of
            ``"cube"`` (in either order), matched by id. A `PairedSource`
            of already preprocessed inputs is used as it is.
        y : None
            Unused.
        trainer : `~astro_cl.training.TrainerConfig`, dict or None, optional
            Training settings (None: `default_trainer`; a dict replaces
            some of them).
        resume : bool, optional
            Continue from ``checkpoint_dir/last.pt`` when it exists.
        callbacks : sequence of callable, optional
        image_preprocessor, cube_preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
            Turn the raw records of each modality into network inputs (e.g.
            `~astro_cl.preprocess.ImageScaler` and
            `~astro_cl.preprocess.CubePCA`); fitted on the training records
            if not fitted yet, and saved with the model. None: the raw
            arrays.
        cache_dir : str or `~pathlib.Path`, optional
            Where the preprocessed inputs are stored (default:
            ``checkpoint_dir/cache``, or a temporary folder).
        provenance : dict, optional
            Plain description of the run, saved with the model.
        fast_dev_run : bool or int, optional
            Run only this many batches of one epoch (see
            `~astro_cl.models.TorchEncoder.fit`).

        Returns
        -------
        self

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If a parameter or setting is invalid, or ``X`` does not hold one
            image and one cube survey.
        astro_cl.exceptions.SurveyError
            If the surveys do not hold the same galaxies.
        """
        from pathlib import Path

        settings = TrainerConfig.from_spec(trainer, defaults=self.default_trainer(),
                                           where=f"{type(self).__name__}.fit: trainer")
        self._validate_params()
        settings.validate(where=f"{type(self).__name__}.fit: trainer")
        pres = {"image": image_preprocessor, "cube": cube_preprocessor}
        if isinstance(X, PairedSource):
            given = [f"{m}_preprocessor" for m, pre in pres.items() if pre is not None]
            if given:
                msg = (f"{type(self).__name__}.fit: {', '.join(given)} given with a PairedSource, "
                       "whose inputs are used as they are; give a PairedSurvey of raw records "
                       "to preprocess")
                raise ValidationError(msg)
            source, surveys = X, {"image": None, "cube": None}
        else:
            paired = self._as_paired(X)
            surveys = {m: paired.side(kind) for m, kind in KINDS.items()}
            if cache_dir is None and settings.checkpoint_dir and not fast_dev_run:
                cache_dir = Path(settings.checkpoint_dir) / "cache"
            sides = {m: self._side_source(surveys[m], pres[m], cache_dir=cache_dir,
                                          device=settings.resolve_device(),
                                          progress=bool(settings.progress))
                     for m in KINDS}
            source = PairedSource(sides["image"], sides["cube"], ids=paired.ids)
        if len(source) == 0:
            msg = f"{type(self).__name__}.fit: no pairs to train on"
            raise ValidationError(msg)
        info = self.input_info(source)
        contracts = self._contracts(source, surveys, info, pres)
        self._train(source, info, settings, callbacks=callbacks, resume=resume,
                    fast_dev_run=fast_dev_run)
        self.preprocessors_ = pres
        self.contracts_ = contracts
        # the image side in the base class's slots: its model card and save()
        self.preprocessor_ = pres["image"]
        self.contract_ = contracts["image"]
        self.provenance_ = dict(provenance or {})
        if not fast_dev_run:
            self.after_fit(source)
        return self

    @staticmethod
    def _as_paired(X):
        from astro_cl.surveys.base import Survey
        from astro_cl.surveys.paired import PairedSurvey

        if isinstance(X, PairedSurvey):
            return X
        if isinstance(X, (tuple, list)) and len(X) == 2 and all(isinstance(s, Survey) for s in X):
            return PairedSurvey(*X)
        msg = (f"CLIPEncoder.fit: expected a PairedSurvey (or a pair of surveys, or a "
               f"PairedSource), got {type(X).__name__}")
        raise ValidationError(msg)

    def _side_source(self, survey, preprocessor, *, cache_dir, device, progress):
        """Return the network inputs of one modality's survey as a batch source."""
        from astro_cl.training.data import as_batch_source

        if preprocessor is None:
            return as_batch_source(survey, kind=survey.default_kind)
        return self._preprocessed_source(survey, preprocessor, cache_dir=cache_dir,
                                         device=device, progress=progress)

    def _contracts(self, source, surveys, info, pres):
        """Return the `~astro_cl.models.InputContract` of each modality's training inputs."""
        from astro_cl.models.contract import InputContract

        first = source.batch(np.array([0]))
        out = {}
        for m, kind in KINDS.items():
            batch = getattr(first, m)
            shape = tuple(int(s) for s in batch.data.shape[-2:])
            channels = info[f"{m}_channels"]
            survey = surveys[m]
            if survey is not None and len(survey):
                out[m] = InputContract.from_record(survey[0], kind=kind, in_channels=channels,
                                                   spatial_shape=shape, preprocessor=pres[m])
            else:
                out[m] = InputContract(kind=kind, in_channels=channels, spatial_shape=shape,
                                       bands=[str(b) for b in batch.meta.get("bands", [])])
        return out

    # -- inference ----------------------------------------------------------------------------
    def input_source(self, X, *, modality="image", cache_dir=None):
        """Return the network inputs of one modality, preprocessed as in training.

        Parameters
        ----------
        X : survey, records, `~astro_cl.surveys.paired.PairedSurvey`, `PairedSource` or batches
            A paired survey or source gives the side of ``modality``; raw records are
            checked against that modality's contract and preprocessed with
            its saved preprocessor; batches and sources are used as they are.
        modality : {"image", "cube"}, optional
        cache_dir : str or `~pathlib.Path`, optional
            Where preprocessed inputs are stored (default: a temporary folder).

        Returns
        -------
        source : batch source

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the data break the modality's input contract.
        """
        from astro_cl.surveys.paired import PairedSurvey
        from astro_cl.training.data import as_batch_source

        self._check_fitted()
        modality = _modality(modality)
        pre = self.preprocessors_.get(modality)
        contract = self.contracts_.get(modality)
        if isinstance(X, PairedSource):  # paired training batches: that modality's side
            X = X.image if modality == "image" else X.cube
        if isinstance(X, PairedSurvey):
            survey = X.side(KINDS[modality])
        else:
            survey = None if _is_source_like(X) else _as_survey(X)
        if survey is not None and contract is not None and len(survey):
            contract.check_record(survey[0], source=f"survey {survey.name!r} ({modality})")
        if survey is not None and pre is not None:
            source = self._preprocessed_source(
                survey, pre, cache_dir=cache_dir, device=self._module_device(),
                progress=bool(getattr(self._settings(), "progress", True)))
        elif survey is not None:
            source = as_batch_source(survey, kind=KINDS[modality])
        else:
            source = as_batch_source(X)
        if contract is not None and len(source):
            where = f"survey {survey.name!r}" if survey is not None else type(X).__name__
            contract.check_input(tuple(source.batch(np.array([0])).data.shape),
                                 source=f"{where} ({modality})")
        return source

    def _tower_forward(self, modality):
        from astro_cl.training.precision import precision_forward, resolve_precision

        device = self._module_device()
        return precision_forward(self.module_.tower(modality),
                                 resolve_precision(self._settings().precision, device), device)

    def _check_modality_shape(self, shape, modality):
        channels, height, width = (int(v) for v in shape[1:])
        expected = int(self.info_[f"{modality}_channels"])
        size = int(self.module_.tower(modality).min_input_size)
        if channels != expected or min(height, width) < size:
            msg = (f"{type(self).__name__}: the {modality} tower expects {expected} channels of "
                   f"at least {size}x{size} px; the data have {channels} channels of "
                   f"{height}x{width} px")
            raise ValidationError(msg)

    def transform(self, X, *, modality="image", projected=True, batch_size=None):
        """Return L2-normalised embeddings of one modality.

        Parameters
        ----------
        X : survey, records, `~astro_cl.surveys.paired.PairedSurvey`, TensorBatch or batch source
        modality : {"image", "cube"}, optional
        projected : bool, optional
            True: vectors of the shared space (``projection_dim``), where the
            two modalities are comparable; False: the tower's own embedding
            before the projection (``embedding_dim``).
        batch_size : int, optional

        Returns
        -------
        embeddings : `numpy.ndarray`
            ``(N, D)`` float32 unit vectors.
        """
        return self._embed_source(self.input_source(X, modality=modality), modality,
                                  projected=projected, batch_size=batch_size)

    def _embed_source(self, source, modality, *, projected, batch_size):
        import torch
        import torch.nn.functional as F

        self._check_fitted()
        forward = self._tower_forward(modality)
        self.module_.eval()
        n = len(source)
        step = int(batch_size or self._settings().batch_size or 64)
        device = self._module_device()
        out = []
        with torch.no_grad():
            for start in range(0, n, step):
                batch = source.batch(torch.arange(start, min(n, start + step))).to(device)
                if start == 0:
                    self._check_modality_shape(tuple(batch.data.shape), modality)
                z = forward(batch.data, batch.mask, project=bool(projected))
                out.append(F.normalize(z.float(), dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    def embed(self, X, *, modality="image", projected=True, batch_size=None, cache_dir=None):
        """Return the embedding table of one modality.

        Parameters
        ----------
        X : survey, records, `~astro_cl.surveys.paired.PairedSurvey`, TensorBatch or batch source
        modality : {"image", "cube"}, optional
            Which tower embeds ``X`` (a paired survey gives that side).
        projected : bool, optional
            Shared-space vectors (True) or the tower's own embedding.
        batch_size : int, optional
        cache_dir : str or `~pathlib.Path`, optional
            Where raw data are preprocessed to (default: a temporary folder).

        Returns
        -------
        table : `~astropy.table.QTable`
            ``id`` (str) and ``embedding`` (float32 unit vectors); meta
            ``model``, ``modality``, ``projected``, ``model_params``,
            ``trainer_params``, ``survey``, ``astro_cl_version``.
        """
        from astropy.table import QTable

        from astro_cl import __version__
        from astro_cl.training.checkpoints import jsonable
        from astro_cl.training.data import source_meta

        source = self.input_source(X, modality=modality, cache_dir=cache_dir)
        emb = self._embed_source(source, modality, projected=projected, batch_size=batch_size)
        table = QTable({"id": np.asarray(source.ids, dtype=str), "embedding": emb})
        table.meta.update({"model": self.name, "modality": modality,
                           "projected": bool(projected),
                           "model_params": jsonable(self.get_params(False)),
                           "trainer_params": jsonable(self._settings().get_params(False)),
                           "survey": str(source_meta(source).get("survey", "")),
                           "astro_cl_version": __version__})
        return table

    def logit_scale(self):
        """Return the learnt logit scale (the inverse temperature).

        Returns
        -------
        scale : float
        """
        self._check_fitted()
        return float(self.module_.logit_scale().detach())

    # -- files --------------------------------------------------------------------------------
    def _extra_artefact_state(self):
        """Return the cube side's preprocessor and contract for the model file.

        The base class saves the image side as the model's own preprocessor
        and contract; the cube side is this entry.
        """
        from astro_cl.models.artefact import artefact_state

        cube = artefact_state(_SideView(self.preprocessors_.get("cube"),
                                        self.contracts_.get("cube")))
        return {"cube_side": {"preprocessor": cube["preprocessor"],
                              "contract": cube["contract"]}}

    def _restore_extra_artefact_state(self, checkpoint, path):
        """Restore the cube side and both modalities' maps from a loaded model file.

        A trainer's ``last.pt`` has no cube side: it is then None, as the
        image side is for other models.

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            If the saved cube side is malformed.
        """
        from astro_cl.models.artefact import restore_artefact

        side = checkpoint.get("cube_side") or {}
        if not isinstance(side, dict):
            msg = f"{path}: the saved cube side is malformed (got {type(side).__name__})"
            raise CheckpointError(msg)
        cube = _SideView(None, None)
        restore_artefact(cube, {"preprocessor": side.get("preprocessor"),
                                "contract": side.get("contract")},
                         source=f"{path} (cube side)")
        self.preprocessors_ = {"image": self.preprocessor_, "cube": cube.preprocessor_}
        self.contracts_ = {"image": self.contract_, "cube": cube.contract_}


class _SideView:
    """One modality's preprocessor and contract, in the attributes the artefact helpers use."""

    def __init__(self, preprocessor, contract):
        self.preprocessor_ = preprocessor
        self.contract_ = contract
        self.provenance_ = {}


class _CLIPLoss:
    """CLIP loss of paired batches; embeddings gathered over ranks."""

    def __init__(self, augmenter):
        self.augmenter = augmenter

    def __call__(self, model, batch, generator):
        return self.compute(model, self.prepare(batch, generator))

    def prepare(self, batch, generator):
        """Augment each modality independently (data work only)."""
        image, cube = batch.image, batch.cube
        if self.augmenter is not None:
            image = self.augmenter(image, generator=generator)
            cube = self.augmenter(cube, generator=generator)
        if len(image) != len(cube):
            msg = (f"the augmenter returned {len(image)} images for {len(cube)} cubes: "
                   "augmenters must keep the batch size")
            raise ValidationError(msg)
        return image.data, image.mask, cube.data, cube.mask

    def compute(self, model, prepared):
        """Return the CLIP loss of the paired inputs."""
        from astro_cl.models.losses import clip_loss
        from astro_cl.training.distributed import all_gather_with_grad

        z_image, z_cube, scale = model(*prepared)
        return clip_loss(all_gather_with_grad(z_image.float()),
                         all_gather_with_grad(z_cube.float()), scale)
