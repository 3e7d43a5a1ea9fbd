"""Photometric augmenters: blur, noise, PSF and depth degradation, reddening, dimming.

These change pixel values but not positions. Uncertainties are propagated:
convolutions propagate variances through the squared kernel, added noise is
added in quadrature, multiplicative factors scale the uncertainty.

The physical augmenters follow the survey-emulation idea of Stein et al.
(2021, "Self-supervised representation learning from Sloan Digital Sky Survey
images"): degrade an observation only by the *difference* between its own PSF
or depth and a target one, so that the augmented view is a plausible
observation of the same galaxy.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from astro_cl.augment._inplace import chain_owned
from astro_cl.augment._random import (
    as_range,
    chosen,
    multiplicative_noise,
    randint,
    randn_like,
    uniform,
)
from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError
from astro_cl.utils.tensors import fill_pixels

__all__ = [
    "SDSS_EXTINCTION",
    "GaussianBlur",
    "MultiplicativeNoise",
    "NoiseToDepth",
    "PSFDegradation",
    "Reddening",
    "SurfaceBrightnessDimming",
    "ccm89_extinction",
]

#: A_band / E(B-V) for the SDSS bands, R_V = 3.1 (Schlafly & Finkbeiner 2011, table 6).
SDSS_EXTINCTION = {"u": 4.239, "g": 3.303, "r": 2.285, "i": 1.698, "z": 1.263}

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def ccm89_extinction(wavelength, r_v=3.1):
    """Return A_lambda / E(B-V) of the Cardelli, Clayton & Mathis (1989) law.

    Parameters
    ----------
    wavelength : array-like
        Wavelengths in Angstrom, 1000 A - 3.3 um (infrared, optical/near-IR
        and ultraviolet branches of the law).
    r_v : float, optional
        Total-to-selective extinction ratio.

    Returns
    -------
    coefficient : `numpy.ndarray`
        ``A_lambda / E(B-V) = R_V * (a(x) + b(x) / R_V)``.
    """
    x = 1e4 / np.asarray(wavelength, dtype=float)  # inverse micron
    if np.any((x < 0.3) | (x > 8.0)):
        msg = "ccm89_extinction: wavelengths must lie in 1250 A - 3.3 um"
        raise ValidationError(msg)
    a = np.empty_like(x)
    b = np.empty_like(x)
    ir = x < 1.1
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x < 3.3)
    y = x[opt] - 1.82
    a[opt] = np.polyval([0.32999, -0.77530, 0.01979, 0.72085, -0.02427, -0.50447,
                         0.17699, 1.0], y)
    b[opt] = np.polyval([-2.09002, 5.30260, -0.62251, -5.38434, 1.07233, 2.28305,
                         1.41338, 0.0], y)
    uv = x >= 3.3
    xu = x[uv]
    fa = np.where(xu >= 5.9, -0.04473 * (xu - 5.9) ** 2 - 0.009779 * (xu - 5.9) ** 3, 0.0)
    fb = np.where(xu >= 5.9, 0.2130 * (xu - 5.9) ** 2 + 0.1207 * (xu - 5.9) ** 3, 0.0)
    a[uv] = 1.752 - 0.316 * xu - 0.104 / ((xu - 4.67) ** 2 + 0.341) + fa
    b[uv] = -3.090 + 1.825 * xu + 1.206 / ((xu - 4.62) ** 2 + 0.263) + fb
    return r_v * (a + b / r_v)


def _gaussian_kernels(sigma, truncate, dtype):
    """Return per-sample normalised 1-D Gaussian kernels (B, K) and the radius."""
    radius = max(math.ceil(truncate * float(sigma.max())), 1)
    x = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float64)
    s = sigma.to(torch.float64).view(-1, 1)
    k = torch.exp(-0.5 * (x.view(1, -1) / s.clamp_min(1e-6)) ** 2)
    delta = (x == 0).to(torch.float64).expand_as(k)
    k = torch.where(s < 1e-3, delta, k)
    k = k / k.sum(dim=1, keepdim=True)
    return k.to(dtype), radius


def _separable_conv(x, kernels, radius):
    """Convolve each sample of ``x`` (B, C, H, W) with its kernel (B, K) along y and x.

    Zero padding. Samples sharing a kernel are convolved together as a
    depthwise convolution (one group per channel) on channels-last memory,
    the fast layout of the CPU depthwise kernels; the result is
    channels-last. Single-channel inputs (masks), and contiguous inputs of
    two or three channels, are convolved as one image whose channels are the
    batch's image planes (a one-channel convolution per image is several
    times slower, and so is the channels-last depthwise pass over so few
    channels); the result is then contiguous.
    """
    b, c, h, w = x.shape
    kernels = kernels.to(x.dtype)
    if c == 1 or (c < 4 and x.is_contiguous()):
        # the planes as the channels of one image: a depthwise pass with each plane's kernel
        n = b * c
        planes = x.reshape(1, n, h, w)
        kernels = kernels.repeat_interleave(c, dim=0) if c > 1 else kernels
        planes = F.conv2d(planes, kernels.view(n, 1, -1, 1), padding=(radius, 0), groups=n)
        planes = F.conv2d(planes, kernels.view(n, 1, 1, -1), padding=(0, radius), groups=n)
        return planes.view(b, c, h, w)
    x = x.contiguous(memory_format=torch.channels_last)
    unique, inverse = torch.unique(kernels, dim=0, return_inverse=True)
    out = None
    for g in range(len(unique)):
        k = unique[g]
        # channels-last weights too: with other strides oneDNN reorders the
        # images to and from its own layout around each pass (benchmarks/README.md)
        wy = k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(memory_format=torch.channels_last)
        wx = k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(memory_format=torch.channels_last)
        if len(unique) == 1:
            part = x
        else:
            idx = torch.nonzero(inverse == g).flatten()
            part = x[idx]
        part = F.conv2d(part, wy, padding=(radius, 0), groups=c)
        part = F.conv2d(part, wx, padding=(0, radius), groups=c)
        if len(unique) == 1:
            return part
        if out is None:
            out = torch.empty_like(x)
        out[idx] = part
    return out


def _blur(batch, sigma, truncate=4.0, min_good=0.5):
    """Normalised Gaussian convolution of a batch with per-sample ``sigma`` in pixels.

    Bad pixels get zero weight and the kernel is renormalised over the good
    ones (normalised convolution), so masked zeros (and the zeros beyond the
    frame edges) do not darken their neighbours. A pixel is bad afterwards
    if it was bad, or if less than ``min_good`` of its kernel weight came
    from good pixels. Variances are convolved with the squared kernel (exact
    for independent pixel noise). The weights are computed once on the mask
    (one channel when the mask is per pixel), not per data channel.
    """
    data = batch.data
    if float(sigma.max()) < 1e-3:
        return batch
    kernels, radius = _gaussian_kernels(sigma, truncate, data.dtype)
    mask = batch.mask
    good = (~mask).to(data.dtype)
    den = _separable_conv(good, kernels, radius)
    new_mask = mask | (den < min_good)
    # 1 / den on good pixels, 0 on bad ones: one multiplication normalises and masks
    inv = den.clamp_min_(1e-12).reciprocal_()
    has_bad = bool(mask.any())
    if has_bad:  # zero the bad pixels: in place when the data is a Compose intermediate
        data = fill_pixels(data, mask, inplace=chain_owned(data))
    num = _separable_conv(data, kernels, radius)
    # a copy: the uncertainty below takes the unmasked weights
    out = {"data": num.mul_(fill_pixels(inv, new_mask)), "mask": new_mask}
    if batch.uncertainty is not None:
        var = batch.uncertainty.square()
        if has_bad:
            var = fill_pixels(var, mask, inplace=True)
        var = _separable_conv(var, kernels.square(), radius)
        out["uncertainty"] = var.clamp_min_(0).sqrt_().mul_(inv)
    return batch.replace(**out)


class GaussianBlur(Augmenter):
    """Convolve each image with a circular Gaussian.

    The eCALIFA study blurs one view with ``sigma = 1`` px. The convolution is
    normalised over good pixels (masked pixels do not leak zeros into their
    neighbours); the kernel sums to one, so flux is conserved away from the
    edges and masked regions.

    Parameters
    ----------
    sigma : float or (float, float), optional
        Gaussian standard deviation in pixels, or a range drawn per image.
    truncate : float, optional
        Kernel radius in units of sigma.
    """

    name = "gaussian-blur"
    description = "Gaussian blur (sigma in pixels), normalised over good pixels."
    conserves_flux = True

    def __init__(self, *, sigma=1.0, truncate=4.0):
        self.sigma = sigma
        self.truncate = truncate

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        low, high = as_range(self.sigma, "sigma", "GaussianBlur", minimum=0.0)
        sigma = uniform(low, high, len(batch), generator, batch.device, torch.float64)
        return _blur(batch, sigma, float(self.truncate))


class MultiplicativeNoise(Augmenter):
    """Multiply each pixel by ``1 + N(0, 1) / SN`` with an integer S/N drawn per image.

    The eCALIFA study's noise augmentation: every pixel of the view then has
    signal-to-noise ratio ``SN`` with respect to the added noise. The added
    noise (``|x| / SN``) is added in quadrature to the uncertainty.

    Parameters
    ----------
    sn : int or (int, int), optional
        Signal-to-noise ratio, or an inclusive range of integers drawn per image.
    """

    name = "multiplicative-noise"
    description = "cube * (1 + N(0,1)/SN) with SN a random integer (default 1..10)."
    conserves_flux = False

    def __init__(self, *, sn=(1, 10)):
        self.sn = sn

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        sn = self.draw_sn(len(batch), generator, batch.device)
        data, uncertainty = multiplicative_noise(batch.data, batch.mask, batch.uncertainty,
                                                 sn, generator)
        out = {"data": data}
        if uncertainty is not None:
            out["uncertainty"] = uncertainty
        return batch.replace(**out)

    def draw_sn(self, n, generator, device):
        """Draw the signal-to-noise ratios of ``n`` images.

        Parameters
        ----------
        n : int
        generator : `torch.Generator`
        device : `torch.device`

        Returns
        -------
        sn : `torch.Tensor`
            ``(n,)`` integer S/N values, float32, on ``device``.
        """
        low, high = as_range(self.sn, "sn", "MultiplicativeNoise", integer=True, minimum=1)
        return randint(low, high, n, generator, device).to(torch.float32)

    def fusion(self, steps, shape):
        """Fuse with a directly following `~astro_cl.augment.rebin.Rebin` step.

        See `~astro_cl.augment.base.Augmenter.fusion`. The two steps are
        applied as one, each with its own probability: where a galaxy gets
        both, its noise is drawn on the rebinned blocks. Over the good pixels
        of a block, the sum of ``x * (1 + n / SN)`` with independent standard
        normal ``n`` is ``sum(x) + z * sqrt(sum(x**2)) / SN`` with one
        standard normal ``z``, exactly in distribution; so the views are those
        of the two steps in turn, drawn from ``1 / f**2`` of the random
        numbers (`~astro_cl.augment.rebin.rebin_images`). Subclasses that
        change what either step does (override ``transform``) are not fused.

        Parameters
        ----------
        steps : list of (`~astro_cl.augment.base.Augmenter`, float)
            This step and the rest of the chain.
        shape : tuple of int
            ``(B, C, H, W)`` of the batch reaching this step.

        Returns
        -------
        fusion : (int, callable) or None
            ``(2, apply)`` before a rebinning step, else None.
        """
        from astro_cl.augment.rebin import Rebin, rebin_images

        if len(steps) < 2 or type(self).transform is not MultiplicativeNoise.transform:
            return None
        (_, p_noise), (rebinning, p_rebin) = steps[0], steps[1]
        if not isinstance(rebinning, Rebin) or type(rebinning).transform is not Rebin.transform:
            return None

        def apply(batch, generator):
            n = len(batch)
            noise_on = chosen(n, p_noise, generator)
            rebin_on = chosen(n, p_rebin, generator)
            sn = self.draw_sn(n, generator, batch.device)
            factors = rebinning.draw_factors(n, generator, batch.device)
            factors = torch.where(rebin_on.to(factors.device), factors, 1)
            noise_sn = torch.where(noise_on.to(sn.device), sn, 0)
            return rebin_images(batch, factors, noise_sn=noise_sn, generator=generator)

        return 2, apply


def _per_sample(value, n, name, owner, device):
    """Broadcast a scalar or length-n sequence to a (n,) float64 tensor."""
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        msg = f"{owner}: {name} has {arr.size} values for a batch of {n}"
        raise ValidationError(msg)
    return torch.as_tensor(arr, dtype=torch.float64, device=device)


class PSFDegradation(Augmenter):
    """Degrade the PSF to a (random) target FWHM by convolving with the difference kernel.

    Assuming Gaussian PSFs, an image with PSF FWHM ``f`` is brought to FWHM
    ``t > f`` by a Gaussian of FWHM ``sqrt(t**2 - f**2)``: only the difference
    is added. Images already worse than the target are left alone. The new
    FWHM is written to ``batch.meta["psf_fwhm"]`` (per image).

    Parameters
    ----------
    target_fwhm : float or (float, float)
        Target FWHM (or a range drawn per image), in pixels, or in arcsec
        if ``pixel_scale`` is given.
    fwhm : float or sequence of float, optional
        Current FWHM (same unit as ``target_fwhm``; one value or one per
        image). Default: ``batch.meta["psf_fwhm"]``, or 0 (a perfectly sharp
        input) if absent.
    pixel_scale : float, optional
        Arcsec per pixel, when the FWHMs are in arcsec.
    truncate : float, optional
        Kernel radius in units of its sigma.
    """

    name = "psf-degradation"
    description = "Convolve with the difference between the current and a target Gaussian PSF."
    conserves_flux = True

    def __init__(self, *, target_fwhm=(1.0, 3.0), fwhm=None, pixel_scale=None, truncate=4.0):
        self.target_fwhm = target_fwhm
        self.fwhm = fwhm
        self.pixel_scale = pixel_scale
        self.truncate = truncate

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        owner = "PSFDegradation"
        low, high = as_range(self.target_fwhm, "target_fwhm", owner, minimum=0.0)
        b = len(batch)
        dev = batch.device
        target = uniform(low, high, b, generator, dev, torch.float64)
        current = self.fwhm if self.fwhm is not None else batch.meta.get("psf_fwhm", 0.0)
        current = _per_sample(current, b, "fwhm", owner, dev)
        scale = 1.0 if self.pixel_scale is None else float(self.pixel_scale)
        if scale <= 0:
            msg = f"{owner}.pixel_scale: expected a positive value, got {self.pixel_scale!r}"
            raise ValidationError(msg)
        diff = torch.sqrt((target.square() - current.square()).clamp_min(0))
        sigma = diff / _FWHM_PER_SIGMA / scale
        out = _blur(batch, sigma, float(self.truncate))
        new_fwhm = torch.maximum(target, current).cpu().numpy().tolist()
        return out.replace(meta={**batch.meta, "psf_fwhm": new_fwhm})


class NoiseToDepth(Augmenter):
    """Add Gaussian noise to reach a target depth, or draw a new noise realisation.

    ``mode="depth"``: the noise is raised to a target per-pixel sigma by adding
    only the missing part, ``sqrt(target**2 - sigma**2)``, where ``sigma`` is
    the current uncertainty (zero if unknown); pixels already noisier are
    left alone. The target is either an absolute ``sigma`` (data units, a
    value or a range drawn per image) or a ``factor`` >= 1 times the current
    uncertainty (a value or a range).

    ``mode="resample"``: add one draw of ``N(0, uncertainty)``, a new noise
    realisation of the same observation; the uncertainty grows by sqrt(2).

    Parameters
    ----------
    sigma : float or (float, float), optional
        Target 1-sigma noise per pixel in data units (``mode="depth"``).
    factor : float or (float, float), optional
        Target noise as a multiple of the current uncertainty (``mode="depth"``).
    mode : {"depth", "resample"}, optional
    """

    name = "noise-to-depth"
    description = "Add only the noise missing to reach a target depth, or resample the noise."
    conserves_flux = False

    def __init__(self, *, sigma=None, factor=None, mode="depth"):
        self.sigma = sigma
        self.factor = factor
        self.mode = mode

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        owner = "NoiseToDepth"
        data = batch.data
        b = len(batch)
        unc = batch.uncertainty
        if self.mode == "resample":
            if unc is None:
                msg = f"{owner}: mode='resample' needs a batch with an uncertainty"
                raise ValidationError(msg)
            add = unc
            new_unc = unc * math.sqrt(2.0)
        elif self.mode == "depth":
            if (self.sigma is None) == (self.factor is None):
                msg = f"{owner}: give exactly one of sigma (data units) or factor (x uncertainty)"
                raise ValidationError(msg)
            current = torch.zeros_like(data) if unc is None else unc
            if self.sigma is not None:
                low, high = as_range(self.sigma, "sigma", owner, minimum=0.0)
                target = uniform(low, high, b, generator, batch.device, data.dtype)
                target = target.view(-1, 1, 1, 1).expand_as(data)
            else:
                if unc is None:
                    msg = f"{owner}: factor needs a batch with an uncertainty; give sigma instead"
                    raise ValidationError(msg)
                low, high = as_range(self.factor, "factor", owner, minimum=1.0)
                factor = uniform(low, high, b, generator, batch.device, data.dtype)
                target = unc * factor.view(-1, 1, 1, 1)
            add = torch.sqrt((target.square() - current.square()).clamp_min(0))
            new_unc = torch.maximum(target, current)
        else:
            msg = f"{owner}.mode: expected 'depth' or 'resample', got {self.mode!r}"
            raise ValidationError(msg)
        noise = randn_like(data, generator).mul_(add).add_(data)
        return batch.replace(data=fill_pixels(noise, batch.mask, inplace=True),
                             uncertainty=new_unc)


class Reddening(Augmenter):
    """Apply a random foreground (Galactic) reddening E(B-V) per image.

    Each channel is multiplied by ``10**(-0.4 * R_c * E(B-V))`` with ``R_c =
    A_c / E(B-V)``: from ``coefficients``, else from the SDSS table
    (`SDSS_EXTINCTION`) when ``batch.meta["bands"]`` names SDSS bands, else from
    the CCM89 law at ``batch.meta["wavelength"]`` (Angstrom) for cubes.

    Parameters
    ----------
    ebv : float or (float, float), optional
        E(B-V) in magnitudes, or a range drawn per image.
    coefficients : sequence of float or dict, optional
        ``A_c / E(B-V)`` per channel, or band name -> coefficient.
    r_v : float, optional
        R_V of the CCM89 law (cubes).
    """

    name = "reddening"
    description = "Galactic foreground reddening per band (SDSS coefficients or CCM89 law)."
    conserves_flux = False

    def __init__(self, *, ebv=(0.0, 0.1), coefficients=None, r_v=3.1):
        self.ebv = ebv
        self.coefficients = coefficients
        self.r_v = r_v

    def _coefficients(self, batch):
        c = batch.data.shape[1]
        bands = batch.meta.get("bands")
        coeff = self.coefficients
        if isinstance(coeff, dict):
            if bands is None:
                msg = "Reddening: coefficients given per band but batch.meta has no 'bands'"
                raise ValidationError(msg)
            missing = [b for b in bands if b not in coeff]
            if missing:
                msg = f"Reddening.coefficients: no value for bands {missing}"
                raise ValidationError(msg)
            values = [coeff[b] for b in bands]
        elif coeff is not None:
            values = list(coeff)
        elif bands is not None and all(b in SDSS_EXTINCTION for b in bands):
            values = [SDSS_EXTINCTION[b] for b in bands]
        elif batch.meta.get("wavelength") is not None:
            values = ccm89_extinction(batch.meta["wavelength"], float(self.r_v))
        else:
            msg = ("Reddening: cannot tell the extinction of each channel; give coefficients, "
                   "or a batch with meta['bands'] (SDSS ugriz) or meta['wavelength'] (Angstrom)")
            raise ValidationError(msg)
        values = np.asarray(values, dtype=float).reshape(-1)
        if values.size != c:
            msg = f"Reddening: {values.size} extinction coefficients for {c} channels"
            raise ValidationError(msg)
        return torch.as_tensor(values, dtype=batch.data.dtype, device=batch.device)

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        low, high = as_range(self.ebv, "ebv", "Reddening", minimum=0.0)
        coeff = self._coefficients(batch)
        ebv = uniform(low, high, len(batch), generator, batch.device, batch.data.dtype)
        factor = torch.pow(10.0, -0.4 * ebv.view(-1, 1) * coeff.view(1, -1))[..., None, None]
        return batch.replace(data=batch.data * factor,
                             uncertainty=None if batch.uncertainty is None
                             else batch.uncertainty * factor)


class SurfaceBrightnessDimming(Augmenter):
    """Dim the surface brightness as if the galaxy were at a higher redshift.

    Surface brightness falls as ``(1 + z)**-4`` (bolometric; use exponent 5
    for f_lambda or 3 for f_nu per unit observed wavelength/frequency without
    a k-correction). Each image, at redshift ``z0`` (``source_redshift`` or
    ``batch.meta["redshift"]``), is multiplied by ``((1 + z0) / (1 + z))**n``
    with a target ``z`` drawn per image (never brightened). With
    ``keep_noise=True`` noise is added so that the per-pixel noise stays the
    input uncertainty, as for the same instrument at the same depth.

    Parameters
    ----------
    redshift : float or (float, float), optional
        Target redshift, or a range drawn per image.
    source_redshift : float or sequence of float, optional
        Redshift of each input image (default ``batch.meta["redshift"]``, else 0).
    exponent : float, optional
        Power of ``(1 + z)``.
    keep_noise : bool, optional
        Restore the noise level after dimming (needs an uncertainty; without
        one the data are only scaled).
    """

    name = "sb-dimming"
    description = "Cosmological surface-brightness dimming (1+z)^-n to a random redshift."
    conserves_flux = False

    def __init__(self, *, redshift=(0.02, 0.1), source_redshift=None, exponent=4.0,
                 keep_noise=True):
        self.redshift = redshift
        self.source_redshift = source_redshift
        self.exponent = exponent
        self.keep_noise = keep_noise

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        owner = "SurfaceBrightnessDimming"
        low, high = as_range(self.redshift, "redshift", owner, minimum=0.0)
        b = len(batch)
        data = batch.data
        z = uniform(low, high, b, generator, batch.device, torch.float64)
        z0 = self.source_redshift if self.source_redshift is not None \
            else batch.meta.get("redshift", 0.0)
        z0 = _per_sample(z0, b, "source_redshift", owner, batch.device)
        f = ((1 + z0) / (1 + z)).clamp(max=1.0).pow(float(self.exponent))
        f = f.to(data.dtype).view(-1, 1, 1, 1)
        new = data * f
        unc = batch.uncertainty
        if unc is not None:
            if self.keep_noise:
                add = unc * torch.sqrt((1 - f.square()).clamp_min(0))
                new = new + randn_like(data, generator) * add
            else:
                unc = unc * f
        return batch.replace(data=fill_pixels(new, batch.mask, inplace=True), uncertainty=unc)
