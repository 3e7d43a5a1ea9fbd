"""The network and the loss of `~astro_cl.models.dense.DenseContrastive` (imports torch).

* `DenseNet`: a U-Net (`~astro_cl.models.backbones.UNet`) whose output is one
  embedding per pixel, with an optional per-pixel projection head (1x1
  convolutions) used in training only.
* `match_views`: pairs of pixels of two augmented views that show the same
  input position (from `~astro_cl.augment.correspondence.augment_with_positions`).
* `dense_info_nce`: the pixel-level InfoNCE loss of those pairs.
"""

import torch
import torch.nn.functional as F
from torch import nn

from astro_cl.models.backbones import UNet

__all__ = ["DenseNet", "dense_info_nce", "match_views"]


class DenseNet(nn.Module):
    """U-Net trunk giving a ``(B, D, H, W)`` embedding map, and a per-pixel projection.

    Parameters
    ----------
    in_channels : int
    embedding_dim : int
        Channels of the embedding map.
    channels : sequence of int, optional
        U-Net channels per level (before ``width``).
    bottom : int, optional
        U-Net bottom channels (before ``width``).
    width : float, optional
        Width multiplier.
    batch_norm : bool, optional
    projection : sequence of int, optional
        Widths of a per-pixel MLP (1x1 convolutions with ReLU between them)
        applied in training only; None: the loss sees the embedding itself.
    """

    def __init__(self, in_channels, embedding_dim, *, channels=(64, 128, 256), bottom=512,
                 width=1.0, batch_norm=True, projection=None):
        super().__init__()
        self.trunk = UNet(in_channels, embedding_dim, channels=tuple(channels), bottom=bottom,
                          width=width, batch_norm=batch_norm)
        self.projection = None
        if projection:
            layers, cin = [], int(embedding_dim)
            for i, c in enumerate(projection):
                layers.append(nn.Conv2d(cin, int(c), 1))
                if i < len(projection) - 1:
                    layers.append(nn.ReLU(inplace=True))
                cin = int(c)
            self.projection = nn.Sequential(*layers)
        self.in_channels = int(in_channels)
        self.min_input_size = 1

    def forward(self, x, mask=None, *, project=True):
        """Return the embedding map (projected in training when ``project``).

        Parameters
        ----------
        x : `torch.Tensor`
            ``(B, C, H, W)``.
        mask : `torch.Tensor` of bool, optional
            True where bad; masked inputs are set to zero.
        project : bool, optional
            Apply the projection head (if any).

        Returns
        -------
        out : `torch.Tensor`
            ``(B, D, H, W)`` (not normalised).
        """
        h = self.trunk(x, mask)
        if project and self.projection is not None:
            return self.projection(h)
        return h


def match_views(pos1, pos2, valid1, valid2, *, n_pixels, match_radius, generator):
    """Sample anchor pixels of view 1 and find the pixel of view 2 at the same input position.

    Parameters
    ----------
    pos1, pos2 : `torch.Tensor`
        ``(B, 2, H, W)`` input positions of the pixels of each view (NaN:
        from outside the frame).
    valid1, valid2 : `torch.Tensor` of bool
        ``(B, H, W)``: pixels that may take part (not masked, finite).
    n_pixels : int
        Anchors drawn per image (at most; fewer where fewer pixels are valid).
    match_radius : float
        Largest distance, in input pixels, between the input positions of
        an anchor and of its match.
    generator : `torch.Generator`
        Draws the anchors.

    Returns
    -------
    idx1, idx2 : `torch.Tensor`
        ``(M,)`` int64 flat indices into ``B * H * W`` of the matched pairs.
    galaxy : `torch.Tensor`
        ``(M,)`` the image each pair belongs to.
    source : `torch.Tensor`
        ``(M, 2)`` the anchors' input positions.
    """
    b, _, h, w = pos1.shape
    hw = h * w
    ok1 = valid1.reshape(b, hw) & torch.isfinite(pos1).all(dim=1).reshape(b, hw)
    ok2 = valid2.reshape(b, hw) & torch.isfinite(pos2).all(dim=1).reshape(b, hw)
    n = min(int(n_pixels), hw)
    score = torch.rand((b, hw), generator=generator, device=generator.device).to(pos1.device)
    score = score.masked_fill(~ok1, 2.0)
    score, anchor = torch.topk(score, n, dim=1, largest=False)
    drawn = score <= 1.0
    p1 = pos1.reshape(b, 2, hw).transpose(1, 2)  # (B, HW, 2)
    p2 = pos2.reshape(b, 2, hw).transpose(1, 2)
    src = torch.gather(p1, 1, anchor.unsqueeze(-1).expand(b, n, 2))
    cand = p2.masked_fill(~ok2.unsqueeze(-1), 1e9)  # never the nearest of a finite anchor
    dist = torch.cdist(torch.nan_to_num(src, nan=-1e9), cand,  # (B, n, HW)
                       compute_mode="donot_use_mm_for_euclid_dist")  # exact near 0
    d, nearest = dist.min(dim=2)
    good = drawn & (d <= float(match_radius))
    galaxy = torch.arange(b, device=pos1.device).view(b, 1).expand(b, n)[good]
    idx1 = galaxy * hw + anchor[good]
    idx2 = galaxy * hw + nearest[good]
    return idx1, idx2, galaxy, src[good]


def dense_info_nce(z1, z2, galaxy, source, *, temperature=0.2, exclude_radius=0.0):
    """Return the symmetric pixel-level InfoNCE loss of matched pixel embeddings.

    Each matched pair (the same input position in the two views) is a
    positive; the other pairs' embeddings in the other view are its
    negatives, from the same galaxy and from the others (as in VADeR,
    Pinheiro et al. 2020, and the dense loss of DenseCL, Wang et al. 2021),
    except, as PixPro (Xie et al. 2021) counts pixels closer than a threshold
    as positives, pixels of the same galaxy closer than ``exclude_radius``
    input pixels to the anchor, which are left out of its negatives.

    Parameters
    ----------
    z1, z2 : `torch.Tensor`
        ``(M, D)`` embeddings of the pairs in views 1 and 2 (normalised here).
    galaxy : `torch.Tensor`
        ``(M,)`` image of each pair.
    source : `torch.Tensor`
        ``(M, 2)`` input positions of the pairs.
    temperature : float, optional
    exclude_radius : float, optional

    Returns
    -------
    loss : `torch.Tensor`
        Scalar; zero (with a gradient) when fewer than two pairs matched.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        msg = (f"dense_info_nce: expected two (M, D) tensors of equal shape, got "
               f"{tuple(z1.shape)} and {tuple(z2.shape)}")
        raise ValueError(msg)
    if not temperature > 0:
        msg = f"dense_info_nce: temperature must be positive, got {temperature}"
        raise ValueError(msg)
    m = z1.shape[0]
    if m < 2:
        return z1.sum() * 0.0 + z2.sum() * 0.0
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    logits = z1 @ z2.T / float(temperature)
    if exclude_radius > 0:
        near = (galaxy.view(-1, 1) == galaxy.view(1, -1)) & \
            (torch.cdist(source.float(), source.float(),
                     compute_mode="donot_use_mm_for_euclid_dist") < float(exclude_radius))
        near.fill_diagonal_(False)
        logits = logits.masked_fill(near, float("-inf"))
    labels = torch.arange(m, device=z1.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
