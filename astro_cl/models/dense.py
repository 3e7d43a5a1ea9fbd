"""Resolved embeddings: a dense contrastive encoder, registered as ``"dense-contrastive"``.

`DenseContrastive` gives every spaxel its own embedding: a U-Net
(`~astro_cl.models.backbones.UNet`) maps the ``(C, H, W)`` input images
(e.g. `~astro_cl.preprocess.CubePCA` components) to a ``(D, H, W)`` map of
unit vectors, returned by `DenseContrastive.embed_maps` as
`~astropy.nddata.NDData` cubes with the input's WCS and mask.

Training matches the same sky position across two augmented views. The
augmenter is run through
`~astro_cl.augment.correspondence.augment_with_positions`, which tracks the
input position of every output pixel (coordinate maps carried as targets and
warped by the same geometric steps as the pixels); anchor pixels of view 1 are
drawn among the valid ones, each is paired with the valid pixel of view 2
whose input position is nearest (if within ``match_radius`` input pixels),
and the pairs are trained with a pixel-level InfoNCE loss
(`~astro_cl.models.dense_net.dense_info_nce`): the positive of an anchor is
its match, the negatives are the other matches, in the same galaxy and in
the others. This is the pixel-correspondence contrastive loss of VADeR
(Pinheiro et al. 2020, NeurIPS) and of the dense branch of DenseCL (Wang et
al. 2021, CVPR), with the geometric matching of PixPro (Xie et al. 2021,
CVPR), which knows the correspondence from the augmentation, and PixPro's
tolerance for nearby pixels: same-galaxy pixels closer than
``exclude_radius`` to an anchor are not used as its negatives. Masked
spaxels (mask or non-finite data) and pixels moved in from outside the field
take no part.

This module does not import torch; the network and the trainer are imported
when the encoder is fitted or used.
"""

import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.models.torch_encoder import TorchEncoder
from astro_cl.training.schema import Interval, SequenceOf
from astro_cl.training.settings import TrainerConfig

__all__ = ["DenseContrastive"]


class DenseContrastive(TorchEncoder):
    """Dense (per-spaxel) contrastive encoder: a U-Net trained to match sky positions across views.

    Parameters
    ----------
    width : float, optional
        Width multiplier of the U-Net.
    channels : tuple of int, optional
        U-Net channels per level (before ``width``); three levels suit
        images of 32-64 px.
    bottom : int, optional
        U-Net bottom channels (before ``width``).
    batch_norm : bool, optional
        Batch norm in the U-Net.
    embedding_dim : int, optional
        Size of each spaxel's embedding.
    projection_head : tuple of int, optional
        Widths of a per-pixel projection MLP used in training only (None:
        the loss sees the embedding).
    temperature : float, optional
        InfoNCE temperature.
    n_pixels : int, optional
        Anchor pixels drawn per view pair and training step.
    match_radius : float, optional
        Largest distance (input pixels) between the input positions of a
        pixel of view 1 and its match in view 2.
    exclude_radius : float, optional
        Pixels of the same galaxy closer than this (input pixels) to an
        anchor are not its negatives (0: all are).
    augmenter : `~astro_cl.augment.Augmenter`, list of dict or str, optional
        Makes the two views (as for `~astro_cl.models.simclr.SimCLR`); it
        must move ``targets`` with the pixels, as every built-in geometric
        augmenter does. None: the views are the input itself (for tests).
    kind : str, optional
        Record field used as input when fitting on a survey.

    Notes
    -----
    See the module documentation for the loss and its references. Training
    settings go to `fit` as a `~astro_cl.training.TrainerConfig` or a dict::

        DenseContrastive(width=0.25).fit(survey, trainer={"epochs": 5})

    Under data parallelism each rank's loss uses its own pairs as negatives
    (they are not gathered across ranks).
    """

    name = "dense-contrastive"
    description = "Per-spaxel embeddings (U-Net) trained to match sky positions across views."
    output_type = "embedding"
    _parameter_constraints = {
        "width": [Interval(float, 0, None, closed="neither")],
        "channels": [SequenceOf(Interval(int, 1, None))],
        "bottom": [Interval(int, 1, None)],
        "batch_norm": [bool],
        "embedding_dim": [Interval(int, 1, None)],
        "projection_head": [None, SequenceOf(Interval(int, 1, None))],
        "temperature": [Interval(float, 0, None, closed="neither")],
        "n_pixels": [Interval(int, 2, None)],
        "match_radius": [Interval(float, 0, None, closed="neither")],
        "exclude_radius": [Interval(float, 0, None, closed="left")],
        "kind": [None, str],
    }

    def __init__(self, *, width=0.25, channels=(64, 128, 256), bottom=512, batch_norm=True,
                 embedding_dim=32, projection_head=(64,), temperature=0.2, n_pixels=64,
                 match_radius=1.0, exclude_radius=2.0, augmenter=None, kind=None):
        self.width = width
        self.channels = channels
        self.bottom = bottom
        self.batch_norm = batch_norm
        self.embedding_dim = embedding_dim
        self.projection_head = projection_head
        self.temperature = temperature
        self.n_pixels = n_pixels
        self.match_radius = match_radius
        self.exclude_radius = exclude_radius
        self.augmenter = augmenter
        self.kind = kind

    def default_trainer(self):
        """Return the default training settings.

        Returns
        -------
        trainer : `~astro_cl.training.TrainerConfig`
            Adam, lr 1e-3, constant, 30 epochs, batches of 32, no validation
            or early stopping, seed 0.
        """
        return TrainerConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
                             epochs=30, batch_size=32, validation_fraction=0.0, patience=None,
                             seed=0)

    def build_module(self, info):
        """Return the U-Net with its per-pixel projection head.

        Parameters
        ----------
        info : dict
            ``in_channels`` (see `~astro_cl.models.TorchEncoder.input_info`).

        Returns
        -------
        module : `~astro_cl.models.dense_net.DenseNet`
        """
        from astro_cl.models.dense_net import DenseNet

        head = None if self.projection_head is None else tuple(self.projection_head)
        return DenseNet(info["in_channels"], int(self.embedding_dim),
                        channels=tuple(self.channels), bottom=int(self.bottom),
                        width=float(self.width), batch_norm=bool(self.batch_norm),
                        projection=head)

    def build_loss(self, info):
        """Return the pixel-level InfoNCE loss of matched positions in two views.

        Parameters
        ----------
        info : dict
            Unused.

        Returns
        -------
        loss : object
            With ``prepare(batch, generator)`` (views, positions, matches) and
            ``compute(module, prepared)``.
        """
        return _DenseLoss(self.resolve_augmenter(), n_pixels=int(self.n_pixels),
                          match_radius=float(self.match_radius),
                          exclude_radius=float(self.exclude_radius),
                          temperature=float(self.temperature))

    # -- outputs ------------------------------------------------------------
    def _dense(self, source, batch_size=None):
        """Yield ``(ids, embeddings (B, D, H, W) float32, bad (B, H, W))`` per batch."""
        import torch
        import torch.nn.functional as F

        forward = self.network()
        self.module_.eval()
        with torch.no_grad():
            for batch in self.iter_batches(source, batch_size):
                z = F.normalize(forward(batch.data, batch.mask, project=False).float(), dim=1)
                yield list(batch.ids), z.cpu().numpy(), _bad_pixels(batch).cpu().numpy()

    def transform(self, X, *, batch_size=None):
        """Return the per-spaxel embeddings of un-augmented inputs.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        batch_size : int, optional

        Returns
        -------
        embeddings : `numpy.ndarray`
            ``(N, embedding_dim, H, W)`` float32; each spaxel's vector has unit
            length (masked spaxels too: see `embed_maps` for the mask).
        """
        parts = [z for _, z, _ in self._dense(self.input_source(X), batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def embed_maps(self, X, *, wcs=None, batch_size=None, cache_dir=None):
        """Return each galaxy's embedding cube with its WCS and mask.

        Parameters
        ----------
        X : survey, list of `~astro_cl.data.GalaxyRecord`, TensorBatch or batch source
        wcs : mapping of str to `~astropy.wcs.WCS`, sequence or None, optional
            The celestial WCS of each galaxy (by id, or in input order). None:
            read from the survey's records (``images.wcs``, else the
            celestial part of ``cube.wcs``), which reads every record once;
            batches and sources have none.
        batch_size : int, optional
        cache_dir : str or `~pathlib.Path`, optional
            Where raw data preprocessed with the saved preprocessor are
            cached (default: a temporary folder).

        Returns
        -------
        cubes : list of `~astropy.nddata.NDData`
            One per galaxy in input order: data ``(embedding_dim, ny, nx)``
            float32 unit vectors, ``mask`` ``(ny, nx)`` True where the input
            spaxel is masked (or not finite), ``wcs`` the input's celestial
            WCS (None if unknown), ``meta`` ``id`` and ``model``.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If ``wcs`` is a sequence of another length than the input, or a
            WCS describes another image size than the embeddings.
        """
        from astropy.nddata import NDData

        from astro_cl.models.torch_encoder import _as_survey, _is_source_like

        survey = None if _is_source_like(X) else _as_survey(X)
        source = self.input_source(survey if survey is not None else X, cache_dir=cache_dir)
        ids = [str(i) for i in source.ids]
        if wcs is not None and not hasattr(wcs, "items"):
            wcs = list(wcs)
            if len(wcs) != len(ids):
                msg = (f"{self.name}.embed_maps: wcs has {len(wcs)} entries for {len(ids)} "
                       "galaxies; give one per galaxy (or a mapping by id)")
                raise ValidationError(msg)
            wcs = dict(zip(ids, wcs, strict=True))
        out = []
        for batch_ids, z, bad in self._dense(source, batch_size):
            for gid, cube, m in zip(batch_ids, z, bad, strict=True):
                w = (wcs or {}).get(gid) if wcs is not None else \
                    (_record_wcs(survey, gid) if survey is not None else None)
                if w is not None and w.array_shape is not None \
                        and tuple(w.array_shape) != tuple(m.shape):
                    msg = (f"{self.name}.embed_maps: the WCS of galaxy {gid!r} describes "
                           f"{tuple(w.array_shape)} spaxels, the embedding map has "
                           f"{tuple(m.shape)}")
                    raise ValidationError(msg)
                out.append(NDData(cube, mask=m, wcs=w, meta={"id": gid, "model": self.name}))
        return out

    def embed(self, X, *, batch_size=None, cache_dir=None):
        """Return one embedding per galaxy: the mean of its valid spaxels' vectors, normalised.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        batch_size : int, optional
        cache_dir : str or `~pathlib.Path`, optional

        Returns
        -------
        table : `~astropy.table.QTable`
            Columns ``id`` and ``embedding`` (float32 ``(N, D)`` unit
            vectors); meta ``model``, ``model_params``, ``survey``,
            ``astro_cl_version`` and ``pooling`` ("mean of valid spaxels").
        """
        from astropy.table import QTable

        from astro_cl import __version__
        from astro_cl.surveys.base import Survey
        from astro_cl.training.checkpoints import jsonable
        from astro_cl.training.data import source_meta

        source = self.input_source(X, cache_dir=cache_dir)
        ids, rows = [], []
        for batch_ids, z, bad in self._dense(source, batch_size):
            good = ~bad[:, None]
            total = np.where(good, z, 0.0).sum(axis=(2, 3))
            mean = total / np.maximum(good.sum(axis=(2, 3)), 1)
            norm = np.linalg.norm(mean, axis=1, keepdims=True)
            rows.append(mean / np.where(norm > 0, norm, 1.0))
            ids += batch_ids
        survey = X.name if isinstance(X, Survey) else source_meta(source).get("survey", "")
        table = QTable({"id": np.asarray(ids, dtype=str),
                        "embedding": np.concatenate(rows).astype(np.float32)})
        table.meta.update({"model": self.name, "model_params": jsonable(self.get_params(False)),
                           "survey": str(survey), "astro_cl_version": __version__,
                           "pooling": "mean of valid spaxels"})
        return table


def _record_wcs(survey, gid):
    """Return the celestial WCS of a survey record (images first, else the cube), or None."""
    record = survey[gid]
    images = getattr(record, "images", None)
    w = getattr(images, "wcs", None) if images is not None else None
    if w is None and getattr(record, "cube", None) is not None:
        w = getattr(record.cube, "wcs", None)
    if w is None:
        return None
    return w.celestial if getattr(w, "naxis", 2) > 2 else w


def _bad_pixels(batch):
    """``(B, H, W)`` True where any channel is masked or not finite."""
    import torch

    return batch.mask.any(dim=1) | ~torch.isfinite(batch.data).all(dim=1)


class _DenseLoss:
    """Pixel-level InfoNCE of the same input positions in two augmented views."""

    def __init__(self, augmenter, *, n_pixels, match_radius, exclude_radius, temperature):
        self.augmenter = augmenter
        self.n_pixels = n_pixels
        self.match_radius = match_radius
        self.exclude_radius = exclude_radius
        self.temperature = temperature

    def __call__(self, model, batch, generator):
        return self.compute(model, self.prepare(batch, generator))

    def prepare(self, batch, generator):
        """Augment two views, track their positions and draw the matched pixels (data work)."""
        from astro_cl.augment.correspondence import augment_with_positions
        from astro_cl.models.dense_net import match_views

        n = len(batch)
        # one call on the doubled batch: every row gets its own draws
        both, pos = augment_with_positions(self.augmenter, batch.repeat(2), generator)
        if len(both) != 2 * n:
            msg = (f"the augmenter returned {len(both)} images for {2 * n} views: "
                   "augmenters must keep the batch size")
            raise ValidationError(msg)
        bad = _bad_pixels(both)
        idx1, idx2, galaxy, src = match_views(
            pos[:n], pos[n:], ~bad[:n], ~bad[n:], n_pixels=self.n_pixels,
            match_radius=self.match_radius, generator=generator)
        return both.data, both.mask, idx1, idx2, galaxy, src

    def compute(self, model, prepared):
        """Return the loss of the network on prepared views."""
        from astro_cl.models.dense_net import dense_info_nce

        data, mask, idx1, idx2, galaxy, src = prepared
        f = model(data, mask).float()
        b2, d = f.shape[:2]
        n = b2 // 2
        flat = f.permute(0, 2, 3, 1).reshape(b2, -1, d)
        f1 = flat[:n].reshape(-1, d)
        f2 = flat[n:].reshape(-1, d)
        return dense_info_nce(f1[idx1], f2[idx2], galaxy, src, temperature=self.temperature,
                              exclude_radius=self.exclude_radius)
