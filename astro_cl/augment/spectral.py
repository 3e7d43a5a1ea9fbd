"""Spectral augmenters for cubes whose channels are wavelengths."""

import numpy as np
import torch

from astro_cl.augment._random import as_range, uniform
from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError

__all__ = ["VelocityShift"]

_C_KMS = 299792.458


class VelocityShift(Augmenter):
    """Doppler-shift every spectrum of a cube by a random line-of-sight velocity.

    For a velocity ``v`` drawn per image, the shifted flux density per unit
    wavelength is ``f'(lam) = f(lam / D) / D`` with ``D = 1 + v / c`` (the
    spectrum is stretched and the integral over wavelength kept), evaluated
    by linear interpolation along the channel axis. Channels that would read
    outside the observed range are zero and masked; a channel is bad if
    either of its two interpolation neighbours is. Uncertainties propagate
    as ``sqrt(w0**2 var0 + w1**2 var1) / D``.

    Parameters
    ----------
    velocity : float or (float, float), optional
        Velocity in km/s (positive = redshift), or a range drawn per image.
    wavelength : sequence of float, optional
        Wavelength of each channel in Angstrom, increasing (default:
        ``batch.meta["wavelength"]``, which cube batches of a survey carry,
        observed- or rest-frame: a Doppler factor scales both alike).

    Notes
    -----
    A cube-space step (``space = "cube"``): it needs the spectral channels,
    so in a training configuration with a ``[preprocess]`` table it goes in
    ``[[augment.cube_steps]]``, before the preprocessor (see
    `~astro_cl.augment.PreprocessedViews`). ``meta["redshift"]`` is left as
    it is: the shift is a perturbation of the view, which a preprocessor
    de-redshifting with the catalogue redshift keeps.
    """

    name = "velocity-shift"
    description = "Doppler shift of cube spectra by a random velocity (linear interpolation)."
    conserves_flux = False
    space = "cube"

    def __init__(self, *, velocity=(-300.0, 300.0), wavelength=None):
        self.velocity = velocity
        self.wavelength = wavelength

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        low, high = as_range(self.velocity, "velocity", "VelocityShift")
        wave = self.wavelength if self.wavelength is not None else batch.wavelength
        b, c, h, w = batch.data.shape
        if wave is None:
            msg = (f"VelocityShift: the batch ({c} channels) has no meta['wavelength'] and no "
                   "wavelength= was given. Cube batches of a survey (kind='cube') carry "
                   "their wavelengths; preprocessed images have none: put velocity-shift in "
                   "[[augment.cube_steps]] to run it before the preprocessor")
            raise ValidationError(msg)
        wave = np.asarray(wave, dtype=float).reshape(-1)
        if wave.size != c or np.any(np.diff(wave) <= 0):
            msg = (f"VelocityShift: wavelength must be increasing with one value per channel "
                   f"({c}), got {wave.size} values")
            raise ValidationError(msg)
        dev = batch.device
        dtype = batch.data.dtype
        lam = torch.as_tensor(wave, dtype=torch.float64, device=dev)
        doppler = 1.0 + uniform(low, high, b, generator, dev, torch.float64) / _C_KMS
        src = lam.view(1, c) / doppler.view(b, 1)  # rest wavelengths read, (B, C)
        i1 = torch.searchsorted(lam, src.contiguous()).clamp(1, c - 1)
        i0 = i1 - 1
        w1 = ((src - lam[i0]) / (lam[i1] - lam[i0]))
        outside = (src < lam[0]) | (src > lam[-1])
        w1 = w1.clamp(0, 1).to(dtype)[..., None, None]
        w0 = 1 - w1

        rows = torch.arange(b, device=dev)[:, None]

        def gather(t, idx):
            # advanced indexing on (galaxy, channel) copies whole images; a
            # torch.gather would need a (B, C, H, W) index tensor, 8x the data
            return t[rows, idx]

        scale = (1.0 / doppler).to(dtype).view(b, 1, 1, 1)
        # the gathered copies are new tensors: update them in place (a cube is
        # tens of MB, and every temporary is a pass over it)
        data = torch.lerp(gather(batch.data, i0), gather(batch.data, i1), w1).mul_(scale)
        mask = batch.mask.expand(b, c, h, w)
        mask = gather(mask, i0).logical_or_(gather(mask, i1)).logical_or_(
            outside[..., None, None])
        out = {"data": data.masked_fill_(mask, 0), "mask": mask}
        if batch.uncertainty is not None:
            var0 = gather(batch.uncertainty, i0).square_().mul_(w0.square())
            var1 = gather(batch.uncertainty, i1).square_().mul_(w1.square())
            out["uncertainty"] = var0.add_(var1).sqrt_().mul_(scale)
        return batch.replace(**out)
