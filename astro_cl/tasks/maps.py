"""How well are resolved property maps recovered? The PICASSSO evaluation.

Following Buck & Wolf (2021, arXiv:2111.01154), an ellipse is fitted to each
galaxy's true stellar-mass map from its image moments (photutils), the
half-mass radius is measured along it, and every quantity is integrated within
``2`` half-mass radii over the pixels where the true stellar mass is positive.
Per galaxy, ``delta = log10(integrated truth) - log10(integrated prediction)``;
the bias ``mu`` is the mean of delta over galaxies and the scatter ``sigma``
its standard deviation, both in dex. The per-pixel scatter of
``log10(truth / prediction)`` inside the same apertures is reported too.

What is integrated, and what it is compared with
------------------------------------------------
* Surface densities (stellar mass, gas mass, HI mass, SFR) are summed, as
  PICASSSO did: these rows carry PICASSSO's numbers (``study_sigma``,
  ``study_mu``).
* PICASSSO's stellar metallicity and age maps are the metal mass ``Z M`` and
  the ``age x M`` of each pixel, summed. The toolkit predicts a metallicity
  (dex) and a mass-weighted age map beside the stellar-mass map, so the same
  quantities are built from them (`DERIVED_MAPS`): ``metal_mass`` =
  sum of ``10**metallicity x stellar_mass`` (in solar metallicity units, a
  factor that cancels in delta) and ``age_mass`` = sum of ``age_mw x
  stellar_mass``, the prediction from the two predicted maps. These rows
  carry PICASSSO's metallicity and age numbers. Their error includes the
  stellar-mass error.
* Intensive maps (ages, metallicities) are also reported as the mean within
  the aperture weighted by the true stellar-mass map (gas-mass map for the gas
  metallicity), the same weights for truth and prediction, which isolates the
  property's own error. PICASSSO defined no such quantity: these rows have no
  study numbers. Neither does the gas metallicity, whose integrated
  definition in PICASSSO is not recorded here.

Skill against a constant prediction
-----------------------------------
Every row also gives ``sigma_constant``: the scatter of a *constant
prediction*, a map holding one value for every pixel of every galaxy, scored
in the same way (same apertures, same true weights). Its scatter does not
depend on the value chosen: a constant scales every galaxy's summed
prediction by the same factor (the pixel count of its aperture times the
constant) and makes every weighted mean equal to it, which shifts delta by
the same amount for all galaxies, so ``sigma_constant`` is the standard
deviation over galaxies of ``log10(truth summed / number of pixels)`` for
sums and of ``log10(truth averaged)`` for means. It is the fair baseline
because it is given exactly what the measurement gives any prediction for
free (the aperture and the populated pixels, from the true mass map; the true
weights) and nothing about the galaxy: what a network does better comes from
the images. ``sigma_ratio = sigma / sigma_constant`` is 0 for a perfect
prediction and about 1 for one without skill; ``sigma_pixel_constant`` is
the same baseline per pixel (the scatter of the true log10 pixel values).
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, ValidationError
from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.catalogue import is_log_unit

__all__ = ["DERIVED_MAPS", "PICASSSO_REFERENCE", "MapMetrics", "MapTask", "fit_ellipses",
           "stack_maps"]

#: Buck & Wolf (2021) ugriz, 256 px: quantity -> (label, sigma dex, mu dex), only
#: for quantities integrated as PICASSSO defined them. Their gas metallicity
#: (sigma 0.195, mu 0.100 dex) is left out: its integrated definition is not recorded.
PICASSSO_REFERENCE = {
    "stellar_mass": ("stellar mass", 0.090, 0.103),
    "gas_mass": ("gas mass", 0.128, 0.069),
    "metal_mass": ("stellar metallicity (metal mass Z M, summed)", 0.143, 0.158),
    "age_mass": ("stellar age (age x M, summed)", 0.086, 0.028),
    "sfr": ("SFR", 0.220, 0.082),
}

#: Quantities built from two maps as PICASSSO integrates them: name -> (factor
#: map, weight map). The sum over the aperture of ``factor x weight`` (the
#: factor linearised when it is in dex); the prediction multiplies the two
#: predicted maps.
DERIVED_MAPS = {
    "metal_mass": ("metallicity", "stellar_mass"),
    "age_mass": ("age_mw", "stellar_mass"),
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

#: Labels of the rows without a study number.
_LABELS = {
    "metallicity": "stellar metallicity, mass-weighted mean",
    "age_mw": "mass-weighted stellar age, mass-weighted mean",
    "age_lw": "light-weighted stellar age, mass-weighted mean",
    "gas_metallicity": "gas metallicity, gas-mass-weighted mean",
    "hi_mass": "HI mass",
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


class MapTask(DownstreamTask):
    """Base class of tasks that compare predicted maps with true maps.

    ``fit(predicted, truth)``: both hold per-galaxy property maps in one of
    the layouts of `stack_maps` (a mapping of name to ``(n, ny, nx)`` arrays,
    or a sequence of per-galaxy mappings of 2-D `~astropy.nddata.NDData`),
    the same galaxies in the same order; the truth is required.
    ``evaluate(predicted, truth)`` measures other maps with the same
    settings. `stack` does the checks every map task needs. The hooks of
    `~astro_cl.tasks.DownstreamTask` apply; `galaxy_columns` has one row per
    galaxy of the maps.
    """

    input_kind = "maps"

    def fit(self, predicted, truth=None, /):
        """Compare predicted maps with the true ones; return ``self``.

        Parameters
        ----------
        predicted : mapping or sequence
            Predicted maps.
        truth : mapping or sequence
            True maps of the same galaxies in the same order (required).

        Returns
        -------
        self : `MapTask`
        """
        msg = f"{type(self).__name__} must implement fit(predicted, truth)"
        raise NotImplementedError(msg)

    def stack(self, predicted, truth):
        """Stack predicted and true maps, checking that the truth is there and matches.

        Parameters
        ----------
        predicted, truth : mapping or sequence
            See `stack_maps`.

        Returns
        -------
        predicted, truth : dict of str to (`numpy.ndarray`, unit)
            See `stack_maps`.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the truth is missing, or the two hold different numbers of galaxies.
        """
        if truth is None:
            msg = f"{self.name}: fit(predicted, truth) needs the true maps"
            raise ValidationError(msg)
        pred, true = stack_maps(predicted), stack_maps(truth)
        n_pred = {v[0].shape[0] for v in pred.values()}
        n_true = {v[0].shape[0] for v in true.values()}
        if len(n_pred | n_true) > 1:
            msg = (f"{self.name}: the predicted maps hold {sorted(n_pred)} galaxies and the "
                   f"true maps {sorted(n_true)}; expected the same galaxies in the same order")
            raise ValidationError(msg)
        return pred, true


def _linear(values, is_log):
    return 10.0**values if is_log else values


def _std(values):
    return float(np.std(values, ddof=1)) if values.size > 1 else np.nan


def _log_differences(i_t, i_p, i_c, lin_t, lin_p, valid):
    """``log10(true) - log10(pred)`` per galaxy, the same for the baseline, and per pixel.

    Returns ``(delta, delta_constant, pixel_delta, pixel_log_truth)``: the
    per-galaxy arrays are NaN where the prediction's integral is unusable;
    the per-pixel ones hold the valid pixels only (the baseline's per-pixel
    difference is the true log value, up to the constant).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.log10(i_t) - np.log10(i_p)
        delta_c = np.log10(i_t) - np.log10(i_c)
        log_t = np.log10(lin_t)
        pix = log_t - np.log10(lin_p)
    delta[~np.isfinite(delta)] = np.nan
    delta_c[~np.isfinite(delta)] = np.nan
    pix_ok = valid & np.isfinite(pix)
    return delta, delta_c, pix[pix_ok], log_t[pix_ok]


def _statistics(name, delta, delta_c, pix, pix_c):
    """One quantity's statistics over galaxies and pixels, the baseline's beside them.

    Returns ``(n_galaxies, sigma, mu, sigma_constant, sigma_ratio,
    sigma_pixel, mu_pixel, sigma_pixel_constant, n_pixels)`` (see
    `MapMetrics`); warns when galaxies are left out.
    """
    n_gal = delta.shape[0]
    good = np.isfinite(delta)
    n_ok = int(good.sum())
    if n_ok < n_gal:
        warnings.warn(f"map-metrics: {name!r}: {n_gal - n_ok} of {n_gal} galaxies have "
                      f"no usable integrated value and are left out", AstroCLWarning)
    sigma, sigma_c = _std(delta[good]), _std(delta_c[good])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sigma / sigma_c if sigma_c > 0 else np.nan
    return (n_ok, sigma, float(np.mean(delta[good])) if good.any() else np.nan,
            sigma_c, ratio, _std(pix), float(np.mean(pix)) if pix.size else np.nan,
            _std(pix_c), int(pix.size))


def _study_reference(name):
    """``(label, study sigma, study mu)``: PICASSSO's numbers, NaN where not comparable."""
    return PICASSSO_REFERENCE.get(name, (_LABELS.get(name, name.replace("_", " ")),
                                         np.nan, np.nan))


class MapMetrics(MapTask):
    """Bias and scatter (dex) of property maps within 2 half-mass radii, PICASSSO-style.

    See the module description (`astro_cl.tasks.maps`) for what is
    integrated, which rows carry PICASSSO's numbers, and the constant
    prediction every row is compared with.

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
    derived : sequence of str, optional
        Quantities of `DERIVED_MAPS` to add (each when both its maps are
        evaluated): PICASSSO's summed metal mass and age x mass.

    Attributes
    ----------
    ellipses_ : `~astropy.table.QTable`
        Per-galaxy ellipse and half-mass radius (see `fit_ellipses`).
    delta_ : dict of str to `numpy.ndarray`
        Per-galaxy ``log10(true) - log10(pred)`` of the integrated quantity (dex).
    constant_delta_ : dict of str to `numpy.ndarray`
        The same for the constant prediction, up to an offset common to all
        galaxies (the value of the constant, here 1 in the map's units).
    pixel_delta_ : dict of str to `numpy.ndarray`
        Per-pixel ``log10(true / pred)`` inside the apertures (dex), pooled.
    results_ : `~astropy.table.QTable`
        The result (`result`, `evaluate`): one row per quantity:
        ``property``, ``label`` (PICASSSO's name where compared),
        ``definition`` (how it is integrated), ``n_galaxies``, ``sigma`` and
        ``mu`` (dex, over galaxies), ``sigma_constant`` (dex, a constant
        prediction's), ``sigma_ratio``, ``sigma_pixel`` and ``mu_pixel`` (dex,
        over pixels), ``sigma_pixel_constant``, ``n_pixels``, and PICASSSO's
        ``study_sigma`` and ``study_mu`` (dex; NaN where the quantity is not
        integrated as PICASSSO defined it).
    """

    name = "map-metrics"
    description = ("PICASSSO map metrics: bias and scatter (dex) within 2 half-mass radii, "
                   "beside a constant prediction's.")

    def __init__(self, *, properties=None, mass_map="stellar_mass", n_half_radii=2.0,
                 aggregation=None, log_maps=("metallicity", "gas_metallicity"),
                 derived=tuple(DERIVED_MAPS)):
        self.properties = properties
        self.mass_map = mass_map
        self.n_half_radii = n_half_radii
        self.aggregation = aggregation
        self.log_maps = log_maps
        self.derived = derived

    def _measures(self, names, pred, true):
        """``[(name, true lin, pred lin, how, is_log)]`` in the truth's units, derived ones last."""
        aggregation = dict(DEFAULT_AGGREGATION)
        aggregation.update(self.aggregation or {})
        maps, out = {}, []
        for name in names:
            t, t_unit = true[name]
            p, p_unit = pred[name]
            is_log = name in self.log_maps or is_log_unit(t_unit)
            if (not is_log and t_unit is not None and p_unit is not None and p_unit != t_unit
                    and p_unit.is_equivalent(t_unit)):
                p = (p * p_unit).to_value(t_unit)
            maps[name] = (_linear(t, is_log), _linear(p, is_log))
            how = aggregation.get(name, f"mean:{self.mass_map}")
            if how != "sum" and not how.startswith("mean"):
                msg = (f"map-metrics: aggregation of {name!r} must be 'sum' or 'mean[:map]', "
                       f"got {how!r}")
                raise ValueError(msg)
            out.append((name, *maps[name], how, is_log))
        unknown = [d for d in self.derived if d not in DERIVED_MAPS]
        if unknown:
            msg = (f"map-metrics: derived quantities {unknown} are unknown; expected some of "
                   f"{sorted(DERIVED_MAPS)}")
            raise ValidationError(msg)
        logged = {name: is_log for name, *_, is_log in out}
        for name in self.derived:
            factor, weight = DERIVED_MAPS[name]
            if factor in maps and weight in maps and name not in maps:
                (ft, fp), (wt, wp) = maps[factor], maps[weight]
                linear = f"10**{factor}" if logged[factor] else factor
                out.append((name, ft * wt, fp * wp, f"sum:{linear} x {weight}", False))
        return out

    @staticmethod
    def _definition(how):
        if how == "sum":
            return "sum"
        if how.startswith("sum:"):
            return f"sum of {how.removeprefix('sum:')}"
        _, _, wname = how.partition(":")
        return f"mean weighted by the true {wname}" if wname else "mean"

    def fit(self, predicted, truth=None):
        """Measure the apertures on the true mass maps and compare every quantity.

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
        pred, true = self.stack(predicted, truth)
        names = self._quantity_names(pred, true)
        mass = true[self.mass_map][0]
        ellipses, radius = fit_ellipses(mass)
        r_half = ellipses["r_half"].value
        aperture = (radius <= self.n_half_radii * r_half[:, None, None]) & (mass > 0)
        rows, deltas, constant, pixel_deltas = [], {}, {}, {}
        for name, lin_t, lin_p, how, is_log in self._measures(names, pred, true):
            valid = aperture & np.isfinite(lin_t) & np.isfinite(lin_p)
            if not is_log:
                valid &= lin_t > 0
            integrated = self._integrate(how, lin_t, lin_p, valid, true)
            delta, delta_c, pix, pix_c = _log_differences(*integrated, lin_t, lin_p, valid)
            label, study_sigma, study_mu = _study_reference(name)
            rows.append((name, label, self._definition(how),
                         *_statistics(name, delta, delta_c, pix, pix_c), study_sigma, study_mu))
            deltas[name] = delta
            constant[name] = delta_c
            pixel_deltas[name] = pix
        self.ellipses_ = ellipses
        self.delta_ = deltas
        self.constant_delta_ = constant
        self.pixel_delta_ = pixel_deltas
        self.results_ = self._results_table(rows)
        self._fitted_on = (predicted, truth)
        return self

    def _quantity_names(self, pred, true):
        """Return the maps to compare, checking both sides hold them in the mass map's shape."""
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
        for name in names:
            for label, stack in (("predicted", pred), ("true", true)):
                if stack[name][0].shape != mass.shape:
                    msg = (f"map-metrics: {label} map {name!r} has shape {stack[name][0].shape}, "
                           f"the true {self.mass_map!r} maps {mass.shape}")
                    raise ValidationError(msg)
        return names

    def _integrate(self, how, lin_t, lin_p, valid, true):
        """Per-galaxy integrated truth, prediction and baseline over the ``valid`` pixels.

        The baseline is a constant map of value 1 (any constant gives the same
        sigma): summed, the aperture's pixel count; a weighted mean, 1 where
        any weight is positive.
        """
        if how.startswith("sum"):
            i_t = np.where(valid, lin_t, 0.0).sum(axis=(1, 2))
            i_p = np.where(valid, lin_p, 0.0).sum(axis=(1, 2))
            return i_t, i_p, valid.sum(axis=(1, 2)).astype(np.float64)
        _, _, wname = how.partition(":")
        if wname and wname not in true:
            wname = self.mass_map
        w = true[wname][0] if wname else np.ones_like(lin_t)
        w = np.where(valid & np.isfinite(w) & (w > 0), w, 0.0)
        wsum = w.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            i_t = (w * np.nan_to_num(lin_t)).sum(axis=(1, 2)) / wsum
            i_p = (w * np.nan_to_num(lin_p)).sum(axis=(1, 2)) / wsum
        return i_t, i_p, np.where(wsum > 0, 1.0, np.nan)

    def _results_table(self, rows):
        """Return the `results_` table from one row per quantity (see the class's Attributes)."""
        table = QTable(rows=rows, names=("property", "label", "definition", "n_galaxies",
                                         "sigma", "mu", "sigma_constant", "sigma_ratio",
                                         "sigma_pixel", "mu_pixel", "sigma_pixel_constant",
                                         "n_pixels", "study_sigma", "study_mu"),
                       dtype=(str, str, str, np.int64, np.float64, np.float64, np.float64,
                              np.float64, np.float64, np.float64, np.float64, np.int64,
                              np.float64, np.float64))
        for col in ("sigma", "mu", "sigma_constant", "sigma_pixel", "mu_pixel",
                    "sigma_pixel_constant", "study_sigma", "study_mu"):
            table[col].unit = u.dex
        table.meta["task"] = self.name
        table.meta["definition"] = (
            f"delta = log10(true) - log10(pred) of the quantity integrated within "
            f"{self.n_half_radii} half-mass radii (ellipse from the true {self.mass_map} map); "
            "mu = mean, sigma = std over galaxies; *_pixel: per-pixel log10(true/pred); "
            "sigma_constant: sigma of a constant map (one value for every pixel of every "
            "galaxy, whatever the value); sigma_ratio = sigma / sigma_constant")
        table.meta["reference"] = (
            "Buck & Wolf 2021 (arXiv:2111.01154), ugriz 256 px: study_sigma, study_mu, given "
            "only where the quantity is integrated as they defined it (sums; metal mass and "
            "age x mass for stellar metallicity and age)")
        return table

    def galaxy_columns(self):
        """Return the per-galaxy ellipse and ``delta_<quantity>`` (dex) of every quantity.

        Returns
        -------
        columns : `~astropy.table.QTable`
            One row per galaxy of the maps: ``r_half`` (pix), ``axis_ratio``,
            ``delta_<quantity>`` (dex, NaN where not measured).
        """
        if "results_" not in self.__dict__:
            msg = "MapMetrics is not fitted yet; call fit() first"
            raise AttributeError(msg)
        out = QTable()
        out["r_half"] = self.ellipses_["r_half"]
        out["axis_ratio"] = self.ellipses_["axis_ratio"]
        for name, delta in self.delta_.items():
            out[f"delta_{name}"] = delta * u.dex
        return out

    def findings(self):
        """Return the quantities compared with PICASSSO and those reported on their own.

        Returns
        -------
        findings : dict
            ``compared_with_study`` and ``own_definition`` (lists of names).
        """
        table = self.results_
        ref = np.isfinite(np.asarray(table["study_sigma"].value))
        names = [str(n) for n in table["property"]]
        return {"compared_with_study": [n for n, r in zip(names, ref, strict=True) if r],
                "own_definition": [n for n, r in zip(names, ref, strict=True) if not r]}

    def describe(self):
        """Say what was measured.

        Returns
        -------
        text : str
        """
        return (f"PICASSSO map metrics within {self.n_half_radii:g} half-mass radii of an "
                f"ellipse fitted to the true {self.mass_map} map, each quantity beside a "
                "constant prediction's scatter")

    @classmethod
    def figures(cls, outputs):
        """Draw the scatter of every quantity beside the constant prediction's and PICASSSO's.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report.figures import plot_map_metrics

        table = outputs.table
        if table is None or not len(table):
            return {}, {}
        key = "map scatter against a constant prediction"
        return ({key: plot_map_metrics(table)},
                {key: "Scatter sigma over galaxies of delta = log10(true / predicted) within "
                      "2 half-mass radii (dex), beside the scatter of a constant prediction "
                      "(one value for every pixel) and, where the quantity is integrated as "
                      "PICASSSO defined it, PICASSSO's; the number is sigma / sigma_constant."})

    @classmethod
    def headline(cls, outputs):
        """Return one row per quantity: scatter, bias and skill, beside PICASSSO's when comparable.

        Parameters
        ----------
        outputs : `~astro_cl.tasks.TaskOutputs`

        Returns
        -------
        rows : list of dict
        """
        rows = []
        for r in outputs.table:
            sigma, mu = float(r["sigma"].value), float(r["mu"].value)
            ratio = float(r["sigma_ratio"])
            ref_s, ref_m = float(r["study_sigma"].value), float(r["study_mu"].value)
            ref = (f"PICASSSO sigma {ref_s:.3f}, mu {ref_m:+.3f} dex" if np.isfinite(ref_s)
                   else "not compared (PICASSSO defined no such quantity)")
            rows.append({"result": (f"{r['property']} ({r['definition']}) within 2 R_half: "
                                    "scatter sigma (bias mu); sigma / constant prediction's"),
                         "value": f"{sigma:.3f} ({mu:+.3f}) dex; {ratio:.2f}",
                         "reference": ref, "criterion": "", "passed": None})
        return rows
