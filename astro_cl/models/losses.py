"""Loss functions of the contrastive encoder and the map regressor.

* `nt_xent`: the symmetric normalised-temperature cross-entropy of SimCLR,
  with the eCALIFA study's choice of negatives (the other galaxies' embeddings
  in the other view) or SimCLR's (every other embedding of both views).
* `log10_targets` and `masked_mse`: the PICASSSO regression loss, squared
  error on log10 values, empty pixels down-weighted, a border cropped.
* `gaussian_nll`: the same weighting with a predicted per-pixel uncertainty.
* `clip_loss`: the symmetric contrastive loss of CLIP (Radford et al. 2021)
  between two modalities, with a (learnable) logit scale.
"""

import math

import torch
import torch.nn.functional as F

__all__ = ["clip_loss", "gaussian_nll", "log10_targets", "masked_mse", "nt_xent"]


def nt_xent(z1, z2, temperature=0.5, *, negatives="cross"):
    """Return the symmetric NT-Xent contrastive loss of two views.

    Parameters
    ----------
    z1, z2 : `torch.Tensor`
        ``(N, D)`` embeddings of the two views; row ``i`` of both is the same
        galaxy (the positive pair). They are L2-normalised here.
    temperature : float, optional
        Softmax temperature (0.5 in the eCALIFA study).
    negatives : {"cross", "all"}, optional
        ``"cross"`` (the study): the negatives of ``z1[i]`` are ``z2[j != i]``
        and vice versa, i.e. the mean of the cross-entropies of the ``N x N``
        similarity matrix along rows and along columns. ``"all"`` (SimCLR):
        the negatives are the ``2N - 2`` other embeddings of both views.

    Returns
    -------
    loss : `torch.Tensor`
        Scalar, mean over the ``2N`` anchors.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        msg = f"nt_xent: expected two (N, D) tensors of equal shape, got {tuple(z1.shape)} " \
              f"and {tuple(z2.shape)}"
        raise ValueError(msg)
    if not temperature > 0:
        msg = f"nt_xent: temperature must be positive, got {temperature}"
        raise ValueError(msg)
    n = z1.shape[0]
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    labels = torch.arange(n, device=z1.device)
    if negatives == "cross":
        logits = z1 @ z2.T / temperature
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    if negatives == "all":
        z = torch.cat([z1, z2])
        logits = z @ z.T / temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                    float("-inf"))
        return F.cross_entropy(logits, torch.cat([labels + n, labels]))
    msg = f"nt_xent: negatives must be 'cross' or 'all', got {negatives!r}"
    raise ValueError(msg)


def clip_loss(z_a, z_b, logit_scale):
    """Return the symmetric CLIP contrastive loss of paired embeddings of two modalities.

    Row ``i`` of ``z_a`` and of ``z_b`` are the same galaxy seen by two
    instruments (the positive pair); every other row of the other modality
    is a negative. With ``s`` the logit scale (the inverse temperature) and
    the embeddings L2-normalised, the logits are ``s z_a z_b^T`` and the loss
    is the mean of the cross-entropies along rows (a -> b) and along columns
    (b -> a) (Radford et al. 2021; AstroCLIP, Parker et al. 2024). Swapping
    the modalities gives the same value.

    Parameters
    ----------
    z_a, z_b : `torch.Tensor`
        ``(N, D)`` embeddings of the two modalities (normalised here).
    logit_scale : float or `torch.Tensor`
        Positive scalar multiplying the cosine similarities; a tensor keeps
        its gradient (CLIP learns it, as ``exp`` of a parameter).

    Returns
    -------
    loss : `torch.Tensor`
        Scalar.

    Raises
    ------
    ValueError
        If the embeddings are not two ``(N, D)`` tensors of equal shape, or
        the scale is not positive.
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        msg = (f"clip_loss: expected two (N, D) tensors of equal shape, got "
               f"{tuple(z_a.shape)} and {tuple(z_b.shape)}")
        raise ValueError(msg)
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=z_a.device)
    if scale.numel() != 1 or not bool(scale.detach() > 0):
        msg = f"clip_loss: logit_scale must be one positive number, got {logit_scale!r}"
        raise ValueError(msg)
    z_a = F.normalize(z_a.float(), dim=1)
    z_b = F.normalize(z_b.float(), dim=1)
    logits = scale.reshape(()) * (z_a @ z_b.T)
    labels = torch.arange(z_a.shape[0], device=z_a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def log10_targets(targets, target_mask=None, *, empty_weight=0.0, border=0, log_floor=None,
                  as_is=None):
    """Turn linear target maps into log10 values and per-pixel loss weights.

    Parameters
    ----------
    targets : `torch.Tensor`
        ``(B, K, H, W)`` linear, non-negative target maps (e.g. surface
        densities). Pixels ``<= 0`` are *empty* (no stars or gas there).
    target_mask : `torch.Tensor` of bool, optional
        Broadcastable to ``targets``; True where the target is unusable
        (weight 0). Non-finite targets are masked too.
    empty_weight : float, optional
        Weight of empty pixels (PICASSSO: about 0); populated pixels have 1.
    border : int, optional
        Pixels cropped from each image edge (weight 0; PICASSSO crops 4).
    log_floor : float or sequence of float, optional
        log10 value given to empty pixels, scalar or one per map. Default:
        1 dex below the smallest populated value of that map in the batch.
    as_is : sequence of bool, optional
        One flag per map: True for maps that are already logarithmic (e.g.
        metallicity in dex) or may be negative; those are passed through
        unchanged and every finite, unmasked pixel counts as populated.

    Returns
    -------
    log_targets : `torch.Tensor`
        ``(B, K, H, W)`` log10 targets, finite everywhere.
    weights : `torch.Tensor`
        ``(B, K, H, W)`` non-negative weights.
    """
    targets = targets.float()
    finite = torch.isfinite(targets)
    bad = ~finite
    if target_mask is not None:
        bad = bad | target_mask.to(torch.bool).expand_as(targets)
    k = targets.shape[1]
    keep = torch.zeros(k, dtype=torch.bool, device=targets.device) if as_is is None \
        else torch.as_tensor(list(as_is), dtype=torch.bool, device=targets.device)
    keep = keep.view(1, k, 1, 1)
    populated = ((targets > 0) | keep) & ~bad
    empty = ~populated & ~bad
    safe = torch.where(populated & ~keep, targets, torch.ones_like(targets))
    logt = torch.where(keep, torch.where(bad, 0.0, targets), torch.log10(safe))
    if log_floor is None:
        big = torch.full_like(logt, float("inf"))
        lo = torch.where(populated, logt, big).amin(dim=(0, 2, 3))
        floor = torch.where(torch.isfinite(lo), lo - 1.0, torch.zeros_like(lo))
    else:
        floor = torch.as_tensor(log_floor, dtype=logt.dtype, device=logt.device).expand(k)
    logt = torch.where(populated, logt, floor.view(1, k, 1, 1).expand_as(logt))
    weights = populated.to(logt.dtype) + float(empty_weight) * empty.to(logt.dtype)
    if border:
        b = int(border)
        h, w = targets.shape[-2:]
        if 2 * b >= min(h, w):
            msg = f"border={b} crops the whole {h}x{w} target map"
            raise ValueError(msg)
        edge = torch.ones((h, w), dtype=torch.bool, device=targets.device)
        edge[b:h - b, b:w - b] = False
        weights = weights.masked_fill(edge, 0.0)
    return logt, weights


def masked_mse(pred, target, weights):
    """Return the weighted mean squared error.

    Parameters
    ----------
    pred, target : `torch.Tensor`
        Predictions and targets of the same shape (log10 values).
    weights : `torch.Tensor`
        Non-negative per-pixel weights of the same shape.

    Returns
    -------
    loss : `torch.Tensor`
        ``sum(w (pred - target)^2) / sum(w)``; 0 if every weight is 0.
    """
    total = weights.sum()
    return (weights * (pred.float() - target) ** 2).sum() / total.clamp_min(1e-12)


def gaussian_nll(pred, log_sigma, target, weights):
    """Return the weighted Gaussian negative log-likelihood per pixel.

    Parameters
    ----------
    pred : `torch.Tensor`
        Predicted means.
    log_sigma : `torch.Tensor`
        Natural log of the predicted one-sigma uncertainty (same shape);
        clamped to [-7, 7] for stability.
    target : `torch.Tensor`
        Targets.
    weights : `torch.Tensor`
        Non-negative per-pixel weights.

    Returns
    -------
    loss : `torch.Tensor`
        Weighted mean of ``0.5 ((t - mu) / sigma)^2 + log sigma + 0.5 log(2 pi)``.
    """
    log_sigma = log_sigma.float().clamp(-7.0, 7.0)
    z = (target - pred.float()) * torch.exp(-log_sigma)
    nll = 0.5 * z * z + log_sigma + 0.5 * math.log(2 * math.pi)
    return (weights * nll).sum() / weights.sum().clamp_min(1e-12)
