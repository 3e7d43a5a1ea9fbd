"""Per-band scaling of images (asinh or log), fitted per band."""

import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.preprocess.base import Preprocessor

__all__ = ["ImageScaler"]


class ImageScaler(Preprocessor):
    """Scale each band with an asinh (Lupton et al. 1999) or a log stretch.

    Fitting measures, per band over the good pixels of the training images,
    the background noise ``sigma_b`` (1.4826 x the median absolute deviation
    about the median: robust to the galaxy itself), then the statistics of the
    stretched values used to standardise them.

    * ``method="asinh"``: ``y = asinh(x / (softening * sigma_b))``: linear
      (``x / (softening sigma_b)``) within a few noise levels, logarithmic for
      bright pixels; negative noise is kept.
    * ``method="log"``: ``y = log10(max(x, 0) + floor * sigma_b)``.

    With ``standardize=True`` the stretched values are then shifted by their
    fitted median and divided by their fitted robust scatter (per band). The
    uncertainty is propagated through the derivative of the stretch.

    Parameters
    ----------
    method : {"asinh", "log"}, optional
    softening : float, optional
        Asinh softening in units of the band's noise (Lupton's ``b``).
    floor : float, optional
        Log offset in units of the band's noise (keeps ``log`` finite at 0).
    standardize : bool, optional
        Standardise each band after the stretch.

    Attributes
    ----------
    noise_ : `numpy.ndarray`
        Per-band background noise ``sigma_b`` (data units).
    center_, scale_ : `numpy.ndarray`
        Per-band median and robust scatter of the stretched values.
    """

    name = "image-scaler"
    thread_safe = True
    description = "Per-band asinh or log stretch with a fitted noise scale, then standardised."
    version = 1
    _state_arrays = ("noise_", "center_", "scale_")

    def __init__(self, *, method="asinh", softening=1.0, floor=1.0, standardize=True):
        self.method = method
        self.softening = softening
        self.floor = floor
        self.standardize = standardize

    def _stretch(self, x, noise):
        n = noise.reshape(1, -1, 1, 1)
        if self.method == "asinh":
            return np.arcsinh(x / (self.softening * n))
        if self.method == "log":
            return np.log10(np.clip(x, 0, None) + self.floor * n)
        msg = f"ImageScaler.method: expected 'asinh' or 'log', got {self.method!r}"
        raise ValidationError(msg)

    def _derivative(self, x, noise):
        n = noise.reshape(1, -1, 1, 1)
        if self.method == "asinh":
            s = self.softening * n
            return 1.0 / np.sqrt(s**2 + x**2)
        return np.where(x > 0, 1.0, 0.0) / (np.log(10.0) * (np.clip(x, 0, None) + self.floor * n))

    @staticmethod
    def _arrays(X, mask=None, std=None):
        from astro_cl.preprocess.base import _as_records

        records = _as_records(X)
        if records is not None:
            outs = [rec.as_arrays("images") for rec in records]
            data = np.stack([o[0] for o in outs])
            mask = np.stack([o[1] for o in outs])
            std = None if any(o[2] is None for o in outs) else np.stack([o[2] for o in outs])
            return data, mask, std
        data = np.asarray(X, dtype=np.float32)
        if data.ndim == 3:
            data = data[None]
        if data.ndim != 4:
            msg = f"ImageScaler: expected images of shape (N, C, H, W), got {data.shape}"
            raise ValidationError(msg)
        mask = ~np.isfinite(data) if mask is None else (np.asarray(mask, bool)
                                                          | ~np.isfinite(data))
        return data, np.broadcast_to(mask, data.shape), std

    def fit(self, X, *, mask=None, std=None):
        """Fit the per-band noise and standardisation.

        Parameters
        ----------
        X : survey, records or array-like
            Training images, ``(N, C, H, W)`` for arrays.
        mask : array-like of bool, optional
            Bad pixels of array input.
        std : array-like, optional
            Unused for fitting (accepted for symmetry with `transform`).

        Returns
        -------
        self : `ImageScaler`
        """
        data, mask, _ = self._arrays(X, mask, std)
        vals = np.moveaxis(np.where(mask, np.nan, data), 1, 0).reshape(data.shape[1], -1)
        med = np.nanmedian(vals, axis=1)
        noise = 1.4826 * np.nanmedian(np.abs(vals - med[:, None]), axis=1)
        if not np.all(np.isfinite(noise) & (noise > 0)):
            msg = f"ImageScaler.fit: a band has no usable pixels or zero noise (noise={noise})"
            raise ValidationError(msg)
        self.noise_ = noise.astype(np.float64)
        y = self._stretch(np.where(mask, np.nan, data), self.noise_)
        yv = np.moveaxis(y, 1, 0).reshape(data.shape[1], -1)
        center = np.nanmedian(yv, axis=1)
        scale = 1.4826 * np.nanmedian(np.abs(yv - center[:, None]), axis=1)
        scale = np.where(scale > 0, scale, np.nanstd(yv, axis=1))
        self.center_ = center if self.standardize else np.zeros_like(center)
        self.scale_ = np.where(scale > 0, scale, 1.0) if self.standardize else np.ones_like(scale)
        return self

    def transform(self, X, *, mask=None, std=None):
        """Scale images.

        Parameters
        ----------
        X : survey, records or array-like
        mask : array-like of bool, optional
        std : array-like, optional
            One-sigma uncertainty of array input.

        Returns
        -------
        data : `numpy.ndarray` of float32
        mask : `numpy.ndarray` of bool
        std : `numpy.ndarray` of float32 or None
        """
        self._check_fitted()
        data, mask, std = self._arrays(X, mask, std)
        if data.shape[1] != len(self.noise_):
            msg = f"ImageScaler: fitted on {len(self.noise_)} bands, got {data.shape[1]}"
            raise ValidationError(msg)
        c = self.center_.reshape(1, -1, 1, 1)
        s = self.scale_.reshape(1, -1, 1, 1)
        clean = np.where(mask, 0.0, data)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = (self._stretch(clean, self.noise_) - c) / s
            out_std = None if std is None else \
                np.asarray(std) * self._derivative(clean, self.noise_) / s
        bad = mask | ~np.isfinite(y)
        y = np.where(bad, 0.0, y).astype(np.float32)
        return y, bad, None if out_std is None else out_std.astype(np.float32)

    def transform_record(self, record):  # noqa: D102 - see Preprocessor
        data, mask, std = self.transform([record])
        return data[0], mask[0], None if std is None else std[0]

    def inverse_transform(self, y):
        """Undo the scaling (back to data units).

        Parameters
        ----------
        y : array-like
            ``(N, C, H, W)`` scaled images.

        Returns
        -------
        x : `numpy.ndarray`
        """
        self._check_fitted()
        y = np.asarray(y, dtype=float) * self.scale_.reshape(1, -1, 1, 1) \
            + self.center_.reshape(1, -1, 1, 1)
        n = self.noise_.reshape(1, -1, 1, 1)
        if self.method == "asinh":
            return np.sinh(y) * self.softening * n
        return 10.0**y - self.floor * n
