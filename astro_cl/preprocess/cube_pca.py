"""The eCALIFA contrastive-learning preprocessing: IFU cube -> 30-channel PCA image.

Martinez-Solaeche et al. (2024, A&A 688, A160), in order:

1. shift each spectrum to the rest frame with the catalogue redshift and scale
   the flux to a luminosity density, ``L_lam = 4 pi d_L**2 (1 + z) f_lam``;
2. crop to 3739-6803 A and resample to 2 A steps;
3. fill bad pixels (linear interpolation along wavelength, refined by the
   PCA reconstruction once the PCA is fitted);
4. normalise each spaxel by its median in 5600-6000 A;
5. project onto 29 principal components fitted on spaxels with S/N > 30;
6. stack channel 0 = log10 of the 5600-6000 A median luminosity density
   (erg/s/A) and channels 1-29 = PCA coefficients; spaxels outside the convex
   hull of the S/N >= 3 spaxels are filled with sky-like noise (drawn from the
   statistics of low-S/N spaxels in the training data) and masked;
7. optionally (``standardize=True``, not part of the study's description),
   standardise each channel by its mean and standard deviation over the
   in-region spaxels of the fitting galaxies.

S/N of a spaxel is the median of flux / error over 5600-6000 A, or, for cubes
without an error, the DER_SNR estimate (Stoehr et al. 2008) over the cropped
range.

A galaxy whose rest-frame spectrum covers less than ``min_coverage`` of the
crop or of the normalisation window gets a `WavelengthCoverageWarning` (or a
`~astro_cl.exceptions.ValidationError`): the uncovered part would be filled
in, not measured.
"""

import threading
import warnings
import zlib

import astropy.units as u
import numpy as np

from astro_cl.exceptions import AstroCLWarning, ValidationError
from astro_cl.preprocess.base import Preprocessor

__all__ = ["CubePCA", "WavelengthCoverageWarning", "der_snr", "resample_spectra"]

_FLAMBDA = u.erg / u.s / u.cm**2 / u.AA
#: Serialises the cosmology integrals: SciPy's ``quad`` is thread-safe only
#: from SciPy 1.15 on, and galaxies may be preprocessed in threads.
_COSMOLOGY_LOCK = threading.Lock()


#: Elements per block of `resample_spectra` (32k doubles: 256 kB temporaries).
_BLOCK_ELEMENTS = 32768


def _interp_weights(x_old, x_new):
    """Return indices and weights for linear interpolation of ``x_old`` samples at ``x_new``."""
    i1 = np.clip(np.searchsorted(x_old, x_new), 1, len(x_old) - 1)
    i0 = i1 - 1
    w1 = np.clip((x_new - x_old[i0]) / (x_old[i1] - x_old[i0]), 0.0, 1.0)
    outside = (x_new < x_old[0]) | (x_new > x_old[-1])
    return i0, i1, w1, outside


def _clean_range(values, mask, start, stop):
    """Rows ``start:stop`` of (L, N) spectra as float32 with bad entries zeroed, and the flags.

    Bad: masked (``mask``, may be None) or not finite once in float32.
    """
    block = np.array(values[start:stop], dtype=np.float32)
    bad = ~np.isfinite(block)
    if mask is not None:
        flags = mask[start:stop]
        if flags.ndim == 2 and flags.strides[0] < flags.strides[1]:
            # wavelength innermost in memory (as specutils keeps a mask): read it
            # spaxel by spaxel, not one page per spaxel and row
            flags = np.ascontiguousarray(flags.T).T
        bad |= flags
    np.copyto(block, np.float32(0), where=bad)
    return block, bad


def _resample_cube(flux, mask, weights, *, std=None, with_flux=True):
    """Linear resampling of a cube's (L, N) spectra, cleaned block by block.

    The same numbers as cleaning the whole cube first (float32, bad inputs
    set to zero) and calling `resample_spectra` with ``method="linear"`` on
    it, and on ``std**2`` (zeroed where the flux is bad), but only the few
    input rows under each block of output rows are cleaned at a time: no
    cube-sized copy of the input is made, and rows outside the output range
    are never read. Cube-sized temporaries are freshly page-faulted memory
    for every galaxy, and that kernel time grows with the number of workers.

    Parameters
    ----------
    flux : `numpy.ndarray`
        ``(L, N)`` spectra, any float dtype.
    mask : `numpy.ndarray` of bool or None
        ``(L, N)`` bad pixels.
    weights : tuple
        ``(i0, i1, w1, outside)`` of `_interp_weights` for the output grid.
    std : `numpy.ndarray`, optional
        ``(L, N)`` 1-sigma errors: the variance is resampled too.
    with_flux : bool, optional
        Resample the flux (False: only the bad flags and the variance).

    Returns
    -------
    flux : `numpy.ndarray` of float32 or None
        ``(M, N)``.
    bad : `numpy.ndarray` of bool
        ``(M, N)``, as `resample_spectra` flags them.
    var : `numpy.ndarray` of float32 or None
        ``(M, N)`` resampled variance.
    """
    i0, i1, w1, outside = weights
    n_out, n = i0.size, flux.shape[1]
    res = np.empty((n_out, n), np.float32) if with_flux else None
    var = None if std is None else np.empty((n_out, n), np.float32)
    bad_out = np.empty((n_out, n), bool)
    w0 = 1 - w1
    step = max(1, _BLOCK_ELEMENTS // max(1, n))
    for lo in range(0, n_out, step):
        rows = slice(lo, lo + step)
        start = int(min(i0[rows].min(), i1[rows].min()))
        k0, k1 = i0[rows] - start, i1[rows] - start
        block, bad = _clean_range(flux, mask, start, int(max(i0[rows].max(), i1[rows].max())) + 1)
        np.logical_or(bad[k0], bad[k1], out=bad_out[rows])
        bad_out[rows] |= outside[rows, None]
        # float32 samples times float64 weights, rounded once: resample_spectra's arithmetic
        if res is not None:
            res[rows] = block[k0] * w0[rows, None] + block[k1] * w1[rows, None]
        if var is not None:
            np.copyto(block, std[start:start + len(block)], casting="unsafe")
            np.square(block, out=block)
            np.copyto(block, np.float32(0), where=bad)
            var[rows] = block[k0] * w0[rows, None] + block[k1] * w1[rows, None]
    return res, bad_out, var


def resample_spectra(wave, flux, new_wave, *, mask=None, method="linear"):
    """Resample many spectra at once onto a new wavelength grid.

    Parameters
    ----------
    wave : `numpy.ndarray`
        ``(L,)`` increasing wavelengths of the input.
    flux : `numpy.ndarray`
        ``(L, N)`` flux densities (one spectrum per column).
    new_wave : `numpy.ndarray`
        ``(M,)`` increasing output wavelengths (bin centres for ``"flux"``).
    mask : `numpy.ndarray` of bool, optional
        ``(L, N)`` bad pixels.
    method : {"linear", "flux"}, optional
        ``"linear"``: linear interpolation; ``"flux"``: flux-conserving
        rebinning (the cumulative integral is interpolated at the output bin
        edges and differenced), which keeps the integral of each spectrum.

    Returns
    -------
    flux : `numpy.ndarray`
        ``(M, N)``.
    mask : `numpy.ndarray` of bool
        ``(M, N)``: bad if outside the input range or read from a bad pixel.
    """
    wave = np.asarray(wave, dtype=float)
    new_wave = np.asarray(new_wave, dtype=float)
    bad = np.zeros(flux.shape, bool) if mask is None else np.asarray(mask, bool)
    i0, i1, w1, outside = _interp_weights(wave, new_wave)
    bad_out = bad[i0] | bad[i1] | outside[:, None]
    if method == "linear":
        # in blocks of output rows, so the double-precision temporaries stay in
        # the CPU cache instead of making several passes over a cube-sized array
        out = np.empty((new_wave.size, *flux.shape[1:]), dtype=flux.dtype)
        w0 = 1 - w1
        step = max(1, _BLOCK_ELEMENTS // max(1, flux[:1].size))
        for lo in range(0, new_wave.size, step):
            hi = lo + step
            out[lo:hi] = (flux[i0[lo:hi]] * w0[lo:hi, None]
                          + flux[i1[lo:hi]] * w1[lo:hi, None])
    elif method == "flux":
        edges = np.concatenate([[1.5 * wave[0] - 0.5 * wave[1]],
                                0.5 * (wave[1:] + wave[:-1]),
                                [1.5 * wave[-1] - 0.5 * wave[-2]]])
        cum = np.concatenate([np.zeros((1, flux.shape[1]), flux.dtype),
                              np.cumsum(flux * np.diff(edges)[:, None], axis=0)])
        new_edges = np.concatenate([[1.5 * new_wave[0] - 0.5 * new_wave[1]],
                                    0.5 * (new_wave[1:] + new_wave[:-1]),
                                    [1.5 * new_wave[-1] - 0.5 * new_wave[-2]]])
        j0, j1, v1, _ = _interp_weights(edges, new_edges)
        cum_new = cum[j0] * (1 - v1)[:, None] + cum[j1] * v1[:, None]
        out = np.diff(cum_new, axis=0) / np.diff(new_edges)[:, None]
    else:
        msg = f"resample_spectra: method must be 'linear' or 'flux', got {method!r}"
        raise ValidationError(msg)
    return out.astype(flux.dtype, copy=False), bad_out


def _nanmedian(x):
    """`numpy.nanmedian` along axis 0, NaN (and no warning) where a slice has no number.

    One sort of the whole array (NaN sorts last) and a gather of the two middle
    values per column: the same numbers as `numpy.nanmedian`, which for short
    axes goes through slower masked-array sorting (figures in
    ``benchmarks/README.md``).
    It also emits no all-NaN warning, so no process-wide warning filter is
    needed (galaxies may be preprocessed in threads,
    `PreprocessedCache.get_or_build`).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(float)
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[0] == 0:
        return np.full(x.shape[1:], np.nan, dtype=x.dtype)
    ordered = np.sort(flat, axis=0)
    counts = flat.shape[0] - np.isnan(flat).sum(axis=0)
    high = counts // 2
    low = np.where(counts % 2 == 1, high, high - 1)
    cols = np.arange(flat.shape[1])
    with np.errstate(invalid="ignore"):
        out = (ordered[np.maximum(low, 0), cols] + ordered[high, cols]) / x.dtype.type(2)
    out[counts == 0] = np.nan
    return out.reshape(x.shape[1:])


def der_snr(flux, axis=0):
    """Estimate the S/N of spectra with DER_SNR (Stoehr et al. 2008).

    Parameters
    ----------
    flux : `numpy.ndarray`
        Spectra (NaN for bad pixels), wavelength along ``axis``.
    axis : int, optional

    Returns
    -------
    snr : `numpy.ndarray`
        ``median(flux) / (1.482602 / sqrt(6) * median(|2 f_i - f_{i-2} - f_{i+2}|))``.
    """
    f = np.moveaxis(np.asarray(flux, dtype=float), axis, 0)
    signal = _nanmedian(f)
    diff = np.abs(2.0 * f[2:-2] - f[:-4] - f[4:])
    noise = 1.482602 / np.sqrt(6.0) * _nanmedian(diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(noise > 0, signal / noise, np.inf * np.sign(signal))


def _fill_along(values, bad, *, overwrite=False):
    """Fill bad pixels of (L, N) spectra by linear interpolation between good neighbours.

    Pixels with a good neighbour on one side only take that neighbour's value;
    spectra with no good pixel become zeros. With ``overwrite`` the result is
    written into ``values`` (the same numbers: only good pixels are read).
    """
    if overwrite:
        out = values
        np.copyto(out, values.dtype.type(0), where=bad)
    else:
        out = np.where(bad, values.dtype.type(0), values)
    # only spectra with both good and bad pixels need the (costly) neighbour search;
    # in a cube most are either clean or wholly masked (outside the field of view)
    partial = np.flatnonzero(bad.any(axis=0) & ~bad.all(axis=0))
    if partial.size:
        out[:, partial] = _fill_columns(values[:, partial], bad[:, partial])
    return out


def _fill_columns(values, bad):
    """`_fill_along` on (L, N) spectra that each have at least one good pixel."""
    n_l = values.shape[0]
    pos = np.arange(n_l, dtype=np.int32)[:, None]
    good = ~bad
    prev = np.maximum.accumulate(np.where(good, pos, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(good, pos, n_l)[::-1], axis=0)[::-1]
    # interpolate at the bad pixels only: they are few (isolated bad pixels,
    # masked sky lines), so the arithmetic runs on a short list, not the cube
    rows, cols = np.nonzero(bad)
    p, n = prev[rows, cols], nxt[rows, cols]
    has_p, has_n = p >= 0, n < n_l
    vp = values[np.clip(p, 0, n_l - 1), cols]
    vn = values[np.clip(n, 0, n_l - 1), cols]
    span = np.where(has_p & has_n & (n > p), n - p, 1)
    w = np.where(has_p & has_n, (rows - p) / span, 0.0)
    filled = np.where(has_p & has_n, vp * (1 - w) + vn * w,
                      np.where(has_p, vp, np.where(has_n, vn, 0.0)))
    out = values.copy()
    out[rows, cols] = filled
    return out


def _cube_arrays(cube):
    """`~astro_cl.data.record.cube_to_array` without copies: flux, mask (or None), std.

    A standard-deviation uncertainty keeps its floating-point dtype (a float32
    error cube is not widened to a float64 copy: only its float32 square is
    used); a mask-less cube gives None instead of an all-False cube.
    """
    from astropy.nddata import StdDevUncertainty

    from astro_cl.data.record import uncertainty_as_std

    axis = cube.spectral_axis_index
    flux = np.moveaxis(np.asarray(cube.flux.value), axis, 0)
    mask = None if cube.mask is None else np.moveaxis(np.asarray(cube.mask, bool), axis, 0)
    unc = cube.uncertainty
    if isinstance(unc, StdDevUncertainty) and np.issubdtype(np.asarray(unc.array).dtype,
                                                             np.floating):
        std = np.asarray(unc.array)
    else:
        std = uncertainty_as_std(unc)
    if std is not None:
        std = np.moveaxis(std, axis, 0)
    return flux, mask, std


class WavelengthCoverageWarning(AstroCLWarning):
    """A cube covers less of `CubePCA`'s rest-frame wavelength range than asked for."""


def _robust_stats(x):
    """Per-column median and 1.4826 * MAD of (N, C) values, ignoring non-finite."""
    x = np.where(np.isfinite(x), x, np.nan)
    med = _nanmedian(x)
    mad = 1.4826 * _nanmedian(np.abs(x - med))
    return med, mad


class CubePCA(Preprocessor):
    """The eCALIFA cube-to-image preprocessing (rest frame, 2 A grid, PCA, 30 channels).

    Parameters
    ----------
    wave_range : (float, float), optional
        Rest-frame crop in Angstrom.
    step : float, optional
        Output wavelength step in Angstrom.
    norm_window : (float, float), optional
        Rest-frame window (Angstrom) of the normalising median and of the S/N.
    n_components : int, optional
        Number of PCA components.
    fit_snr : float, optional
        Only spaxels with S/N above this are used to fit the PCA.
    region_snr : float, optional
        Spaxels outside the region of S/N >= this are noise-filled and masked.
    region : {"hull", "snr"}, optional
        ``"hull"``: the convex hull of the S/N >= ``region_snr`` spaxels (the
        study's choice); ``"snr"``: those spaxels only.
    luminosity_channel : bool, optional
        Include channel 0, log10 luminosity density (the study's ablation
        drops it, giving ``n_components`` channels).
    resample : {"linear", "flux"}, optional
        Linear interpolation or flux-conserving rebinning onto the 2 A grid.
    cosmology : str, optional
        Name of an `astropy.cosmology` realization for luminosity distances.
    max_spectra_per_galaxy : int, optional
        High-S/N spectra drawn (seeded) from each galaxy to fit the PCA.
    fill_iterations : int, optional
        Times bad pixels are replaced by the PCA reconstruction and the
        spectrum re-projected.
    standardize : bool, optional
        Return every channel as ``(value - mean) / std``, with the mean and
        standard deviation of that channel over the in-region spaxels of the
        fitting galaxies (``channel_mean_``, ``channel_std_``). Without it
        channel 0 is log10 L in erg/s/A (about 37 for the mocks, with a
        spread of about 0.5 dex) beside PCA coefficients of order 0.2: the
        luminosity channel then dominates the input of a network, and the
        multiplicative noise of the study's augmentations (``x (1 + N/SN)``)
        perturbs it by tens of dex. Recommended for training; off by default
        so that the channels keep their physical meaning.
    seed : int, optional
        Seed of the subsampling and of the sky-like noise (the noise of a
        galaxy also depends on its id, so it does not depend on the order).
    min_coverage : float, optional
        Least fraction (0-1) of ``wave_range``, and of ``norm_window``, that a
        galaxy's spectrum must cover once shifted to the rest frame. Below
        it the uncovered wavelengths would be filled in (edge values, then the
        PCA reconstruction) rather than measured, and the images would look
        as good as any other.
    on_low_coverage : {"warn", "error"}, optional
        What a galaxy below ``min_coverage`` gives: a
        `WavelengthCoverageWarning` naming the galaxy, the covered range and
        the asked range, or a `~astro_cl.exceptions.ValidationError`.

    Attributes
    ----------
    wave_ : `numpy.ndarray`
        Rest-frame wavelength grid (Angstrom).
    mean_, components_, explained_variance_ : `numpy.ndarray`
        The fitted PCA of the normalised spectra.
    sky_mean_, sky_std_ : `numpy.ndarray`
        Per output channel, the median and robust scatter of low-S/N
        spaxels, used for the sky-like fill.
    channel_mean_, channel_std_ : `numpy.ndarray`
        Per output channel (luminosity first), the mean and standard
        deviation over the in-region spaxels of the fitting galaxies; applied
        when ``standardize`` is set.
    """

    name = "cube-pca"
    thread_safe = True
    description = "eCALIFA recipe: rest frame, 3739-6803 A at 2 A, normalise, PCA -> 30 channels."
    version = 2
    _state_arrays = ("wave_", "mean_", "components_", "explained_variance_", "sky_mean_",
                     "sky_std_", "channel_mean_", "channel_std_")

    def __init__(self, *, wave_range=(3739.0, 6803.0), step=2.0, norm_window=(5600.0, 6000.0),
                 n_components=29, fit_snr=30.0, region_snr=3.0, region="hull",
                 luminosity_channel=True, resample="linear", cosmology="Planck18",
                 max_spectra_per_galaxy=100, fill_iterations=2, standardize=False, seed=0,
                 min_coverage=0.9, on_low_coverage="warn"):
        self.wave_range = wave_range
        self.step = step
        self.norm_window = norm_window
        self.n_components = n_components
        self.fit_snr = fit_snr
        self.region_snr = region_snr
        self.region = region
        self.luminosity_channel = luminosity_channel
        self.resample = resample
        self.cosmology = cosmology
        self.max_spectra_per_galaxy = max_spectra_per_galaxy
        self.fill_iterations = fill_iterations
        self.standardize = standardize
        self.seed = seed
        self.min_coverage = min_coverage
        self.on_low_coverage = on_low_coverage

    # -- per-galaxy spectra -------------------------------------------------
    def _grid(self):
        lo, hi = (float(v) for v in self.wave_range)
        n = int(np.floor((hi - lo) / float(self.step) + 1e-9)) + 1
        return lo + float(self.step) * np.arange(n)

    def _check_coverage(self, wave_rest, z, gid):
        """Warn (or raise) if the rest-frame spectrum covers too little of the asked ranges."""
        least = self.min_coverage
        if isinstance(least, bool) or not isinstance(least, int | float | np.number) \
                or not 0.0 <= float(least) <= 1.0:
            msg = f"CubePCA.min_coverage: expected a number in [0, 1], got {least!r}"
            raise ValidationError(msg)
        if self.on_low_coverage not in ("warn", "error"):
            msg = (f"CubePCA.on_low_coverage: expected 'warn' or 'error', "
                   f"got {self.on_low_coverage!r}")
            raise ValidationError(msg)
        lo, hi = float(np.min(wave_rest)), float(np.max(wave_rest))
        for field in ("wave_range", "norm_window"):
            a, b = (float(v) for v in getattr(self, field))
            if not a < b:
                msg = f"CubePCA.{field}: expected (min, max) with min < max, got {(a, b)}"
                raise ValidationError(msg)
            covered = max(0.0, min(hi, b) - max(lo, a)) / (b - a)
            if covered >= float(least):
                continue
            msg = (f"galaxy {gid!r} (z = {z:.4f}): its spectrum covers {lo:.0f}-{hi:.0f} A in "
                   f"the rest frame, {covered:.0%} of CubePCA.{field} = {a:.0f}-{b:.0f} A "
                   f"(min_coverage = {float(least):g}); the rest would be filled in, not "
                   f"measured. Choose a {field} inside the data or drop the galaxy")
            if self.on_low_coverage == "error":
                raise ValidationError(msg)
            warnings.warn(msg, WavelengthCoverageWarning, stacklevel=4)

    def _luminosity_factor(self, z):
        from astropy import cosmology

        try:
            cosmo = getattr(cosmology, self.cosmology)
        except AttributeError:
            msg = f"CubePCA.cosmology: {self.cosmology!r} is not an astropy.cosmology realization"
            raise ValidationError(msg) from None
        with _COSMOLOGY_LOCK:
            d_l = cosmo.luminosity_distance(max(float(z), 1e-4)).to_value(u.cm)
        return 4.0 * np.pi * d_l**2 * (1.0 + z)

    def _spectra(self, flux, mask, std, wave_obs, z, gid, scale):
        """Rest-frame, resampled, filled, normalised spectra of one cube.

        Returns a dict with ``x`` (M, N) normalised spectra, ``bad`` (M, N),
        ``log_l`` (N,), ``snr`` (N,), ``valid`` (N,) and the spatial shape.
        Spectra stay in the cube's unit (``scale`` converts it to erg/s/cm2/A)
        and only the luminosity channel carries the absolute scale, which
        would overflow single precision.
        """
        n_l, h, w = flux.shape
        if wave_obs.shape != (n_l,):
            msg = f"galaxy {gid!r}: {wave_obs.size} wavelengths for a cube of {n_l} channels"
            raise ValidationError(msg)
        if z is None or not np.isfinite(z):
            msg = f"galaxy {gid!r}: no redshift (observing.redshift or a 'z' property)"
            raise ValidationError(msg)
        grid = self._grid()
        wave_rest = wave_obs / (1.0 + z)
        self._check_coverage(wave_rest, z, gid)
        lo, hi = self.norm_window
        win = (grid >= lo) & (grid <= hi)
        if not win.any():
            msg = (f"CubePCA.norm_window {self.norm_window} lies outside "
                   f"wave_range {self.wave_range}")
            raise ValidationError(msg)
        flux = flux.reshape(n_l, h * w)
        mask = None if mask is None else mask.reshape(n_l, h * w)
        weights = _interp_weights(np.asarray(wave_rest, dtype=float), grid)
        if self.resample == "linear":
            res, bad_r, _ = _resample_cube(flux, mask, weights)
        else:
            lum, bad = _clean_range(flux, mask, 0, n_l)
            res, bad_r = resample_spectra(wave_rest, lum, grid, mask=bad, method=self.resample)
            del lum, bad
        with np.errstate(all="ignore"):
            res_win = np.where(bad_r[win], np.nan, res[win])
            norm = _nanmedian(res_win)
            if std is not None:
                # the S/N needs the variance in the normalising window only
                _, _, var_win = _resample_cube(
                    flux, mask, tuple(v[win] for v in weights),
                    std=std.reshape(n_l, h * w), with_flux=False)
                ratio = res_win / np.sqrt(np.where(var_win > 0, var_win, np.nan))
                snr = _nanmedian(ratio)
            else:
                snr = der_snr(np.where(bad_r, np.nan, res), axis=0)
        snr = np.where(np.isfinite(snr), snr, 0.0)
        n_good = len(grid) - np.count_nonzero(bad_r, axis=0)
        valid = np.isfinite(norm) & (norm > 0) & (n_good > 0.5 * len(grid))
        safe = np.where(valid, norm, 1.0)
        # res is this call's own array: filled and normalised in place
        x = _fill_along(res, bad_r, overwrite=True)
        x /= safe[None, :]
        with np.errstate(divide="ignore"):
            log_l = np.where(valid, np.log10(safe) + np.log10(scale * self._luminosity_factor(z)),
                             np.nan)
        return {"x": x.astype(np.float32, copy=False), "bad": bad_r, "log_l": log_l,
                "snr": snr, "valid": valid, "shape": (h, w)}

    def _record_inputs(self, record):
        if record.cube is None:
            msg = f"galaxy {record.id!r}: CubePCA needs a cube, the record has none"
            raise ValidationError(msg)
        flux, mask, std = _cube_arrays(record.cube)
        try:
            scale = (1.0 * record.cube.flux.unit).to_value(
                _FLAMBDA, equivalencies=u.spectral_density(record.cube.spectral_axis[0]))
        except u.UnitConversionError:
            msg = (f"galaxy {record.id!r}: cube flux unit {record.cube.flux.unit} is not a "
                   "flux density convertible to erg/s/cm2/A")
            raise ValidationError(msg) from None
        wave = record.cube.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        z = record.observing.redshift
        if z is None:
            z = record.properties.get("z")
            z = None if z is None else float(getattr(z, "value", z))
        return flux, mask, std, np.asarray(wave, float), z, record.id, scale

    def _iter_inputs(self, X, kwargs):
        from astro_cl.preprocess.base import _as_records

        records = _as_records(X)
        if records is not None:
            for rec in records:
                yield self._record_inputs(rec)
            return
        flux = np.asarray(X)
        if flux.ndim != 4:
            msg = f"CubePCA: expected flux of shape (N, L, H, W), got {flux.shape}"
            raise ValidationError(msg)
        wave = kwargs.get("wavelength")
        z = kwargs.get("redshift")
        if wave is None or z is None:
            msg = "CubePCA on arrays needs wavelength= (observed, Angstrom) and redshift= (N,)"
            raise ValidationError(msg)
        z = np.broadcast_to(np.asarray(z, dtype=float), (len(flux),))
        wave = np.asarray(wave, float)
        # rest-frame input: the observed grid of galaxy i is wave * (1 + z_i)
        rest_frame = bool(kwargs.get("rest_frame", False))
        scale = (1.0 * u.Unit(kwargs.get("flux_unit", "1e-16 erg / (s cm2 Angstrom)"))).to_value(
            _FLAMBDA)
        mask = kwargs.get("mask")
        std = kwargs.get("std")
        ids = kwargs.get("ids", [str(i) for i in range(len(flux))])
        for i in range(len(flux)):
            m = None if mask is None else np.asarray(mask[i], bool)
            yield (flux[i], m, None if std is None else std[i],
                   wave * (1.0 + z[i]) if rest_frame else wave, float(z[i]), ids[i], scale)

    # -- fitting ------------------------------------------------------------
    def _fit_records(self, records):
        self._fit_iter(self._iter_inputs(records, {}))

    def _fit_arrays(self, X, **kwargs):
        self._fit_iter(self._iter_inputs(X, kwargs))

    def _fit_iter(self, inputs):
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(self.seed)
        cap = int(self.max_spectra_per_galaxy)
        high, low, low_l, inner, inner_l = [], [], [], [], []
        for inp in inputs:
            s = self._spectra(*inp)
            hi_idx = np.flatnonzero(s["valid"] & (s["snr"] > self.fit_snr))
            lo_idx = np.flatnonzero(s["valid"] & (s["snr"] < self.region_snr))
            in_idx = np.flatnonzero(s["valid"] & self._region(s["snr"] >= self.region_snr,
                                                              *s["shape"]))
            if hi_idx.size > cap:
                hi_idx = rng.choice(hi_idx, cap, replace=False)
            if lo_idx.size > cap:
                lo_idx = rng.choice(lo_idx, cap, replace=False)
            if in_idx.size > cap:
                in_idx = rng.choice(in_idx, cap, replace=False)
            high.append(s["x"][:, hi_idx].T)
            low.append(s["x"][:, lo_idx].T)
            low_l.append(s["log_l"][lo_idx])
            inner.append(s["x"][:, in_idx].T)
            inner_l.append(s["log_l"][in_idx])
        high = np.concatenate(high) if high else np.zeros((0, 0))
        k = int(self.n_components)
        if high.shape[0] <= k:
            msg = (f"CubePCA.fit: only {high.shape[0]} spaxels have S/N > {self.fit_snr}; "
                   f"need more than n_components={k} (lower fit_snr or give more galaxies)")
            raise ValidationError(msg)
        pca = PCA(n_components=k, svd_solver="randomized" if min(high.shape) > 4 * k else "full",
                  random_state=self.seed).fit(high)
        self.wave_ = self._grid()
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        self.explained_variance_ = pca.explained_variance_.astype(np.float32)
        good_coeffs = self._project(high.T, np.zeros(high.T.shape, bool))
        low = np.concatenate(low) if low else np.zeros((0, high.shape[1]), np.float32)
        lum_hi = np.full(len(high), np.nan)
        if len(low) >= 2:
            coeffs = self._project(low.T, np.zeros(low.T.shape, bool))
            med, mad = _robust_stats(np.column_stack([np.concatenate(low_l), coeffs]))
        else:  # no sky-dominated spaxels: a faint, narrow noise around the mean spectrum
            med, mad = _robust_stats(np.column_stack([lum_hi, good_coeffs]))
            med[1:] = 0.0
            mad = 0.05 * np.nan_to_num(mad)
        med[0] = med[0] if np.isfinite(med[0]) else 0.0
        mad[0] = mad[0] if np.isfinite(mad[0]) else 0.0
        self.sky_mean_ = np.nan_to_num(med).astype(np.float32)
        self.sky_std_ = np.nan_to_num(mad).astype(np.float32)
        # the channels as transform() writes them inside the region (spaxels of
        # every S/N, unlike the high-S/N fitting set), for `standardize`
        inner = np.concatenate(inner)
        chans = np.column_stack([np.concatenate(inner_l),
                                 self._project(inner.T, np.zeros(inner.T.shape, bool))])
        chans = chans[np.all(np.isfinite(chans), axis=1)]
        if len(chans) < 2:
            msg = ("CubePCA.fit: fewer than 2 in-region spaxels with finite channels; "
                   "cannot derive the channel statistics")
            raise ValidationError(msg)
        std = chans.std(axis=0)
        self.channel_mean_ = chans.mean(axis=0).astype(np.float32)
        self.channel_std_ = np.where(std > 0, std, 1.0).astype(np.float32)

    def _project(self, x, bad, *, overwrite=False):
        """PCA coefficients (N, K) of normalised spectra x (M, N), refining bad pixels.

        The refinement replaces the bad pixels of ``x`` by the reconstruction
        and projects again; with ``overwrite`` it writes into ``x`` (when
        C-contiguous), otherwise into a copy. One (M, N) work array serves
        every step.
        """
        comp = self.components_.astype(np.float32)
        mean = self.mean_.astype(np.float32)[:, None]
        work = np.subtract(x, mean)
        coeffs = (comp @ work).T
        n_iter = int(self.fill_iterations) if bad.any() else 0
        if n_iter:
            if not (overwrite and x.flags.c_contiguous):
                x = np.array(x, order="C")
            work = np.ascontiguousarray(work)
        for _ in range(n_iter):
            np.matmul(comp.T, coeffs.T, out=work)
            work += mean  # the reconstruction
            np.copyto(x, work, where=bad)
            np.subtract(x, mean, out=work)
            coeffs = (comp @ work).T
        return coeffs

    # -- applying -----------------------------------------------------------
    @property
    def n_channels(self):
        """int: number of output channels."""
        return int(self.n_components) + (1 if self.luminosity_channel else 0)

    def _image(self, flux, mask, std, wave, z, gid, scale):
        s = self._spectra(flux, mask, std, wave, z, gid, scale)
        if s["x"].shape[0] != len(self.wave_):
            msg = "CubePCA: the wavelength grid differs from the fitted one (parameters changed?)"
            raise ValidationError(msg)
        h, w = s["shape"]
        coeffs = self._project(s["x"], s["bad"], overwrite=True)  # x is not used after
        region = self._region(s["snr"] >= self.region_snr, h, w)
        good = region & s["valid"]
        chans = np.column_stack([s["log_l"], coeffs]) if self.luminosity_channel else coeffs
        # per-channel statistics are stored with the luminosity channel first
        kept = slice(0 if self.luminosity_channel else 1, None)
        rng = np.random.default_rng([int(self.seed), zlib.crc32(str(gid).encode())])
        noise = self.sky_mean_[kept] + self.sky_std_[kept] * rng.standard_normal(chans.shape)
        out = np.where(good[:, None], chans, noise)
        if self.standardize:
            out = (out - self.channel_mean_[kept]) / self.channel_std_[kept]
        out = out.T.reshape(-1, h, w).astype(np.float32)
        return out, (~good).reshape(1, h, w), None

    def _region(self, above, h, w):
        if self.region == "snr":
            return above
        if self.region != "hull":
            msg = f"CubePCA.region: expected 'hull' or 'snr', got {self.region!r}"
            raise ValidationError(msg)
        from scipy.spatial import ConvexHull, QhullError

        yy, xx = np.divmod(np.arange(h * w), w)
        pts = np.column_stack([yy, xx]).astype(float)
        if above.sum() < 3:
            return above
        try:
            hull = ConvexHull(pts[above])
        except QhullError:  # collinear points: no area
            return above
        # inside when on the inner side of every facet: n . p + d <= 0
        dist = pts @ hull.equations[:, :2].T + hull.equations[:, 2]
        return np.all(dist <= 1e-9, axis=1) | above

    def transform_record(self, record):
        """Turn one galaxy's cube into the ``(C, H, W)`` image.

        Parameters
        ----------
        record : `~astro_cl.data.GalaxyRecord`
            With a cube and a redshift (``observing.redshift`` or a ``z`` property).

        Returns
        -------
        data : `numpy.ndarray` of float32
            ``(n_channels, H, W)``.
        mask : `numpy.ndarray` of bool
            ``(1, H, W)``: True outside the S/N >= ``region_snr`` region.
        std : None
        """
        self._check_fitted()
        return self._image(*self._record_inputs(record))

    def _transform_arrays(self, X, **kwargs):
        from astro_cl.utils.parallel import imap_ordered

        workers = int(kwargs.get("workers", 1))
        outs = list(imap_ordered(lambda inp: self._image(*inp), self._iter_inputs(X, kwargs),
                                 workers=workers))
        return (np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs]), None)

    def transform_batch(self, batch, *, workers=1):
        """Turn a batch of cubes into a batch of images (per-view preprocessing).

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
            ``(B, L, H, W)`` cubes with their spectral axis in ``meta``
            (``wavelength``, ``rest_frame``, ``flux_unit``) and a
            ``meta["redshift"]`` per galaxy: a cube batch of a survey
            (``Survey.to_tensors(kind="cube")``), possibly augmented.
        workers : int, optional
            Threads that preprocess galaxies concurrently.

        Returns
        -------
        images : `~astro_cl.data.batch.TensorBatch`
            ``(B, n_channels, H, W)`` on the batch's device, mask ``(B, 1, H, W)``,
            no uncertainty; ids, star masks and targets kept; ``meta`` without
            the spectral axis, with ``meta["preprocessor"] = "cube-pca"``. Equal
            to `transform` of the records the batch was read from.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the batch lacks a wavelength grid, redshifts or a flux unit.
        """
        import torch

        from astro_cl.data.batch import TensorBatch, per_image_meta, without_cube_meta

        self._check_fitted()
        wave = batch.wavelength
        n = len(batch)
        if wave is None:
            msg = (f"CubePCA.transform_batch: the batch ({batch.data.shape[1]} channels) has no "
                   "meta['wavelength']; give a cube batch of a survey (kind='cube')")
            raise ValidationError(msg)
        z = batch.meta.get("redshift")
        if z is None:
            msg = ("CubePCA.transform_batch: the batch has no meta['redshift'] (one per galaxy); "
                   "its records need observing.redshift or a 'z' property")
            raise ValidationError(msg)
        z_rows = per_image_meta(z, n)
        z = np.full(n, float(z)) if z_rows is None else np.asarray(z_rows, float)
        unit = batch.meta.get("flux_unit")
        if unit is None:
            msg = ("CubePCA.transform_batch: the batch has no meta['flux_unit'] (e.g. "
                   "'1e-16 erg / (s cm2 Angstrom)'), needed for the luminosity channel")
            raise ValidationError(msg)
        data = batch.data.detach().cpu().numpy()
        mask = np.broadcast_to(batch.mask.cpu().numpy(), data.shape)
        std = None if batch.uncertainty is None else batch.uncertainty.detach().cpu().numpy()
        images, masks, _ = self._transform_arrays(
            data, wavelength=wave, redshift=z, mask=mask, std=std, ids=list(batch.ids),
            flux_unit=unit, rest_frame=bool(batch.meta.get("rest_frame", False)),
            workers=workers)
        dev = batch.device
        return TensorBatch(
            data=torch.from_numpy(images).to(dev), mask=torch.from_numpy(masks).to(dev),
            ids=list(batch.ids), targets=batch.targets, target_mask=batch.target_mask,
            star_mask=batch.star_mask,
            meta={**without_cube_meta(batch.meta), "preprocessor": self.name})
