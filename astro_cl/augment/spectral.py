"""Spectral augmenters for cubes whose channels are wavelengths."""

import numpy as np
import torch

from astro_cl.augment.base import Augmenter
from astro_cl.augment.geometric import _as_range, _uniform
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
        ``batch.meta["wavelength"]``).
    """

    name = "velocity-shift"
    description = "Doppler shift of cube spectra by a random velocity (linear interpolation)."
    conserves_flux = False

    def __init__(self, *, velocity=(-300.0, 300.0), wavelength=None):
        self.velocity = velocity
        self.wavelength = wavelength

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        low, high = _as_range(self.velocity, "velocity", "VelocityShift")
        wave = self.wavelength if self.wavelength is not None else batch.meta.get("wavelength")
        b, c, h, w = batch.data.shape
        if wave is None:
            msg = "VelocityShift: give wavelength= or a batch with meta['wavelength'] (Angstrom)"
            raise ValidationError(msg)
        wave = np.asarray(wave, dtype=float).reshape(-1)
        if wave.size != c or np.any(np.diff(wave) <= 0):
            msg = (f"VelocityShift: wavelength must be increasing with one value per channel "
                   f"({c}), got {wave.size} values")
            raise ValidationError(msg)
        dev = batch.device
        dtype = batch.data.dtype
        lam = torch.as_tensor(wave, dtype=torch.float64, device=dev)
        doppler = 1.0 + _uniform(low, high, b, generator, dev, torch.float64) / _C_KMS
        src = lam.view(1, c) / doppler.view(b, 1)  # rest wavelengths read, (B, C)
        i1 = torch.searchsorted(lam, src.contiguous()).clamp(1, c - 1)
        i0 = i1 - 1
        w1 = ((src - lam[i0]) / (lam[i1] - lam[i0]))
        outside = (src < lam[0]) | (src > lam[-1])
        w1 = w1.clamp(0, 1).to(dtype)[..., None, None]
        w0 = 1 - w1

        def gather(t, idx):
            return torch.gather(t, 1, idx[..., None, None].expand(b, c, h, w))

        scale = (1.0 / doppler).to(dtype).view(b, 1, 1, 1)
        data = (w0 * gather(batch.data, i0) + w1 * gather(batch.data, i1)) * scale
        mask = batch.mask.expand(b, c, h, w)
        mask = gather(mask, i0) | gather(mask, i1) | outside[..., None, None]
        zero = torch.zeros((), dtype=dtype, device=dev)
        out = {"data": torch.where(mask, zero, data), "mask": mask}
        if batch.uncertainty is not None:
            var = batch.uncertainty.square()
            out["uncertainty"] = torch.sqrt(w0.square() * gather(var, i0)
                                            + w1.square() * gather(var, i1)) * scale
        return batch.replace(**out)
