"""How well are resolved property maps recovered? The PICASSSO evaluation.

Following Buck & Wolf (2021, arXiv:2111.01154), an ellipse is fitted to each
galaxy's true stellar-mass map from its image moments (photutils), the
half-mass radius is measured along it, and every property is integrated within
``2`` half-mass radii over the pixels where the truth is non-zero. Per galaxy,
``delta = log10(integrated truth) - log10(integrated prediction)``; the bias
``mu`` is the mean of delta over galaxies and the scatter ``sigma`` its standard
deviation, both in dex. The per-pixel scatter of ``log10(truth / prediction)``
inside the same apertures is reported too.

Extensive maps (surface densities of stellar mass, gas mass and SFR) are summed
within the aperture; intensive ones (ages, metallicities) are averaged with the
true stellar-mass (gas-mass for gas metallicity) map as weights, in linear
units, then logged. The same true weights are used for truth and prediction,
so the comparison isolates the property's own error.
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, ValidationError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import _check_fitted, is_log_unit

__all__ = ["PICASSSO_REFERENCE", "MapMetrics", "fit_ellipses", "stack_maps"]

#: Buck & Wolf (2021) ugriz, 256 px: map name -> (label, sigma dex, mu dex).
PICASSSO_REFERENCE = {
    "stellar_mass": ("stellar mass", 0.090, 0.103),
    "gas_mass": ("gas mass", 0.128, 0.069),
    "metallicity": ("stellar metallicity", 0.143, 0.158),
    "gas_metallicity": ("gas metallicity", 0.195, 0.100),
    "age_mw": ("stellar age", 0.086, 0.028),
    "sfr": ("SFR", 0.220, 0.082),
}

#: How each map is integrated within the aperture: "sum", "mean" (unweighted),
#: or "mean:<map>" (weighted by that true map). Unlisted maps: mean weighted by
#: the stellar-mass map.
DEFAULT_AGGREGATION = {
    "stellar_mass": "sum",
    "gas_mass": "sum",
    "hi_mass": "sum",
    "sfr": "sum",
    "metallicity": "mean:stellar_mass",
    "age_mw": "mean:stellar_mass",
    "age_lw": "mean:stellar_mass",
    "gas_metallicity": "mean:gas_mass",
    "ew_ha": "mean",
    "av": "mean",
}


def _as_array(value):
    """Return ``(data float64 with NaN at masked pixels, unit or None)``."""
    unit = getattr(value, "unit", None)
    mask = getattr(value, "mask", None)
    data = getattr(value, "data", value) if hasattr(value, "wcs") else value
    data = np.array(getattr(data, "value", data), dtype=np.float64)
    if mask is not None and np.shape(mask) == data.shape:
        data[np.asarray(mask, bool)] = np.nan
    return data, (u.Unit(unit) if unit is not None else None)


def stack_maps(maps):
    """Stack per-galaxy maps into ``(n_galaxies, ny, nx)`` arrays per property.

    Parameters
    ----------
    maps : mapping or sequence
        Either a mapping name -> ``(n, ny, nx)`` array/`~astropy.units.Quantity`,
        or a sequence (one item per galaxy) of mappings name -> 2-D
        `~astropy.nddata.NDData` / Quantity / array (e.g. the output of
        ``CNNRegressor.predict_maps`` or ``record.maps``), or of objects with a
        ``maps`` attribute (`~astro_cl.data.record.GalaxyRecord`).

    Returns
    -------
    stacked : dict of str to (`numpy.ndarray`, `~astropy.units.UnitBase` or None)
        Masked pixels are NaN.
    """
    if hasattr(maps, "items"):
        out = {}
        for name, value in maps.items():
            data, unit = _as_array(value)
            if data.ndim == 2:
                data = data[None]
            if data.ndim != 3:
                msg = f"maps[{name!r}]: expected (n_galaxies, ny, nx), got shape {data.shape}"
                raise ValidationError(msg)
            out[name] = (data, unit)
        return out
    items = [getattr(m, "maps", m) for m in maps]
    if not items:
        msg = "maps: empty sequence"
        raise ValidationError(msg)
    names = [n for n in items[0] if all(n in m for m in items)]
    out = {}
    for name in names:
        arrays = [_as_array(m[name]) for m in items]
        shapes = {a.shape for a, _ in arrays}
        if len(shapes) != 1:
            msg = f"maps[{name!r}]: galaxies have different shapes {sorted(shapes)}"
            raise ValidationError(msg)
        out[name] = (np.stack([a for a, _ in arrays]), arrays[0][1])
    return out


def fit_ellipses(mass_maps, *, progress=False):
    """Fit an ellipse to each true stellar-mass map and measure its half-mass radius.

    The ellipse (centroid, axis ratio, orientation) comes from the image
    moments of the pixels with positive mass, computed by
    `photutils.segmentation.SourceCatalog` for all galaxies at once (the maps
    are tiled side by side, one segment per galaxy). The half-mass radius is
    the semi-major axis of the concentric ellipse that contains half the mass,
    from the cumulative mass in elliptical radius (vectorised over galaxies).

    Parameters
    ----------
    mass_maps : `numpy.ndarray`
        ``(n, ny, nx)`` true stellar-mass maps (NaN or <= 0 = empty).
    progress : bool, optional
        Unused (kept for symmetry with the other long steps); the fit is vectorised.

    Returns
    -------
    ellipses : `~astropy.table.QTable`
        ``x_centroid``, ``y_centroid`` (pix), ``axis_ratio`` (b/a),
        ``orientation`` (deg, counter-clockwise from +x), ``r_half`` (pix,
        semi-major axis); NaN for galaxies without positive pixels.
    radius : `numpy.ndarray`
        ``(n, ny, nx)`` elliptical radius (semi-major-axis units, pix) of every pixel.
    """
    from photutils.segmentation import SegmentationImage, SourceCatalog

    del progress
    mass = np.asarray(mass_maps, dtype=np.float64)
    n, ny, nx = mass.shape
    good = np.isfinite(mass) & (mass > 0)
    seg = np.where(good, np.arange(1, n + 1)[:, None, None], 0)
    tiled = np.where(good, mass, 0.0).transpose(1, 0, 2).reshape(ny, n * nx)
    tiled_seg = seg.transpose(1, 0, 2).reshape(ny, n * nx)
    xc = np.full(n, np.nan)
    yc, q, theta = xc.copy(), xc.copy(), xc.copy()
    has = good.any(axis=(1, 2))
    if has.any():
        cat = SourceCatalog(tiled, SegmentationImage(tiled_seg))
        idx = np.asarray(cat.labels) - 1
        xc[idx] = np.asarray(cat.x_centroid) - idx * nx
        yc[idx] = np.asarray(cat.y_centroid)
        a = np.asarray(u.Quantity(cat.semimajor_axis).value)
        b = np.asarray(u.Quantity(cat.semiminor_axis).value)
        with np.errstate(invalid="ignore", divide="ignore"):
            q[idx] = np.where(a > 0, b / a, 1.0)
        theta[idx] = np.asarray(u.Quantity(cat.orientation, u.deg).value)
    q = np.clip(np.nan_to_num(q, nan=1.0), 0.05, 1.0)
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    dx = xx[None] - xc[:, None, None]
    dy = yy[None] - yc[:, None, None]
    t = np.deg2rad(theta)[:, None, None]
    major = dx * np.cos(t) + dy * np.sin(t)
    minor = -dx * np.sin(t) + dy * np.cos(t)
    radius = np.sqrt(major**2 + (minor / q[:, None, None]) ** 2)
    # half-mass radius: sort pixels by radius, cumulative mass crosses half the total
    flat_r = radius.reshape(n, -1)
    flat_m = np.where(good, mass, 0.0).reshape(n, -1)
    order = np.argsort(np.nan_to_num(flat_r, nan=np.inf), axis=1)
    r_sorted = np.take_along_axis(flat_r, order, axis=1)
    cum = np.cumsum(np.take_along_axis(flat_m, order, axis=1), axis=1)
    total = cum[:, -1:]
    half = np.argmax(cum >= 0.5 * total, axis=1)
    r_half = np.where(has, r_sorted[np.arange(n), half], np.nan)
    ellipses = QTable()
    ellipses["x_centroid"] = xc * u.pix
    ellipses["y_centroid"] = yc * u.pix
    ellipses["axis_ratio"] = np.where(has, q, np.nan)
    ellipses["orientation"] = theta * u.deg
    ellipses["r_half"] = r_half * u.pix
    return ellipses, radius


class MapMetrics(DownstreamTask):
    """Bias and scatter (dex) of property maps within 2 half-mass radii, PICASSSO-style.

    For this task `fit` takes the predicted maps in place of embeddings and the
    true maps in place of a catalogue.

    Parameters
    ----------
    properties : list of str, optional
        Maps to evaluate (default: every map present in both).
    mass_map : str, optional
        The true map the ellipse and half-mass radius are measured on.
    n_half_radii : float, optional
        Aperture semi-major axis in half-mass radii.
    aggregation : dict, optional
        Overrides of `DEFAULT_AGGREGATION` (``"sum"``, ``"mean"``,
        ``"mean:<weight map>"``).
    log_maps : sequence of str, optional
        Maps whose values are already log10 (e.g. metallicity in dex,
        12 + log O/H); maps with a ``dex`` unit are detected automatically.

    Attributes
    ----------
    ellipses_ : `~astropy.table.QTable`
        Per-galaxy ellipse and half-mass radius (see `fit_ellipses`).
    delta_ : dict of str to `numpy.ndarray`
        Per-galaxy ``log10(true) - log10(pred)`` of the integrated quantity (dex).
    pixel_delta_ : dict of str to `numpy.ndarray`
        Per-pixel ``log10(true / pred)`` inside the apertures (dex), pooled.
    results_ : `~astropy.table.QTable`
        See `evaluate`.
    """

    name = "map-metrics"
    description = "PICASSSO map metrics: bias and scatter (dex) within 2 half-mass radii."

    def __init__(self, *, properties=None, mass_map="stellar_mass", n_half_radii=2.0,
                 aggregation=None, log_maps=("metallicity", "gas_metallicity")):
        self.properties = properties
        self.mass_map = mass_map
        self.n_half_radii = n_half_radii
        self.aggregation = aggregation
        self.log_maps = log_maps

    def fit(self, predicted, truth=None):
        """Measure the apertures on the true mass maps and compare every property.

        Parameters
        ----------
        predicted : mapping or sequence
            Predicted maps (see `stack_maps` for the accepted layouts).
        truth : mapping or sequence
            True maps, same galaxies in the same order; must contain ``mass_map``.

        Returns
        -------
        self : `MapMetrics`
        """
        if truth is None:
            msg = "map-metrics: fit(predicted, truth) needs the true maps"
            raise ValidationError(msg)
        pred = stack_maps(predicted)
        true = stack_maps(truth)
        if self.mass_map not in true:
            msg = f"map-metrics: true maps lack {self.mass_map!r}; have {sorted(true)}"
            raise ValidationError(msg)
        names = (list(self.properties) if self.properties is not None
                 else [n for n in true if n in pred])
        missing = [n for n in names if n not in pred or n not in true]
        if missing:
            msg = (f"map-metrics: maps {missing} are not in both the prediction "
                   f"({sorted(pred)}) and the truth ({sorted(true)})")
            raise ValidationError(msg)
        mass = true[self.mass_map][0]
        n_gal = mass.shape[0]
        for name in names:
            for label, stack in (("predicted", pred), ("true", true)):
                if stack[name][0].shape != mass.shape:
                    msg = (f"map-metrics: {label} map {name!r} has shape {stack[name][0].shape}, "
                           f"the true {self.mass_map!r} maps {mass.shape}")
                    raise ValidationError(msg)
        ellipses, radius = fit_ellipses(mass)
        r_half = ellipses["r_half"].value
        aperture = (radius <= self.n_half_radii * r_half[:, None, None]) & (mass > 0)
        aggregation = dict(DEFAULT_AGGREGATION)
        aggregation.update(self.aggregation or {})
        rows, deltas, pixel_deltas = [], {}, {}
        for name in names:
            t, t_unit = true[name]
            p, p_unit = pred[name]
            is_log = name in self.log_maps or is_log_unit(t_unit)
            if (not is_log and t_unit is not None and p_unit is not None and p_unit != t_unit
                    and p_unit.is_equivalent(t_unit)):
                p = (p * p_unit).to_value(t_unit)
            lin_t = 10.0**t if is_log else t
            lin_p = 10.0**p if is_log else p
            valid = aperture & np.isfinite(lin_t) & np.isfinite(lin_p)
            if not is_log:
                valid &= lin_t > 0
            how = aggregation.get(name, f"mean:{self.mass_map}")
            if how == "sum":
                i_t = np.where(valid, lin_t, 0.0).sum(axis=(1, 2))
                i_p = np.where(valid, lin_p, 0.0).sum(axis=(1, 2))
            elif how.startswith("mean"):
                _, _, wname = how.partition(":")
                if wname and wname not in true:
                    wname = self.mass_map
                w = true[wname][0] if wname else np.ones_like(lin_t)
                w = np.where(valid & np.isfinite(w) & (w > 0), w, 0.0)
                wsum = w.sum(axis=(1, 2))
                with np.errstate(invalid="ignore", divide="ignore"):
                    i_t = (w * np.nan_to_num(lin_t)).sum(axis=(1, 2)) / wsum
                    i_p = (w * np.nan_to_num(lin_p)).sum(axis=(1, 2)) / wsum
            else:
                msg = (f"map-metrics: aggregation of {name!r} must be 'sum' or 'mean[:map]', "
                       f"got {how!r}")
                raise ValueError(msg)
            with np.errstate(invalid="ignore", divide="ignore"):
                delta = np.log10(i_t) - np.log10(i_p)
                pix = (t - p) if is_log else np.log10(lin_t) - np.log10(lin_p)
            delta[~np.isfinite(delta)] = np.nan
            pix = pix[valid & np.isfinite(pix)]
            n_ok = int(np.isfinite(delta).sum())
            if n_ok < n_gal:
                warnings.warn(f"map-metrics: {name!r}: {n_gal - n_ok} of {n_gal} galaxies have "
                              f"no usable integrated value and are left out", AstroCLWarning)
            good = delta[np.isfinite(delta)]
            label, ref_sigma, ref_mu = PICASSSO_REFERENCE.get(name, (name, np.nan, np.nan))
            rows.append((name, label, how, n_ok,
                         float(np.std(good, ddof=1)) if good.size > 1 else np.nan,
                         float(np.mean(good)) if good.size else np.nan,
                         float(np.std(pix, ddof=1)) if pix.size > 1 else np.nan,
                         float(np.mean(pix)) if pix.size else np.nan,
                         int(pix.size), ref_sigma, ref_mu))
            deltas[name] = delta
            pixel_deltas[name] = pix
        table = QTable(rows=rows, names=("property", "label", "aggregation", "n_galaxies",
                                         "sigma", "mu", "sigma_pixel", "mu_pixel", "n_pixels",
                                         "study_sigma", "study_mu"),
                       dtype=(str, str, str, np.int64, np.float64, np.float64, np.float64,
                              np.float64, np.int64, np.float64, np.float64))
        for col in ("sigma", "mu", "sigma_pixel", "mu_pixel", "study_sigma", "study_mu"):
            table[col].unit = u.dex
        table.meta["task"] = self.name
        table.meta["definition"] = (
            f"delta = log10(true) - log10(pred) of the quantity integrated within "
            f"{self.n_half_radii} half-mass radii (ellipse from the true {self.mass_map} map); "
            "mu = mean, sigma = std over galaxies; *_pixel: per-pixel log10(true/pred)")
        table.meta["reference"] = ("Buck & Wolf 2021 (arXiv:2111.01154), ugriz 256 px: "
                                   "study_sigma, study_mu")
        self.ellipses_ = ellipses
        self.delta_ = deltas
        self.pixel_delta_ = pixel_deltas
        self.results_ = table
        self._fitted_on = (predicted, truth)
        return self

    def evaluate(self, predicted=None, truth=None):
        """Return the PICASSSO-style table.

        Parameters
        ----------
        predicted, truth : mapping or sequence, optional
            Other maps to evaluate (default: what `fit` saw).

        Returns
        -------
        table : `~astropy.table.QTable`
            One row per property: ``property``, ``label`` (the study's name),
            ``aggregation``, ``n_galaxies``, ``sigma`` and ``mu`` (dex, over
            galaxies), ``sigma_pixel`` and ``mu_pixel`` (dex, over pixels),
            ``n_pixels``, and the study's ``study_sigma`` and ``study_mu`` (dex;
            NaN where the study has no number).
        """
        _check_fitted(self, "results_")
        if predicted is None or (predicted is self._fitted_on[0]
                                 and truth is self._fitted_on[1]):
            return self.results_.copy()
        return type(self)(**self.get_params(deep=False)).fit(predicted, truth).results_
