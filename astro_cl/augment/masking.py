"""Masking augmenters: foreground-star masks and random cutouts.

Masked pixels are set to ``fill`` and flagged bad in ``batch.mask``, so the
encoder learns to ignore what lies under a foreground star or a missing patch.
"""

import numpy as np
import torch

from astro_cl.augment._inplace import chain_owned
from astro_cl.augment._random import as_range, randint, uniform
from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError
from astro_cl.utils.tensors import fill_pixels

__all__ = ["RandomCutout", "StarMask", "star_catalogue"]


def star_catalogue(star_mask):
    """Measure the stars of boolean star masks: positions and radii.

    Parameters
    ----------
    star_mask : array-like of bool
        ``(B, H, W)`` or ``(B, 1, H, W)`` masks, True on a star.

    Returns
    -------
    y, x : `numpy.ndarray`
        Centroids of each star (connected region) as fractions of the image
        height and width.
    radius : `numpy.ndarray`
        Equivalent circular radius ``sqrt(area / pi)`` in pixels.
    counts : `numpy.ndarray` of int
        Number of stars in each image.
    """
    from scipy import ndimage

    m = np.asarray(star_mask, dtype=bool)
    if m.ndim == 4:
        m = m[:, 0]
    if m.ndim != 3:
        msg = f"star_catalogue: expected (B, H, W) masks, got shape {m.shape}"
        raise ValidationError(msg)
    b, h, w = m.shape
    # label each image separately: a 3-D structure with no links across images
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    labels, n = ndimage.label(m, structure=structure)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(b, int)
    index = np.arange(1, n + 1)
    com = np.asarray(ndimage.center_of_mass(m, labels, index)).reshape(n, 3)
    area = ndimage.sum_labels(m, labels, index)
    counts = np.bincount(com[:, 0].round().astype(int), minlength=b)
    return com[:, 1] / h, com[:, 2] / w, np.sqrt(area / np.pi), counts


def _disks(cy, cx, r, active, height, width):
    """Union of disks per sample: centres/radii (B, S) -> (B, 1, H, W) bool."""
    yy = torch.arange(height, device=cy.device, dtype=cy.dtype).view(1, 1, height, 1)
    xx = torch.arange(width, device=cy.device, dtype=cy.dtype).view(1, 1, 1, width)
    d2 = (yy - cy[..., None, None]) ** 2 + (xx - cx[..., None, None]) ** 2
    inside = (d2 <= r[..., None, None] ** 2) & active[..., None, None]
    return inside.any(dim=1, keepdim=True)


def _apply_mask(batch, new, fill):
    """Mask pixels ``new`` (B, 1, H, W) in every channel and set them to ``fill``."""
    data = batch.data
    return {"data": fill_pixels(data, new, float(fill), inplace=chain_owned(data)),
            "mask": batch.mask | new}


class StarMask(Augmenter):
    """Mask foreground stars: real star masks, or synthetic ones drawn like real stars.

    With real masks available (``batch.star_mask``, e.g. the eCALIFA
    GAIA_MASK extension) each image receives the star mask of a randomly
    chosen image of the batch. Otherwise synthetic stars are drawn: if the
    augmenter was `fit` on a batch with star masks, the number of stars per
    image and each star's position (relative to the frame) and radius are
    drawn from the measured real ones (with a small positional jitter);
    unfitted, counts, positions and radii are uniform within the given ranges.
    Radii never exceed ``max_radius`` (16 px in the eCALIFA study).

    Parameters
    ----------
    source : {"auto", "real", "synthetic"}, optional
        ``"auto"`` uses real masks when the batch has them.
    n_stars : int or (int, int), optional
        Number of synthetic stars per image (unfitted draw).
    radius : float or (float, float), optional
        Synthetic star radius in pixels (unfitted draw).
    max_radius : float, optional
        Upper limit of any synthetic radius, pixels.
    jitter : float, optional
        Positional jitter, pixels, of stars drawn from the fitted catalogue.
    fill : float, optional
        Value of masked pixels.

    Attributes
    ----------
    star_y_, star_x_ : `numpy.ndarray`
        Fitted star centroids as fractions of the frame (after `fit`).
    star_radius_ : `numpy.ndarray`
        Fitted star radii in pixels.
    star_counts_ : `numpy.ndarray`
        Fitted number of stars per image.
    """

    name = "star-mask"
    description = "Foreground-star masks: real ones from the data, or synthetic ones like them."
    conserves_flux = False

    def __init__(self, *, source="auto", n_stars=(0, 3), radius=(2.0, 16.0), max_radius=16.0,
                 jitter=2.0, fill=0.0):
        self.source = source
        self.n_stars = n_stars
        self.radius = radius
        self.max_radius = max_radius
        self.jitter = jitter
        self.fill = fill

    def fit(self, batch=None):
        """Learn the distribution of real stars from ``batch.star_mask``.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch` or array-like, optional
            A batch with star masks, or the ``(B, H, W)`` masks themselves.
            Without star masks nothing is learned.

        Returns
        -------
        self : `StarMask`
        """
        masks = getattr(batch, "star_mask", batch)
        if masks is None:
            return self
        if isinstance(masks, torch.Tensor):
            masks = masks.detach().cpu().numpy()
        y, x, r, counts = star_catalogue(masks)
        self.star_y_, self.star_x_, self.star_radius_, self.star_counts_ = y, x, r, counts
        return self

    def _synthetic(self, batch, generator):
        b, _, h, w = batch.data.shape
        dev = batch.device
        fitted = getattr(self, "star_counts_", None) is not None and len(self.star_radius_)
        if fitted:
            counts_pool = torch.as_tensor(self.star_counts_, device=dev)
            pick = randint(0, len(counts_pool) - 1, b, generator, dev)
            n = counts_pool[pick]
        else:
            lo, hi = as_range(self.n_stars, "n_stars", "StarMask", integer=True, minimum=0)
            n = randint(lo, hi, b, generator, dev)
        s = max(int(n.max()) if b else 0, 1)
        active = torch.arange(s, device=dev).view(1, s) < n.view(b, 1)
        if fitted:
            k = len(self.star_radius_)
            idx = randint(0, k - 1, b * s, generator, dev)
            pool = torch.as_tensor(np.stack([self.star_y_, self.star_x_, self.star_radius_]),
                                   dtype=torch.float32, device=dev)[:, idx]
            jit = float(self.jitter)
            cy = pool[0] * h + uniform(-jit, jit, b * s, generator, dev)
            cx = pool[1] * w + uniform(-jit, jit, b * s, generator, dev)
            r = pool[2]
        else:
            r_lo, r_hi = as_range(self.radius, "radius", "StarMask", minimum=0.0)
            cy = uniform(0, h, b * s, generator, dev)
            cx = uniform(0, w, b * s, generator, dev)
            r = uniform(r_lo, r_hi, b * s, generator, dev)
        r = r.clamp(max=float(self.max_radius))
        return _disks(cy.view(b, s), cx.view(b, s), r.view(b, s), active, h, w)

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        if self.source not in ("auto", "real", "synthetic"):
            msg = f"StarMask.source: expected 'auto', 'real' or 'synthetic', got {self.source!r}"
            raise ValidationError(msg)
        real = batch.star_mask is not None and self.source in ("auto", "real")
        if self.source == "real" and batch.star_mask is None:
            msg = "StarMask(source='real'): the batch has no star_mask"
            raise ValidationError(msg)
        if real:
            donor = randint(0, len(batch) - 1, len(batch), generator, batch.device)
            stars = batch.star_mask[donor].to(torch.bool)
        else:
            stars = self._synthetic(batch, generator)
        out = _apply_mask(batch, stars, self.fill)
        out["star_mask"] = stars if batch.star_mask is None else (batch.star_mask | stars)
        return batch.replace(**out)


class RandomCutout(Augmenter):
    """Mask random rectangles (random erasing / cutout).

    Parameters
    ----------
    n : int or (int, int), optional
        Number of rectangles per image (inclusive range).
    size : int or (int, int), optional
        Side lengths in pixels, drawn independently for height and width.
    fill : float, optional
        Value of the masked pixels.
    """

    name = "random-cutout"
    description = "Mask random rectangles (cutout / random erasing)."
    conserves_flux = False

    def __init__(self, *, n=(1, 1), size=(4, 16), fill=0.0):
        self.n = n
        self.size = size
        self.fill = fill

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        n_lo, n_hi = as_range(self.n, "n", "RandomCutout", integer=True, minimum=0)
        s_lo, s_hi = as_range(self.size, "size", "RandomCutout", integer=True, minimum=1)
        b, _, h, w = batch.data.shape
        dev = batch.device
        n = randint(n_lo, n_hi, b, generator, dev)
        s = max(n_hi, 1)
        active = (torch.arange(s, device=dev).view(1, s) < n.view(b, 1))[..., None, None]
        hh = randint(s_lo, s_hi, b * s, generator, dev).view(b, s, 1, 1)
        ww = randint(s_lo, s_hi, b * s, generator, dev).view(b, s, 1, 1)
        y0 = (uniform(0, 1, b * s, generator, dev).view(b, s, 1, 1) * (h - hh + 1)).floor()
        x0 = (uniform(0, 1, b * s, generator, dev).view(b, s, 1, 1) * (w - ww + 1)).floor()
        yy = torch.arange(h, device=dev).view(1, 1, h, 1)
        xx = torch.arange(w, device=dev).view(1, 1, 1, w)
        inside = (yy >= y0) & (yy < y0 + hh) & (xx >= x0) & (xx < x0 + ww) & active
        out = _apply_mask(batch, inside.any(dim=1, keepdim=True), self.fill)
        return batch.replace(**out)
