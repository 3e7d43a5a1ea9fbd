"""The PICASSSO map regressor, registered as ``"cnn-regressor"``.

`CNNRegressor` trains a U-Net (`astro_cl.models.backbones.UNet`) from images
to resolved property maps. This module does not import torch; the network and
the trainer are imported when the model is fitted or used.
"""

import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.models.torch_encoder import TorchEncoder
from astro_cl.training.schema import Interval, SequenceOf
from astro_cl.training.settings import TrainerConfig

__all__ = ["CNNRegressor"]


#: Units of maps that are already logarithmic: regressed as they are, not as log10.
_LOG_UNITS = ("dex", "mag", "dB")


class CNNRegressor(TorchEncoder):
    """U-Net from images (e.g. ugriz) to K resolved property maps.

    The network predicts log10 of each target map (maps that are already
    logarithmic, such as metallicities in dex, are regressed as they are); the
    loss is the squared error on those values with weight 1 on populated
    pixels, ``empty_weight`` on empty ones (target <= 0) and 0 on masked pixels
    and on a cropped border (PICASSSO). Each map is centred on the mean of its
    populated training pixels, so that maps of very different magnitude
    (1e8 Msun/kpc2 and 1e-3 Msun/yr/kpc2) start equally close to the network's
    zero-centred output; maps in dex keep their scale (the loss is in dex), and
    signed linear maps are also divided by their scatter. Predictions are
    returned in the original units.

    A per-pixel error in log10 does not conserve what the maps integrate to:
    where the images cannot resolve the truth (a bulge's cusp inside the PSF)
    the network predicts the mean log10 value, whose linear sum falls short
    of the true one. With ``integral_weight`` > 0 the loss also compares, per
    galaxy and surface-density map (a unit per area, e.g. Msun / kpc2), log10
    of the sum of the predicted map over the populated pixels with the true
    sum (in dex squared, averaged over galaxies and maps): the network learns
    to put the mass it cannot place exactly where the light says it is, as a
    flux-conserving reconstruction does. Intensive maps (ages,
    metallicities) do not sum to anything physical and are left out.

    What remains of the bias in those sums varies from one training run to
    the next (a few hundredths of a dex). With ``calibrate_integrals`` the
    fitted model measures it on its training galaxies and removes it: one
    additive log10 offset per surface-density map, the mean over galaxies of
    log10(true sum / predicted sum), applied to every prediction. This is the
    smearing estimate of retransformation bias for regressions in log space
    (Duan 1983, JASA 78, 605), here for sums of pixels; it uses no held-out
    data, and the offsets are saved with the model (``info_["log10_offset"]``).
    With ``predict_uncertainty`` the network also predicts a
    per-pixel log-uncertainty and is trained with the Gaussian negative
    log-likelihood. The defaults, and those of `default_trainer`, are
    PICASSSO's: Adam, lr 1e-5 divided by 10 after epochs 8 and 10, 13 epochs,
    batch 16, 20% validation.

    Parameters
    ----------
    width : float, optional
        Width multiplier of the U-Net (1: 64/128/256/512, 1024 at the bottom).
    channels : tuple of int, optional
        Channels per level (before ``width``).
    bottom : int, optional
        Channels of the bottom level (before ``width``).
    batch_norm : bool, optional
        Batch norm after each convolution.
    target_names : tuple of str, optional
        Maps to predict (default: every map of the training records, or
        ``batch.meta["target_names"]``).
    linear_targets : tuple of str, optional
        Maps regressed as they are rather than as log10. Default: maps whose
        unit is logarithmic (dex, mag) or that have negative training values.
    predict_uncertainty : bool, optional
        Also predict a one-sigma uncertainty per pixel (Gaussian NLL loss).
    empty_weight : float, optional
        Loss weight of empty pixels.
    border : int, optional
        Pixels cropped from each edge in the loss.
    integral_weight : float, optional
        Weight of the per-galaxy integral term (see above; 0 for PICASSSO's
        per-pixel loss alone). The default 3 is the demo's measured choice
        (:doc:`/user_guide/demo`).
    calibrate_integrals : bool, optional
        Remove the mean bias of the summed surface-density maps measured on
        the training galaxies (see above).
    augmenter : `~astro_cl.augment.Augmenter`, list of dict or str, optional
        Applied to each training batch (must transform targets alike).
    kind : str, optional
        Record field used as input when fitting on a survey (default images).

    Notes
    -----
    Training settings are given to `fit` as a
    `~astro_cl.training.TrainerConfig` or a dict, e.g.
    ``fit(survey, trainer={"epochs": 20, "lr": 1e-3})``. The parameters are
    checked when fitting, as for `~astro_cl.models.simclr.SimCLR`.
    """

    name = "cnn-regressor"
    # its batch preparation (pixel-exact flips and turns, log10 of the maps) is
    # light and free of reductions: one thread for it, the cores for the U-Net
    prefetch_threads = 1
    description = "U-Net from images to resolved property maps (PICASSSO), optional uncertainty."
    output_type = "maps"
    _parameter_constraints = {
        "width": [Interval(float, 0, None, closed="neither")],
        "channels": [SequenceOf(Interval(int, 1, None), min_length=1)],
        "bottom": [Interval(int, 1, None)],
        "target_names": [None, SequenceOf(str, min_length=1)],
        "linear_targets": [None, SequenceOf(str)],
        "empty_weight": [Interval(float, 0, None)],
        "border": [Interval(int, 0, None)],
        "integral_weight": [Interval(float, 0, None)],
        "calibrate_integrals": [bool],
        "kind": [None, str],
    }

    def __init__(self, *, width=1.0, channels=(64, 128, 256, 512), bottom=1024, batch_norm=True,
                 target_names=None, linear_targets=None, predict_uncertainty=False,
                 empty_weight=1e-3, border=4, integral_weight=3.0, calibrate_integrals=True,
                 augmenter=None, kind=None):
        self.width = width
        self.channels = channels
        self.bottom = bottom
        self.batch_norm = batch_norm
        self.target_names = target_names
        self.linear_targets = linear_targets
        self.predict_uncertainty = predict_uncertainty
        self.empty_weight = empty_weight
        self.border = border
        self.integral_weight = integral_weight
        self.calibrate_integrals = calibrate_integrals
        self.augmenter = augmenter
        self.kind = kind

    def default_trainer(self):
        """Return PICASSSO's training settings.

        Returns
        -------
        trainer : `~astro_cl.training.TrainerConfig`
            Adam, lr 1e-5 divided by 10 after epochs 8 and 10
            (``"multistep"``), 13 epochs, batches of 16, 20% of the galaxies
            for validation, no early stopping, seed 0.
        """
        return TrainerConfig(optimizer="adam", lr=1e-5, weight_decay=0.0, schedule="multistep",
                             epochs=13, batch_size=16, validation_fraction=0.2, patience=None,
                             seed=0)

    # -- data ---------------------------------------------------------------
    def training_targets(self):
        """Return the maps the training batches carry: ``target_names``, or every map.

        Returns
        -------
        targets : tuple of str or "maps"
        """
        return tuple(self.target_names) if self.target_names else "maps"

    def input_info(self, source):
        """Describe the inputs and the targets: the maps, their units and transforms.

        Besides `~astro_cl.models.TorchEncoder.input_info`: ``out_channels``,
        ``target_names``, ``target_units``, ``log_floor`` (log10 of empty
        pixels), ``target_as_is`` (maps regressed as they are),
        ``target_offset`` and ``target_scale`` (the standardisation), from one
        pass over the training targets.

        Parameters
        ----------
        source : batch source
            Training batches with targets.

        Returns
        -------
        info : dict

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the batches have no targets, or a map with negative values is
            to be regressed in log10.
        """
        import torch

        from astro_cl.training.data import source_meta

        info = super().input_info(source)
        meta = source_meta(source)
        first = source.batch(np.array([0]))
        if first.targets is None:
            msg = ("cnn-regressor: the training batches have no targets; fit on a survey whose "
                   "records have maps, or give TensorBatch(targets=..., target_mask=...)")
            raise ValidationError(msg)
        k = int(first.targets.shape[1])
        names = list(meta.get("target_names") or self.target_names or
                     [f"map{i}" for i in range(k)])
        units = list(meta.get("target_units") or [""] * k)
        if len(names) != k or len(units) != k:
            msg = (f"cnn-regressor: {k} target maps but target names {names} / units {units}")
            raise ValidationError(msg)
        # One pass over the training targets: which maps may be negative, the
        # log10 floor for empty pixels (1 dex below the smallest populated
        # value) and the mean / std used to standardise each map.
        chunks = [source.batch(torch.arange(s, min(len(source), s + 256)))
                  for s in range(0, len(source), 256)]
        negative = _negative_maps(chunks, k)
        if self.linear_targets is None:
            as_is = [bool(negative[i]) or str(units[i]) in _LOG_UNITS for i in range(k)]
        else:
            unknown = sorted(set(self.linear_targets) - set(map(str, names)))
            if unknown:
                msg = f"cnn-regressor: linear_targets {unknown} are not among the targets {names}"
                raise ValidationError(msg)
            as_is = [str(n) in self.linear_targets for n in names]
        bad_log = [str(n) for n, keep, neg in zip(names, as_is, negative.tolist(), strict=True)
                   if neg and not keep]
        if bad_log:
            msg = (f"cnn-regressor: target maps {bad_log} have negative values and cannot be "
                   "regressed in log10; list them in linear_targets")
            raise ValidationError(msg)
        floor, mean, std = _log_statistics(chunks, as_is, units)
        info.update(out_channels=k, target_names=[str(n) for n in names],
                    target_units=[str(u) for u in units],
                    log_floor=[float(f) for f in floor], target_as_is=as_is,
                    target_offset=[float(m) for m in mean],
                    target_scale=[float(s) for s in std])
        return info

    def _target_transform(self):
        """Return (as_is, offset, scale) of the targets (identity for old checkpoints)."""
        k = int(self.info_["out_channels"]) if hasattr(self, "info_") else 0
        info = getattr(self, "info_", {})
        return (info.get("target_as_is", [False] * k), info.get("target_offset", [0.0] * k),
                info.get("target_scale", [1.0] * k))

    def build_module(self, info):
        """Return the U-Net (twice the maps' channels with ``predict_uncertainty``).

        Parameters
        ----------
        info : dict
            From `input_info`.

        Returns
        -------
        module : `~astro_cl.models.backbones.UNet`
        """
        from astro_cl.models.backbones import UNet

        k = int(info["out_channels"])
        return UNet(info["in_channels"], 2 * k if self.predict_uncertainty else k,
                    channels=tuple(self.channels), bottom=int(self.bottom),
                    width=float(self.width), batch_norm=bool(self.batch_norm))

    def build_loss(self, info):
        """Return the masked squared error of log10 maps (Gaussian NLL with uncertainty).

        Parameters
        ----------
        info : dict
            From `input_info` (the maps' log10 floor and standardisation).

        Returns
        -------
        loss : object
            With ``prepare(batch, generator)`` and ``compute(module, prepared)``.
        """
        k = int(info["out_channels"])
        as_is = info.get("target_as_is", [False] * k)
        standardise = (as_is, info.get("target_offset", [0.0] * k),
                       info.get("target_scale", [1.0] * k))
        return _RegressionLoss(self.resolve_augmenter(), info.get("log_floor"),
                               float(self.empty_weight), int(self.border),
                               bool(self.predict_uncertainty), standardise,
                               integral_weight=float(self.integral_weight),
                               summable=_summable(info))

    def after_fit(self, source):
        """Measure the bias of the summed surface-density maps on the training galaxies.

        With ``calibrate_integrals``, stores one log10 offset per map in
        ``info_["log10_offset"]`` (0 for maps that are not surface densities):
        the mean over the training galaxies (at most 1024, evenly spaced) of
        log10 of the true over the predicted sum of the populated pixels
        inside the loss's border.

        Parameters
        ----------
        source : batch source
            The training inputs with their target maps.
        """
        import torch

        from astro_cl.data.batch import TensorBatch
        from astro_cl.models.losses import log10_targets
        from astro_cl.training.data import InMemorySource

        k = int(self.info_["out_channels"])
        self.info_["log10_offset"] = [0.0] * k
        as_is = list(self.info_.get("target_as_is", [False] * k))
        summable = _summable(self.info_)
        if not self.calibrate_integrals or not any(summable) or len(source) == 0:
            return
        rows = np.unique(np.linspace(0, len(source) - 1, min(len(source), 1024)).astype(int))
        step = int(self._settings().batch_size or 64) * 4
        deltas = []
        for start in range(0, len(rows), step):
            batch = source.batch(torch.as_tensor(rows[start:start + step]))
            inputs = TensorBatch(data=batch.data, mask=batch.mask, ids=batch.ids,
                                 meta=batch.meta)
            log_pred, _ = self._predict(InMemorySource(inputs), batch_size=step)
            logt, w = log10_targets(batch.targets, batch.target_mask, empty_weight=0.0,
                                    border=int(self.border), log_floor=self.info_["log_floor"],
                                    as_is=as_is)
            populated = (w >= 1.0).numpy()
            true = np.where(populated, 10.0 ** logt.double().numpy(), 0.0).sum(axis=(2, 3))
            pred = np.where(populated, 10.0 ** log_pred.astype(np.float64), 0.0).sum(axis=(2, 3))
            with np.errstate(divide="ignore", invalid="ignore"):
                deltas.append(np.log10(true) - np.log10(pred))
        delta = np.concatenate(deltas)
        offsets = []
        for j in range(k):
            good = np.isfinite(delta[:, j])
            offsets.append(float(np.mean(delta[good, j])) if summable[j] and good.any() else 0.0)
        self.info_["log10_offset"] = offsets

    # -- outputs ------------------------------------------------------------
    def _predict(self, source, batch_size=None):
        import torch

        forward = self.network()
        self.module_.eval()
        k = int(self.info_["out_channels"])
        means, sigmas = [], []
        with torch.no_grad():
            for batch in self.iter_batches(source, batch_size):
                out = forward(batch.data, batch.mask).float().cpu()
                means.append(out[:, :k])
                if self.predict_uncertainty:
                    sigmas.append(torch.exp(out[:, k:].clamp(-7.0, 7.0)))
        _, offset, scale = self._target_transform()
        offset = np.asarray(offset, dtype=np.float32).reshape(1, k, 1, 1)
        scale = np.asarray(scale, dtype=np.float32).reshape(1, k, 1, 1)
        mu = torch.cat(means).numpy() * scale + offset
        # the training-set calibration of the summed maps (after_fit; zero before it)
        mu += np.asarray(self.info_.get("log10_offset", [0.0] * k), np.float32).reshape(1, k, 1, 1)
        sig = torch.cat(sigmas).numpy() * scale if sigmas else None
        return mu, sig

    def transform(self, X, *, batch_size=None):
        """Return the predicted maps as regressed: log10 values (as they are for linear targets).

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
        batch_size : int, optional

        Returns
        -------
        log_maps : `numpy.ndarray`
            ``(N, K, H, W)`` float32 predictions in the order of
            ``info_["target_names"]``: log10 of the map, or the map itself for
            the maps in ``info_["target_as_is"]``.
        """
        return self._predict(self.input_source(X), batch_size)[0]

    def predict_maps(self, X, *, batch_size=None):
        """Predict property maps as NDData with units, WCS and uncertainty.

        Parameters
        ----------
        X : `~astro_cl.surveys.Survey`, `~astro_cl.data.batch.TensorBatch` or batch source
            For a survey, each map gets the celestial WCS of the record's images.
        batch_size : int, optional

        Returns
        -------
        maps : list of dict of str to `~astropy.nddata.NDData`
            One dict per galaxy (in input order), keyed by target name, in
            the training targets' units; ``meta`` has ``id`` and ``model``. With
            ``predict_uncertainty`` each map has a
            `~astropy.nddata.StdDevUncertainty` (the log-normal one-sigma,
            propagated to linear units) and ``meta["log10_sigma"]``.
        """
        import astropy.units as u
        from astropy.nddata import NDData, StdDevUncertainty

        from astro_cl.surveys.base import Survey

        source = self.input_source(X)
        mu, sig = self._predict(source, batch_size)
        names = self.info_["target_names"]
        units = [u.Unit(s) if s else u.dimensionless_unscaled for s in self.info_["target_units"]]
        as_is, _, _ = self._target_transform()
        ids = source.ids
        out = []
        for i, gid in enumerate(ids):
            wcs = None
            if isinstance(X, Survey):
                images = X[gid].images
                wcs = None if images is None or images.wcs is None else images.wcs
                if wcs is not None and getattr(wcs, "naxis", 2) > 2:
                    wcs = wcs.celestial
            maps = {}
            for j, (name, unit) in enumerate(zip(names, units, strict=True)):
                unc, meta = None, {"id": gid, "model": self.name}
                if as_is[j]:
                    value = mu[i, j].astype(np.float64)
                    if sig is not None:
                        unc = StdDevUncertainty(sig[i, j])
                else:
                    value = np.power(10.0, mu[i, j].astype(np.float64))
                    if sig is not None:
                        # one-sigma of a log-normal variable: sigma_log * ln(10) * value
                        unc = StdDevUncertainty(value * np.log(10.0) * sig[i, j])
                        meta["log10_sigma"] = sig[i, j]
                maps[name] = NDData(value.astype(np.float32), unit=unit, wcs=wcs,
                                    uncertainty=unc, meta=meta)
            out.append(maps)
        return out


def _summable(info):
    """Which target maps are surface densities regressed in log10 (their sums are totals)."""
    k = int(info["out_channels"])
    as_is = info.get("target_as_is", [False] * k)
    units = info.get("target_units", [""] * k)
    return [not keep and _is_surface_density(unit) for keep, unit in zip(as_is, units, strict=True)]


def _is_surface_density(unit):
    """Whether a unit is an amount per area (Msun / kpc2, Msun / yr / kpc2, ...)."""
    import astropy.units as u

    try:
        per_area = (u.Unit(unit) * u.m**2).decompose()
    except (ValueError, TypeError):
        return False
    return u.m not in per_area.bases and unit not in ("", None)


def _negative_maps(chunks, k):
    """Return which of the ``k`` target maps have negative unmasked values (bool tensor)."""
    import torch

    negative = torch.zeros(k, dtype=torch.bool)
    for b in chunks:
        finite = torch.isfinite(b.targets)
        if b.target_mask is not None:
            finite &= ~b.target_mask.expand_as(b.targets)
        negative |= ((b.targets < 0) & finite).any(dim=(0, 2, 3))
    return negative


def _log_statistics(chunks, as_is, units):
    """Return the log10 floor of empty pixels and the mean / scale standardising each map.

    The floor is 1 dex below the smallest populated value. Maps in dex (log10
    of a linear map, or given in dex/mag) keep their scale, so the loss is
    PICASSSO's squared error in dex; only signed linear maps (e.g. EW in
    Angstrom) are brought to unit scatter.
    """
    import torch

    from astro_cl.models.losses import log10_targets

    k = len(as_is)
    lo = torch.full((k,), float("inf"))
    total = torch.zeros(k, dtype=torch.float64)
    total_sq = torch.zeros(k, dtype=torch.float64)
    count = torch.zeros(k, dtype=torch.float64)
    for b in chunks:
        logt, w = log10_targets(b.targets, b.target_mask, empty_weight=0.0, as_is=as_is)
        good = w > 0
        lo = torch.minimum(lo, torch.where(good, logt, float("inf")).amin(dim=(0, 2, 3)))
        v = torch.where(good, logt, 0.0).double()
        total += v.sum(dim=(0, 2, 3))
        total_sq += (v * v).sum(dim=(0, 2, 3))
        count += good.sum(dim=(0, 2, 3)).double()
    floor = torch.where(torch.isfinite(lo), lo - 1.0, torch.zeros_like(lo))
    mean = total / count.clamp_min(1)
    std = (total_sq / count.clamp_min(1) - mean**2).clamp_min(0).sqrt()
    in_dex = torch.tensor([not keep or str(unit) in _LOG_UNITS
                           for keep, unit in zip(as_is, units, strict=True)])
    std = torch.where(in_dex | (std <= 1e-6), torch.ones_like(std), std)
    return floor, mean, std


class _RegressionLoss:
    """Masked log10 squared error (or Gaussian NLL) plus the integral term.

    Exact under data parallelism: both terms are normalised by global counts.
    """

    def __init__(self, augmenter, log_floor, empty_weight, border, uncertainty, standardise,
                 integral_weight=0.0, summable=None):
        self.as_is, offset, scale = standardise
        self.integral_weight = float(integral_weight)
        k = len(self.as_is)
        # maps whose linear values sum to a physical total (surface densities)
        self.summable = np.asarray([False] * k if summable is None else summable, bool)
        self.offset = np.asarray(offset, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.augmenter = augmenter
        self.log_floor = log_floor
        self.empty_weight = empty_weight
        self.border = border
        self.uncertainty = uncertainty

    def __call__(self, model, batch, generator):
        return self.compute(model, self.prepare(batch, generator))

    def prepare(self, batch, generator):
        """Augment the batch and turn its targets into log10 values and weights."""
        from astro_cl.models.losses import log10_targets

        if self.augmenter is not None:
            batch = self.augmenter(batch, generator=generator)
        if batch.targets is None:
            msg = "cnn-regressor: a training batch has no targets"
            raise ValidationError(msg)
        import torch

        logt, w = log10_targets(batch.targets, batch.target_mask,
                                empty_weight=self.empty_weight, border=self.border,
                                log_floor=self.log_floor, as_is=self.as_is)
        k = logt.shape[1]
        offset = torch.as_tensor(self.offset, device=logt.device).view(1, k, 1, 1)
        scale = torch.as_tensor(self.scale, device=logt.device).view(1, k, 1, 1)
        return batch.data, batch.mask, (logt - offset) / scale, w

    def compute(self, model, prepared):
        """Return the weighted loss of the network on a prepared batch."""
        import torch

        from astro_cl.training.distributed import all_reduce_sum, dist_active

        data, mask, logt, w = prepared
        k = logt.shape[1]
        out = model(data, mask).float()
        pred = out[:, :k]
        if self.uncertainty:
            log_sigma = out[:, k:].clamp(-7.0, 7.0)
            z = (logt - pred) * torch.exp(-log_sigma)
            per_pixel = 0.5 * z * z + log_sigma + 0.5 * float(np.log(2 * np.pi))
        else:
            per_pixel = (pred - logt) ** 2
        # Global normalisation: sum of weights over every rank, so that the
        # data-parallel gradient equals the single-process one.
        denom = all_reduce_sum(w.sum()).clamp_min(1e-12)
        world = torch.distributed.get_world_size() if dist_active() else 1
        loss = (w * per_pixel).sum() / denom * world
        if self.integral_weight > 0 and self.summable.any():
            loss = loss + self.integral_weight * self._integral(pred, logt, w, world)
        return loss

    def _integral(self, pred, logt, w, world):
        """Mean squared dex error of each galaxy's summed linear maps.

        Two regions per galaxy and map: every populated pixel, and the core,
        the brightest true pixels that hold half the true total (where an
        unresolved peak hides; the full sum alone lets the network make up
        for a low centre with high outskirts).
        """
        import torch

        from astro_cl.training.distributed import all_reduce_sum

        k = logt.shape[1]
        keep = torch.as_tensor(self.summable, device=logt.device)
        offset = torch.as_tensor(self.offset, device=logt.device).view(1, k, 1, 1)
        scale = torch.as_tensor(self.scale, device=logt.device).view(1, k, 1, 1)
        # populated pixels have weight 1 (empty ones empty_weight, masked and border 0)
        populated = (w >= 1.0).flatten(2)
        ln10 = float(np.log(10.0))
        lowest = torch.finfo(pred.dtype).min
        ln_pred = torch.where(populated, ((pred * scale + offset) * ln10).flatten(2), lowest)
        ln_true = torch.where(populated, ((logt * scale + offset) * ln10).flatten(2), lowest)
        # the core: pixels in decreasing true value until half the true total
        ranked, order = ln_true.sort(dim=2, descending=True)
        share = torch.softmax(ranked, dim=2)
        before = share.cumsum(dim=2) - share  # of the total, in brighter pixels
        in_core = torch.zeros_like(populated).scatter(2, order, before < 0.5) & populated
        usable = populated.any(dim=2) & keep.view(1, k)
        sq = 0.0
        for region in (populated, in_core):
            delta = (torch.logsumexp(torch.where(region, ln_pred, lowest), dim=2)
                     - torch.logsumexp(torch.where(region, ln_true, lowest), dim=2)) / ln10
            sq = sq + torch.where(usable, delta**2, 0.0) / 2
        count = all_reduce_sum(usable.sum().to(sq.dtype)).clamp_min(1.0)
        return sq.sum() / count * world
