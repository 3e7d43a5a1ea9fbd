"""The eCALIFA study's cube noise and "redshift" rebinning, applied to CubePCA images.

The study (Martinez-Solaeche et al. 2024, public code) augments the data
cubes and only then normalises the spectra and projects them on the PCA.
astro_cl preprocesses each galaxy once (cached) and augments the images, so
the same operations have to be carried through the preprocessing:

* noise ``cube * (1 + N(0, 1) / SN)`` on every wavelength pixel becomes, on
  the normalised spectrum ``x``, ``x * n / SN``: its projection on the
  orthonormal components is Gaussian with covariance ``E diag(x**2) E^T / SN**2``
  (large for the high-order components at low S/N), while the luminosity
  channel, a median over the 5600-6000 A window, barely moves;
* block-summing the cube over ``f x f`` spaxels sums their luminosities
  (channel 0 becomes the log of the summed luminosity), and the normalised
  spectrum of a block is the luminosity-weighted mean of the normalised
  spectra, so its PCA coefficients are the luminosity-weighted means.

Applied to the standardised channels literally, as `~astro_cl.augment.MultiplicativeNoise`
and `~astro_cl.augment.Rebin` do for flux images, the same formulas scale
the channels' z-scores instead (up to 25 times for a 5 x 5 block), which no
cube could produce. `PCASpaceNoise` and `PCASpaceRebin` act as the cube
operations would; the comparison with the cube path is in the tests and on
the augmenters page of the user guide.
"""

import numpy as np
import torch
import torch.nn.functional as F

from astro_cl.augment._random import as_range, randint, randn_like
from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError

__all__ = ["PCASpaceNoise", "PCASpaceRebin"]

# the standard error of a median of n Gaussian values is sqrt(pi / 2) / sqrt(n) sigma
_MEDIAN_ERROR = float(np.sqrt(np.pi / 2.0))


def _pca_state(step, batch):
    """Per-channel scale of a batch of CubePCA images, as tensors on the batch's device.

    Returns ``(mean, std, lum)``: ``value = mean + std * channel`` gives the
    unstandardised channels (log10 L first when ``lum``, then the PCA
    coefficients).
    """
    pca = step.preprocessor
    owner = type(step).__name__
    if pca is None:
        msg = (f"{owner}: needs the fitted cube-pca preprocessor whose images it augments "
               "(preprocessor=...); in a training configuration it is the run's [preprocess]")
        raise ValidationError(msg)
    for attr in ("components_", "mean_", "wave_", "channel_mean_", "channel_std_"):
        if getattr(pca, attr, None) is None:
            msg = (f"{owner}: the preprocessor {getattr(pca, 'name', type(pca).__name__)!r} "
                   f"has no {attr}; expected a fitted cube-pca preprocessor")
            raise ValidationError(msg)
    lum = bool(pca.luminosity_channel)
    n_chan = int(pca.n_components) + (1 if lum else 0)
    if batch.data.shape[1] != n_chan:
        msg = (f"{owner}: the images have {batch.data.shape[1]} channels, the cube-pca "
               f"preprocessor makes {n_chan} (luminosity channel: {lum}); augment the "
               "images of that preprocessor")
        raise ValidationError(msg)
    kept = slice(0 if lum else 1, None)
    if pca.standardize:
        mean, std = pca.channel_mean_[kept], pca.channel_std_[kept]
    else:
        mean, std = np.zeros(n_chan), np.ones(n_chan)
    as_t = {"device": batch.device, "dtype": batch.data.dtype}
    return (torch.as_tensor(mean, **as_t).view(1, -1, 1, 1),
            torch.as_tensor(std, **as_t).view(1, -1, 1, 1), lum)


class _ThroughPCA(Augmenter):
    """An image step that reads the fitted `~astro_cl.preprocess.CubePCA` behind the images."""

    space = "image"

    def __repr__(self):
        params = self.get_params(deep=False)
        pre = params.pop("preprocessor", None)
        # the preprocessor by name: its parameters belong to the preprocessing step
        shown = "None" if pre is None else f"<{getattr(pre, 'name', type(pre).__name__)}>"
        args = ", ".join([f"preprocessor={shown}", *(f"{k}={v!r}" for k, v in params.items())])
        return f"{type(self).__name__}({args})"


class PCASpaceNoise(_ThroughPCA):
    """The study's multiplicative cube noise, as it reaches CubePCA images.

    Each image gets the noise ``cube * (1 + N(0, 1) / SN)`` of one
    signal-to-noise ratio ``SN`` (an integer drawn per image from ``sn``, 1-10
    in the study) on every wavelength pixel of its spectra, carried through
    the normalisation and the PCA: the coefficients get Gaussian noise of
    covariance ``E diag(m**2) E^T / SN**2`` (``E`` the components, ``m`` the
    mean normalised spectrum, standing for each spaxel's own), and the
    normalising median a relative error ``sqrt(pi / 2) / sqrt(n) / SN`` over
    the ``n`` pixels of the normalisation window, which moves the luminosity
    channel and rescales the normalised spectrum. Masked spaxels (outside
    the galaxy's region, filled with sky-like values) are left as they are.

    Parameters
    ----------
    preprocessor : `~astro_cl.preprocess.CubePCA`
        The fitted preprocessor that made the images (its components, mean
        spectrum and channel scaling); read when a batch is augmented, so it
        may be fitted after this step is made.
    sn : int or (int, int), optional
        Signal-to-noise ratio, or an inclusive range drawn per image.

    Notes
    -----
    The noise is drawn in the batch's memory layout (channels-last batches
    pixel by pixel, others channel by channel): the same seed gives the same
    views for a batch of the same layout, as the trainer's batches always are.

    Examples
    --------
    >>> from astro_cl.augment import PCASpaceNoise
    >>> from astro_cl.preprocess import CubePCA
    >>> step = PCASpaceNoise(preprocessor=CubePCA(standardize=True), sn=(1, 10))
    >>> step.space
    'image'
    """

    name = "pca-space-noise"
    description = "The study's cube noise x (1 + N/SN), carried through CubePCA onto its images."

    def __init__(self, *, preprocessor=None, sn=(1, 10)):
        self.preprocessor = preprocessor
        self.sn = sn

    def _noise_model(self, batch, lum):
        """Return, per output channel, the noise's Cholesky factor at S/N 1 and E m.

        The luminosity channel (first, with ``lum``) gets a zero row and
        column: its noise is the normalising median's, added separately.
        Also returns the relative error of that median at S/N 1.
        """
        pca = self.preprocessor
        comps = np.asarray(pca.components_, dtype=float)
        mean_spec = np.asarray(pca.mean_, dtype=float)
        cov = (comps * mean_spec**2) @ comps.T
        chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) * np.eye(len(cov)))
        proj_mean = comps @ mean_spec
        if lum:
            chol = np.pad(chol, ((1, 0), (1, 0)))
            proj_mean = np.concatenate([[0.0], proj_mean])
        wave = np.asarray(pca.wave_, dtype=float)
        lo, hi = (float(v) for v in pca.norm_window)
        n_window = max(int(((wave >= lo) & (wave <= hi)).sum()), 1)
        as_t = {"device": batch.device, "dtype": batch.data.dtype}
        return (torch.as_tensor(chol, **as_t), torch.as_tensor(proj_mean, **as_t),
                _MEDIAN_ERROR / np.sqrt(n_window))

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        mean, std, lum = _pca_state(self, batch)
        low, high = as_range(self.sn, "sn", type(self).__name__, integer=True, minimum=1)
        chol, proj_mean, median_error = self._noise_model(batch, lum)
        data = batch.data
        b, c, h, w = data.shape
        inv_sn = randint(low, high, b, generator, batch.device).to(data.dtype).reciprocal()
        # work where the channels are: pixel-major (B, H*W, C) for channels-last
        # batches, channel-major (B, C, H*W) otherwise; no layout copies
        pixel_major = data.dim() == 4 and data.is_contiguous(memory_format=torch.channels_last) \
            and not data.is_contiguous()
        if pixel_major:
            x = data.permute(0, 2, 3, 1).reshape(b, h * w, c)
            chan = (1, 1, c)
            good = (~batch.mask.any(dim=1)).reshape(b, h * w, 1)
        else:
            data = data.contiguous()
            x = data.view(b, c, h * w)
            chan = (1, c, 1)
            good = (~batch.mask.any(dim=1)).reshape(b, 1, h * w)
        good = good.to(data.dtype)
        one = (b, h * w, 1) if pixel_major else (b, 1, h * w)  # one value per spaxel
        # draw order: the normalisation errors, then the coefficient noise
        rel = randn_like(torch.empty(one, dtype=data.dtype, device=data.device), generator,
                         std=median_error * inv_sn)
        z = randn_like(x, generator, memory_format=torch.contiguous_format, std=inv_sn)
        noise = z @ chol.T if pixel_major else chol @ z
        rel.mul_(good)  # masked spaxels keep their values
        noise.mul_(good)
        # the normalised spectrum is divided by (1 + rel): a coefficient c moves
        # by (c + E m) (1 / (1 + rel) - 1) + noise, in units of its std; the
        # luminosity channel by log10(1 + rel)
        scale = (1.0 + rel).clamp_(min=1e-3)
        shrink = scale.reciprocal().sub_(1.0)
        coeff_std = std.view(chan).clone()
        offset = (mean.view(chan) + proj_mean.view(chan)).clone()
        if lum:
            coeff_std.view(-1)[0], offset.view(-1)[0] = 0.0, 0.0
        noise.addcmul_(torch.addcmul(offset, x, coeff_std), shrink)
        if lum:
            lum_noise = noise[..., 0:1] if pixel_major else noise[:, 0:1]
            lum_noise.add_(torch.log10(scale))
        out = torch.addcmul(x, noise, std.view(chan).reciprocal())
        if pixel_major:
            out = out.view(b, h, w, c).permute(0, 3, 1, 2)
        else:
            out = out.view(b, c, h, w)
        return batch.replace(data=out)


class PCASpaceRebin(_ThroughPCA):
    """The study's "redshift" block-sum of the cube, as it reaches CubePCA images.

    Each image is shrunk by an integer factor ``f`` (drawn per image from
    ``factor``; ``f = 1`` leaves it as it is): the luminosity channel of a
    block is the log of its summed luminosity and its PCA coefficients are
    the luminosity-weighted means of its spaxels' coefficients (the
    normalised spectrum of a summed spectrum), both over the block's good
    spaxels; a block without good spaxels stays masked, with the mean of its
    sky-like values. The reduced image is centred in a frame of the input
    size whose other pixels are masked and filled with sky-like values drawn
    from the preprocessor's sky statistics, as the preprocessor fills the
    spaxels outside a galaxy. Without a luminosity channel (the study's
    ablation) the coefficients are averaged with equal weights.

    Parameters
    ----------
    preprocessor : `~astro_cl.preprocess.CubePCA`
        The fitted preprocessor that made the images; read when a batch is
        augmented.
    factor : int or (int, int), optional
        Rebinning factor, or an inclusive range drawn per image (1-5 in the study).

    Notes
    -----
    Uncertainties and regression targets are not carried (CubePCA images have
    neither); star masks follow the "any" rule, as in `~astro_cl.augment.Rebin`.
    """

    name = "pca-space-rebin"
    description = "The study's 'redshift' block-sum of the cube, carried through CubePCA."

    def __init__(self, *, preprocessor=None, factor=(1, 5)):
        self.preprocessor = preprocessor
        self.factor = factor

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        mean, std, lum = _pca_state(self, batch)
        low, high = as_range(self.factor, "factor", type(self).__name__, integer=True,
                             minimum=1)
        data, mask = batch.data, batch.mask
        b, _, h, w = data.shape
        factors = randint(low, high, b, generator, "cpu")
        out_data, out_mask = data.clone(), mask.any(dim=1, keepdim=True).clone()
        out_star = None if batch.star_mask is None else batch.star_mask.clone()
        sky = self._sky(batch, mean, std)
        for f in sorted(set(factors.tolist()) - {1}):
            idx = torch.nonzero(factors == f).flatten().to(data.device)
            small, small_bad, small_star = self._reduce(batch, idx, f, mean, std, lum)
            hh, ww = small.shape[-2:]
            top, left = (h - hh) // 2, (w - ww) // 2
            frame = randn_like(data[:len(idx)], generator).mul_(sky[1]).add_(sky[0])
            frame[..., top:top + hh, left:left + ww] = small
            frame_bad = torch.ones((len(idx), 1, h, w), dtype=torch.bool, device=data.device)
            frame_bad[..., top:top + hh, left:left + ww] = small_bad
            out_data.index_copy_(0, idx, frame)
            out_mask.index_copy_(0, idx, frame_bad)
            if out_star is not None:
                star = torch.zeros((len(idx), 1, h, w), dtype=torch.bool, device=data.device)
                star[..., top:top + hh, left:left + ww] = small_star
                out_star.index_copy_(0, idx, star)
        return batch.replace(data=out_data, mask=out_mask, star_mask=out_star)

    def _sky(self, batch, mean, std):
        """Mean and spread of the sky-like fill, in the images' (standardised) units."""
        pca = self.preprocessor
        kept = slice(0 if pca.luminosity_channel else 1, None)
        as_t = {"device": batch.device, "dtype": batch.data.dtype}
        sky_mean = torch.as_tensor(pca.sky_mean_[kept], **as_t).view(1, -1, 1, 1)
        sky_std = torch.as_tensor(pca.sky_std_[kept], **as_t).view(1, -1, 1, 1)
        return (sky_mean - mean) / std, sky_std / std

    @staticmethod
    def _reduce(batch, idx, f, mean, std, lum):
        """Block-reduce the images ``idx`` by ``f``: (data, bad, star mask) of the blocks."""
        data = batch.data.index_select(0, idx)
        good = ~batch.mask.index_select(0, idx).any(dim=1, keepdim=True)
        h, w = data.shape[-2:]
        padding = (((-h) % f) // 2, ((-w) % f) // 2)

        def block_sum(t):
            return F.avg_pool2d(t, f, padding=padding, ceil_mode=True, divisor_override=1)

        values = data * std + mean
        if lum:
            log_l = values[:, :1]
            # luminosities relative to each image's brightest good spaxel: no overflow
            peak = torch.where(good, log_l, torch.full_like(log_l, -torch.inf)).amax(
                dim=(2, 3), keepdim=True).nan_to_num(neginf=0.0)
            weight = torch.pow(10.0, (log_l - peak).clamp(min=-30.0)) * good
        else:
            weight = good.to(data.dtype)
        total = block_sum(weight)
        filled = total > 0
        coeffs = values[:, 1:] if lum else values
        reduced = block_sum(weight * coeffs) / total.clamp(min=torch.finfo(data.dtype).tiny)
        if lum:
            log_sum = torch.log10(total.clamp(min=torch.finfo(data.dtype).tiny)) + peak
            reduced = torch.cat([log_sum, reduced], dim=1)
        small = (reduced - mean) / std
        # a block with no good spaxel keeps the mean of its (sky-like) values
        empty = F.avg_pool2d(data, f, padding=padding, ceil_mode=True, count_include_pad=False)
        small = torch.where(filled, small, empty)
        star = None
        if batch.star_mask is not None:
            star = F.max_pool2d(batch.star_mask.index_select(0, idx).to(data.dtype), f,
                                padding=padding, ceil_mode=True).bool()
        return small, ~filled, star
