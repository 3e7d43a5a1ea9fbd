"""Random brightness and colour changes: multiplicative gains, symmetric in log.

`ColourJitter` multiplies every image by an overall gain and every channel by
a relative gain, both drawn per galaxy and symmetric around 1 in the
logarithm (a galaxy is as likely to be made 0.1 dex brighter as 0.1 dex
fainter). It is the photometric counterpart of the geometric augmentations in
self-supervised training: a contrastive network can tell galaxies apart by
their exact integrated brightness and colour alone, without learning their
shape; small random gains take that shortcut away while keeping the galaxy's
colour class. Unlike `~astro_cl.augment.photometric.Reddening` or
`~astro_cl.augment.photometric.SurfaceBrightnessDimming` it is not a
physical process (both of those only ever dim and redden) but a
calibration-like perturbation in both directions.
"""

import math

import torch

from astro_cl.augment.base import Augmenter
from astro_cl.exceptions import ValidationError

__all__ = ["ColourJitter"]

_DISTRIBUTIONS = ("uniform", "normal")


class ColourJitter(Augmenter):
    """Multiply each image and each of its channels by random gains, log-symmetric around 1.

    For galaxy ``b`` and channel ``c`` the data (and the uncertainty, so the
    signal-to-noise ratio is unchanged) are multiplied by
    ``10**(s_b + t_bc - mean_c(t_bc))``: ``s_b`` is the overall gain in dex,
    ``t_bc`` the per-channel gains in dex, centred over the channels so that
    ``colour`` changes colours only (the geometric mean of the channel gains
    is 1) and ``brightness`` changes the overall level only. With
    ``distribution="uniform"`` the log gains are drawn uniformly in
    ``[-brightness, brightness]`` and ``[-colour, colour]``; with
    ``"normal"`` these are the standard deviations of Gaussian log gains.
    Either way every gain and its reciprocal are equally likely. The mask is
    unchanged.

    With the uniform distribution a colour (the ratio of two channels)
    changes by at most ``2 * colour`` dex, and a channel by at most
    ``brightness + 2 * colour * (C - 1) / C`` dex.

    Parameters
    ----------
    brightness : float, optional
        Half-range (uniform) or standard deviation (normal) of the overall
        log10 gain, in dex (0.1 dex = 0.25 mag).
    colour : float, optional
        Half-range (uniform) or standard deviation (normal) of the
        per-channel log10 gains before centring, in dex.
    distribution : {"uniform", "normal"}, optional
        Distribution of the log gains.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_cl.augment.colour import ColourJitter
    >>> from astro_cl.data.batch import TensorBatch
    >>> batch = TensorBatch.from_arrays(np.ones((2, 3, 4, 4), np.float32))
    >>> out = ColourJitter(brightness=0.1, colour=0.05)(batch, seed=0)
    >>> gains = out.data[:, :, 0, 0].numpy()
    >>> bool(np.all(np.abs(np.log10(gains)) <= 0.1 + 2 * 0.05 * 2 / 3 + 1e-6))
    True
    """

    name = "colour-jitter"
    description = "Random overall and per-channel gains, symmetric in log (brightness/colour)."
    conserves_flux = False

    def __init__(self, *, brightness=0.1, colour=0.05, distribution="uniform"):
        self.brightness = brightness
        self.colour = colour
        self.distribution = distribution

    def _validated(self):
        values = {}
        for key in ("brightness", "colour"):
            value = getattr(self, key)
            try:
                value = float(value)
            except (TypeError, ValueError):
                msg = f"ColourJitter.{key}: expected a number of dex, got {value!r}"
                raise ValidationError(msg) from None
            if not math.isfinite(value) or value < 0:
                msg = f"ColourJitter.{key}: expected a finite number of dex >= 0, got {value!r}"
                raise ValidationError(msg)
            values[key] = value
        if self.distribution not in _DISTRIBUTIONS:
            msg = (f"ColourJitter.distribution: expected one of {_DISTRIBUTIONS}, "
                   f"got {self.distribution!r}")
            raise ValidationError(msg)
        return values["brightness"], values["colour"]

    def _draw(self, shape, scale, generator):
        """Draw log10 gains of ``shape`` in float64 on the generator's device."""
        if self.distribution == "uniform":
            u = torch.rand(shape, generator=generator, device=generator.device,
                           dtype=torch.float64)
            return scale * (2.0 * u - 1.0)
        return scale * torch.randn(shape, generator=generator, device=generator.device,
                                   dtype=torch.float64)

    def log_gains(self, n_images, n_channels, generator):
        """Draw the log10 gains of ``n_images`` images with ``n_channels`` channels.

        The random numbers are drawn in the same order as `transform` draws
        them, so the same generator state gives the gains `transform` applies.

        Parameters
        ----------
        n_images, n_channels : int
        generator : `torch.Generator`

        Returns
        -------
        log_gain : `torch.Tensor`
            ``(n_images, n_channels)`` float64 log10 gains, on the generator's device.
        """
        brightness, colour = self._validated()
        overall = self._draw((int(n_images), 1), brightness, generator)
        per_channel = self._draw((int(n_images), int(n_channels)), colour, generator)
        return overall + per_channel - per_channel.mean(dim=1, keepdim=True)

    def transform(self, batch, generator):  # noqa: D102 - see Augmenter
        b, c = batch.data.shape[:2]
        log_gain = self.log_gains(b, c, generator)
        gain = torch.pow(10.0, log_gain).to(device=batch.device, dtype=batch.data.dtype)
        gain = gain[..., None, None]
        return batch.replace(data=batch.data * gain,
                             uncertainty=None if batch.uncertainty is None
                             else batch.uncertainty * gain)
