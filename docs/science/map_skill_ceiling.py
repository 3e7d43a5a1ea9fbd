"""How much age and metallicity skill do ugriz images of the mocks allow? An upper bound.

The maps study asks a U-Net to beat a constant prediction by 2x in the
scatter of each galaxy's mass-weighted age and metallicity within 2 half-mass
radii (`astro_cl.tasks.MapMetrics`, ``sigma_ratio``). This script measures
what a far better-informed estimator reaches on the same sdss-mock galaxies,
scored by the same `~astro_cl.tasks.MapMetrics`:

* it is told the redshift and the true aperture (the ellipse and half-mass
  radius of the true mass map), which the U-Net must infer;
* its features are the ugriz fluxes in three elliptical annuli (0-0.5, 0.5-1,
  1-2 half-mass radii) of the rendered image, as colours and log fluxes, with
  the aperture's size in pixels: the radial colour profile that carries the
  information about the stellar populations;
* it is a gradient-boosted regressor trained on thousands of galaxies with
  5-fold cross-validation (the U-Net sees 576);
* ``--no-noise`` removes the photon and sky noise, the PSF stays.

Each galaxy's prediction is painted as a constant map, so its mass-weighted
mean is the prediction and the score is exactly the one the demo prints. If
this estimator's ratio is above 0.5, no network trained on these images can be
expected to reach 0.5: the limit is in the images (the age-metallicity-dust
degeneracy of broad-band colours), not in the model.

Run ``python docs/science/map_skill_ceiling.py --n 2000`` (a few minutes on
two cores).
"""

import argparse
import itertools
import json
import time

import numpy as np

__all__ = ["aperture_features", "main", "skill_ceiling"]


def aperture_features(images, radius, r_half, redshift=None):
    """Annulus colours and fluxes of ugriz images, one feature row per galaxy.

    Parameters
    ----------
    images : `numpy.ndarray`
        ``(n, 5, ny, nx)`` nanomaggies.
    radius : `numpy.ndarray`
        ``(n, ny, nx)`` elliptical radius of each pixel (pix, semi-major axis).
    r_half : `numpy.ndarray`
        ``(n,)`` half-mass radius (pix).
    redshift : `numpy.ndarray`, optional
        ``(n,)``; appended as a feature when given.

    Returns
    -------
    features : `numpy.ndarray`
        ``(n, n_features)``: per annulus four colours and the log r flux, then
        the log aperture radius (and the redshift).
    """
    edges = (0.0, 0.5, 1.0, 2.0)
    columns = []
    scaled = radius / r_half[:, None, None]
    for lo, hi in itertools.pairwise(edges):
        ring = ((scaled >= lo) & (scaled < hi))[:, None]
        flux = np.where(ring, images, 0.0).sum(axis=(2, 3))
        flux = np.clip(flux, 1e-3, None)
        mag = -2.5 * np.log10(flux)
        columns.append(mag[:, :-1] - mag[:, 1:])   # u-g, g-r, r-i, i-z
        columns.append(np.log10(flux[:, 2:3]))     # r
    columns.append(np.log10(r_half)[:, None])
    if redshift is not None:
        columns.append(np.asarray(redshift, float)[:, None])
    return np.hstack(columns)


def _render(n, size, seed, noise):
    from astro_cl.surveys.mock import ImageRenderer, build_state, draw_galaxy

    renderer = ImageRenderer(noise=noise, star_rate=0.0, bad_column_rate=0.0)
    fov = size * renderer.pixel_scale
    images, truth, redshift = [], {"stellar_mass": [], "age_mw": [], "metallicity": []}, []
    for index in range(n):
        params = draw_galaxy(seed, index, fov_arcsec=fov, selection="flux")
        state = build_state(params, (size, size), renderer.pixel_scale)
        rng = np.random.default_rng([seed, index, 7])
        images.append(renderer.render(state, rng)["data"])
        for name in truth:
            truth[name].append(state.truth[name])
        redshift.append(state.z)
    return (np.stack(images), {k: np.stack(v) for k, v in truth.items()}, np.array(redshift))


def skill_ceiling(n=2000, *, size=64, seed=0, noise=True, folds=5):
    """Score the gradient-boosted aperture-photometry estimator like the U-Net.

    Parameters
    ----------
    n : int, optional
        Number of sdss-mock galaxies.
    size : int, optional
        Image size (pixels); the demo uses 64.
    seed : int, optional
        Seed of the mock population, the noise and the cross-validation folds.
    noise : bool, optional
        Render with photon and sky noise (as the demo does).
    folds : int, optional
        Cross-validation folds over galaxies.

    Returns
    -------
    result : dict
        Per property (``age_mw``, ``metallicity``):
        ``sigma``, ``sigma_constant`` and ``sigma_ratio`` from
        `~astro_cl.tasks.MapMetrics`, plus ``n``, ``size``, ``noise`` and the
        wall time.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    from astro_cl.tasks.maps import MapMetrics, fit_ellipses

    start = time.perf_counter()
    images, truth, redshift = _render(n, size, seed, noise)
    mass = truth["stellar_mass"]
    ellipses, radius = fit_ellipses(mass)
    r_half = ellipses["r_half"].value
    keep = np.isfinite(r_half) & (r_half > 0)
    features = aperture_features(images[keep], radius[keep], r_half[keep], redshift[keep])
    aperture = (radius[keep] <= 2 * r_half[keep, None, None]) & (mass[keep] > 0)
    weights = np.where(aperture, mass[keep], 0.0)
    folds = KFold(folds, shuffle=True, random_state=seed)
    predicted = {"stellar_mass": mass[keep]}
    targets = {}
    for name in ("age_mw", "metallicity"):
        values = truth[name][keep]
        linear = 10.0 ** values if name == "metallicity" else values
        with np.errstate(invalid="ignore"):
            mean = (weights * np.nan_to_num(linear)).sum(axis=(1, 2)) / weights.sum(axis=(1, 2))
        targets[name] = np.log10(mean)
        model = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.05,
                                              random_state=seed)
        guess = cross_val_predict(model, features, targets[name], cv=folds)
        value = guess if name == "metallicity" else 10.0 ** guess
        predicted[name] = np.broadcast_to(value[:, None, None], values.shape).copy()
    metrics = MapMetrics(properties=["age_mw", "metallicity"], derived=()).fit(
        predicted, {k: v[keep] for k, v in truth.items()})
    result = {str(r["property"]): {"sigma": float(r["sigma"].value),
                                   "sigma_constant": float(r["sigma_constant"].value),
                                   "sigma_ratio": float(r["sigma_ratio"])}
              for r in metrics.results_}
    result.update(n=int(keep.sum()), size=size, noise=bool(noise), seed=seed,
                  wall_time_s=round(time.perf_counter() - start, 1))
    return result


def main(argv=None):
    """Command-line entry: print the ceiling as JSON.

    Parameters
    ----------
    argv : list of str, optional
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-noise", action="store_true")
    args = parser.parse_args(argv)
    result = skill_ceiling(args.n, size=args.size, seed=args.seed, noise=not args.no_noise)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
