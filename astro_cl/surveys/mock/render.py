"""Renderers: one galaxy state to SDSS-like ugriz images or eCALIFA-like V500 cubes.

A pixel's stellar continuum is ``sum_k w_k S_k(lambda) T(A_V, lambda)``: the
masses formed in each template ``w_k`` times the redshifted templates ``S_k``,
attenuated by the Calzetti transmission ``T`` of the pixel's stellar A_V; the
emission lines are added with Gaussian profiles. No pixel or spaxel is
visited in a Python loop:

* images: the templates are integrated through the SDSS filters once per
  galaxy on a grid of A_V nodes 0.1 mag apart, and each pixel interpolates
  linearly between the two nodes around its A_V (0.2 per cent accurate); the
  PSF blurs the five band images;
* cubes: the per-pixel weights are written as ``W = A B`` with the fewest
  eigen-mixtures ``B`` that keep every pixel's normalised weights to 1e-4
  (typically 5-20 for 54 templates), and the transmission as
  ``T(A_V, lambda) = sum_l g_l(A_V) tau_l(lambda)`` with the fewest terms that
  keep it to 1e-3 (typically 3-5); the PSF (linear) blurs the ``A g`` and
  line-flux planes, and one matrix product gives the cube in
  ``(wavelength, y, x)`` order.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from astro_cl.surveys.mock import spectra

__all__ = ["CubeRenderer", "ImageRenderer", "dust_expansion", "dust_nodes", "weight_factors"]

_AV_STEP = 0.1
_FWHM = 2.3548200450309493
#: Wavelengths per slab where a cube is built in pieces (keeps temporaries small).
_SLAB = 256


def dust_nodes(av, step=_AV_STEP):
    """A_V nodes and, per pixel, the lower node and the weight of the upper one.

    Parameters
    ----------
    av : `numpy.ndarray`
        Stellar V-band attenuation per pixel.
    step : float, optional

    Returns
    -------
    nodes : `numpy.ndarray`
    lower : `numpy.ndarray` of int
    weight : `numpy.ndarray`
        Weight of node ``lower + 1`` (``1 - weight`` goes to ``lower``).
    """
    nodes = spectra.attenuation_nodes(float(np.max(av, initial=0.0)), step)
    lower = np.minimum((av / step).astype(int), nodes.size - 2)
    return nodes, lower, np.clip(av / step - lower, 0, 1)


def weight_factors(weights, tol=1e-4):
    """Factor per-pixel template weights as ``A @ B`` with as few rows of ``B`` as ``tol`` allows.

    Parameters
    ----------
    weights : `numpy.ndarray`
        ``(n_pix, n_templates)`` non-negative.
    tol : float, optional
        Largest residual of any pixel's weights, relative to their norm.

    Returns
    -------
    a : `numpy.ndarray`
        ``(n_pix, r)``.
    b : `numpy.ndarray`
        ``(r, n_templates)`` orthonormal rows.
    """
    norm = np.linalg.norm(weights, axis=1)
    wn = weights / np.where(norm > 0, norm, 1.0)[:, None]
    _, vecs = np.linalg.eigh(wn.T @ wn)
    vecs = vecs[:, ::-1]
    for r in range(1, weights.shape[1] + 1):
        v = vecs[:, :r]
        resid = np.linalg.norm(wn - (wn @ v) @ v.T, axis=1)
        if resid.max() <= tol:
            break
    return weights @ v, v.T


def dust_expansion(z, wave_obs, av, tol=1e-3):
    """Write the transmission of every pixel as a short sum: ``T(A_V) = sum_l g_l(A_V) tau_l``.

    Parameters
    ----------
    z : float
    wave_obs : `numpy.ndarray`
        Observed wavelengths (Angstrom).
    av : `numpy.ndarray`
        Stellar A_V per pixel.
    tol : float, optional
        Largest relative error of the transmission at any A_V and wavelength.

    Returns
    -------
    g : `numpy.ndarray`
        ``(n_pix, L)``.
    tau : `numpy.ndarray`
        ``(L, n_wave)``.
    """
    av_max = float(np.max(av, initial=0.0))
    grid = np.linspace(0.0, max(av_max, 1e-3), max(8, int(np.ceil(av_max / 0.02)) + 1))
    trans = spectra.attenuation(z, wave_obs, grid)
    u_, s, vt = np.linalg.svd(trans, full_matrices=False)
    for n in range(1, s.size + 1):
        approx = (u_[:, :n] * s[:n]) @ vt[:n]
        if np.max(np.abs(approx - trans) / trans) <= tol:
            break
    left = u_[:, :n] * s[:n]
    g = np.stack([np.interp(av, grid, left[:, i]) for i in range(n)], axis=1)
    return g, vt[:n]


def _blur(stack, sigma_pix):
    """Gaussian PSF on the last two axes of a stack (constant zero boundary)."""
    sig = [0.0] * (stack.ndim - 2) + [sigma_pix, sigma_pix]
    return gaussian_filter(stack, sig, mode="constant", truncate=4.0)


def _psf_image(shape, centre, sigma_pix):
    yy, xx = np.indices(shape, dtype=float)
    img = np.exp(-0.5 * ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / sigma_pix**2)
    return img / (2 * np.pi * sigma_pix**2)


def _blackbody(wave, temp):
    x = 1.4387769e8 / (wave * temp)
    return 1 / (wave**5 * np.expm1(np.minimum(x, 700)))


def _draw_stars(rng, shape, pixel_scale, rate):
    """Foreground stars: positions (px), r magnitudes, temperatures and mask radii (px)."""
    n = int(rng.poisson(rate))
    ny, nx = shape
    pos = np.column_stack([rng.uniform(0, ny - 1, n), rng.uniform(0, nx - 1, n)])
    # keep stars off the galaxy centre (real samples avoid such cases)
    centre = np.array([(ny - 1) / 2, (nx - 1) / 2])
    far = np.hypot(*(pos - centre).T) > 0.15 * min(shape)
    pos = pos[far]
    mag = rng.uniform(14.5, 19.5, pos.shape[0])
    temp = rng.uniform(3500, 8000, pos.shape[0])
    radius = np.clip((20.5 - mag) * 1.6 / pixel_scale, 2, 16 * 0.5 / pixel_scale)
    return pos, mag, temp, radius


def _star_mask(shape, pos, radius):
    yy, xx = np.indices(shape, dtype=float)
    mask = np.zeros(shape, bool)
    for (y0, x0), r in zip(pos, radius, strict=True):  # loop over stars (0-3), not pixels
        mask |= (yy - y0) ** 2 + (xx - x0) ** 2 <= r**2
    return mask


@dataclass
class ImageRenderer:
    """SDSS-like ugriz imaging in nanomaggies.

    Parameters
    ----------
    pixel_scale : float
        Arcsec per pixel (SDSS: 0.396).
    psf_fwhm : dict of str to float
        Gaussian PSF FWHM per band, arcsec (SDSS median seeing ~1.4").
    depth : dict of str to float
        5-sigma point-source depth per band, AB mag (SDSS: u 22.0, g 22.2, r 22.2,
        i 21.3, z 20.5; York et al. 2000), which sets the per-pixel sky noise
        through the PSF noise-equivalent area.
    electrons_per_nmgy : dict of str to float
        Detected electrons per nanomaggy (sets the galaxy's Poisson noise).
    noise : bool
        Add noise.
    star_rate : float
        Mean number of foreground stars per image (0 for none).
    bad_column_rate : float
        Probability of a bad column per band.
    """

    pixel_scale: float = 0.396
    psf_fwhm: dict = field(default_factory=lambda: {"u": 1.53, "g": 1.44, "r": 1.32,
                                                    "i": 1.26, "z": 1.29})
    depth: dict = field(default_factory=lambda: {"u": 22.0, "g": 22.2, "r": 22.2,
                                                 "i": 21.3, "z": 20.5})
    electrons_per_nmgy: dict = field(default_factory=lambda: {"u": 160.0, "g": 720.0,
                                                              "r": 940.0, "i": 700.0,
                                                              "z": 140.0})
    noise: bool = True
    star_rate: float = 0.3
    bad_column_rate: float = 0.05
    bands: tuple = ("u", "g", "r", "i", "z")

    def sky_sigma(self, band):
        """Per-pixel 1-sigma sky noise in nanomaggies.

        Parameters
        ----------
        band : str

        Returns
        -------
        sigma : float
        """
        flux5 = 10 ** (-0.4 * (self.depth[band] - 22.5))
        sig_psf = self.psf_fwhm[band] / _FWHM / self.pixel_scale
        nea = 4 * np.pi * sig_psf**2
        return flux5 / 5 / np.sqrt(nea)

    def band_matrices(self, z, nodes):
        """Maggies per solar mass formed of each template at each A_V node, and per line flux.

        Parameters
        ----------
        z : float
        nodes : `numpy.ndarray`
            Stellar A_V nodes (from `dust_nodes`).

        Returns
        -------
        cont : `numpy.ndarray`
            ``(n_templates, n_nodes, n_band)``.
        lines : `numpy.ndarray`
            ``(n_lines, n_band)`` maggies per unit line flux at 10 pc.
        """
        grid, flux = spectra.photometric_basis()
        cont, lines = [], []
        dim = spectra._dimming(z)
        for band in self.bands:  # loop over 5 bands
            wave = spectra.band_grid(band)
            # the filter moved to the rest frame: no resampling of the templates
            start, w = spectra.rest_frame_weights(z, wave, spectra.band_weights(wave, band), grid)
            seg = slice(start, start + w.size)
            trans = spectra.attenuation(0.0, grid[seg], nodes)
            cont.append((flux[:, seg] * w) @ trans.T * (dim / (1 + z)))
            lines.append(spectra.line_band_response(z, band) * dim)
        return np.stack(cont, axis=-1), np.stack(lines, axis=-1)

    def _pixel_fluxes(self, state):
        """Noise-free, PSF-free nanomaggies of every pixel, ``(n_pix, n_band)``."""
        nodes, lower, t = dust_nodes(state.av_stellar)
        cont, lines = self.band_matrices(state.z, nodes)
        per_node = (state.weights @ cont.reshape(cont.shape[0], -1)).reshape(
            -1, nodes.size, len(self.bands))
        rows = np.arange(per_node.shape[0])
        flux = (per_node[rows, lower] * (1 - t)[:, None] + per_node[rows, lower + 1] * t[:, None]
                + state.lines10 @ lines)
        return flux * 1e9

    def integrated(self, state):
        """Noise-free total flux of a galaxy in each band (nanomaggies, within the grid, no PSF).

        Parameters
        ----------
        state : `~astro_cl.surveys.mock.structure.GalaxyState`

        Returns
        -------
        flux : `numpy.ndarray`
            ``(n_band,)``.
        """
        return self._pixel_fluxes(state).sum(axis=0)

    def render(self, state, rng=None):
        """Render a galaxy state.

        Parameters
        ----------
        state : `~astro_cl.surveys.mock.structure.GalaxyState`
            Built on a grid with this renderer's pixel scale.
        rng : `numpy.random.Generator`, optional
            For noise, stars and bad columns (required when any is on).

        Returns
        -------
        out : dict
            ``data`` and ``model`` (noise-free) ``(n_band, ny, nx)`` nanomaggies,
            ``std``, ``mask`` (True = bad), ``star_mask`` ``(ny, nx)``.
        """
        flat = self._pixel_fluxes(state)
        ny, nx = state.shape
        model = np.empty((len(self.bands), ny, nx))
        for b, band in enumerate(self.bands):
            sig = self.psf_fwhm[band] / _FWHM / self.pixel_scale
            model[b] = _blur(flat[:, b].reshape(ny, nx), sig)
        star_mask = np.zeros((ny, nx), bool)
        mask = np.zeros(model.shape, bool)
        if rng is not None and self.star_rate > 0:
            pos, mag, temp, radius = _draw_stars(rng, (ny, nx), self.pixel_scale, self.star_rate)
            for (y0, x0), m, tk in zip(pos, mag, temp, strict=True):
                colours = self._star_colours(tk)
                for b, band in enumerate(self.bands):
                    sig = self.psf_fwhm[band] / _FWHM / self.pixel_scale
                    model[b] += (10 ** (-0.4 * (m - 22.5)) * colours[b]
                                 * _psf_image((ny, nx), (y0, x0), sig))
            star_mask = _star_mask((ny, nx), pos, radius)
        sky = np.array([self.sky_sigma(b) for b in self.bands])[:, None, None]
        gain = np.array([self.electrons_per_nmgy[b] for b in self.bands])[:, None, None]
        std = np.sqrt(sky**2 + np.clip(model, 0, None) / gain)
        data = model.copy()
        if self.noise and rng is not None:
            data = model + std * rng.standard_normal(model.shape)
        if rng is not None and self.bad_column_rate > 0:
            bad = rng.random(len(self.bands)) < self.bad_column_rate
            cols = rng.integers(0, nx, len(self.bands))
            mask[bad, :, cols[bad]] = True
            data[mask] = 0.0
            std = np.where(mask, np.inf, std)
        return {"data": data, "model": model, "std": std, "mask": mask, "star_mask": star_mask}

    def _star_colours(self, temp):
        """Band fluxes of a blackbody relative to its r-band flux."""
        out = []
        for band in self.bands:
            wave = spectra.band_grid(band)
            out.append(spectra.maggies_matrix(_blackbody(wave, temp)[None], wave, band)[0])
        out = np.array(out)
        return out / out[self.bands.index("r")]


@dataclass
class CubeRenderer:
    """eCALIFA V500-like cubes in 1e-16 erg/s/cm^2/A.

    Parameters
    ----------
    pixel_scale : float
        Arcsec per spaxel (0.5).
    psf_fwhm : float
        Gaussian PSF FWHM in arcsec (CALIFA: ~2.5").
    wave_start, wave_step, n_wave : float, float, int
        Wavelength grid (V500: 3749 A, 2 A, 1877 pixels).
    fwhm : float
        Spectral resolution FWHM in Angstrom (V500: ~6 A).
    sky_sigma : float
        Per-spaxel continuum noise floor (1e-16 units) redwards of 4200 A; it
        rises towards the blue end (x2.5 at 3750 A), as the V500 throughput falls.
    snr_max : float
        Ceiling on the S/N of a spectral pixel (calibration noise).
    photon_kappa : float
        Photon-noise variance per unit flux (1e-16 units).
    noise : bool
        Add noise.
    bad_fraction : float
        Fraction of randomly flagged voxels (cosmic-ray residuals).
    hexagon : bool
        Flag spaxels outside the central hexagon (the PPak field of view).
    star_rate : float
        Mean number of foreground stars per cube.
    """

    pixel_scale: float = 0.5
    psf_fwhm: float = 2.5
    wave_start: float = 3749.0
    wave_step: float = 2.0
    n_wave: int = 1877
    fwhm: float = 6.0
    sky_sigma: float = 0.002
    snr_max: float = 80.0
    photon_kappa: float = 2e-4
    noise: bool = True
    bad_fraction: float = 5e-4
    hexagon: bool = True
    star_rate: float = 0.3

    @property
    def wave(self):
        """`numpy.ndarray`: wavelength of each spectral pixel (Angstrom)."""
        return self.wave_start + self.wave_step * np.arange(self.n_wave)

    def sky_curve(self):
        """Noise floor per wavelength (1e-16 units).

        Returns
        -------
        sigma : `numpy.ndarray`
        """
        return self.sky_sigma * (1 + 1.5 * np.exp(-(self.wave - self.wave_start) / 250.0))

    def render(self, state, rng=None):
        """Render a galaxy state as a cube.

        Parameters
        ----------
        state : `~astro_cl.surveys.mock.structure.GalaxyState`
        rng : `numpy.random.Generator`, optional
            For noise and artefacts.

        Returns
        -------
        out : dict
            ``flux``, ``model``, ``error`` ``(n_wave, ny, nx)`` float32,
            ``badpix`` uint8, ``errweight``, ``flat``, ``gaia_mask`` ``(ny, nx)`` uint8.
        """
        ny, nx = state.shape
        wave = self.wave
        edges = np.concatenate([wave - self.wave_step / 2, [wave[-1] + self.wave_step / 2]])
        a, mix = weight_factors(state.weights)
        g, tau = dust_expansion(state.z, wave, state.av_stellar)
        spec = mix @ spectra.observed_templates(state.z, wave)  # (r, n_wave)
        comps = (spec[:, None, :] * tau[None]).reshape(-1, wave.size)
        coeffs = (a[:, :, None] * g[:, None, :]).reshape(a.shape[0], -1)
        prof = spectra.line_profiles(state.z, edges, self.fwhm) * spectra._dimming(state.z)
        sig = self.psf_fwhm / _FWHM / self.pixel_scale
        amp = np.concatenate([coeffs, state.lines10], axis=1)
        amp = _blur(amp.T.reshape(-1, ny, nx), sig).reshape(amp.shape[1], -1)
        basis = np.concatenate([comps, prof], axis=0) * 1e16
        # (wavelength, pixel) order straight from the product: no transpose of the cube
        model = (basis.T.astype(np.float32) @ amp.astype(np.float32)).reshape(wave.size, ny, nx)
        gaia = np.zeros((ny, nx), np.uint8)
        badpix = np.zeros(model.shape, np.uint8)
        if rng is not None and self.star_rate > 0:
            pos, mag, temp, radius = _draw_stars(rng, (ny, nx), self.pixel_scale, self.star_rate)
            if pos.shape[0]:
                for (y0, x0), m, tk in zip(pos, mag, temp, strict=True):
                    bb = _blackbody(wave, tk)
                    norm = spectra.maggies_matrix(bb[None], wave, "r")[0]
                    sed = bb * 10 ** (-0.4 * m) / norm * 1e16
                    psf = _psf_image((ny, nx), (y0, x0), sig)[None]
                    # a slab of wavelengths at a time: no cube-sized float64 temporary
                    for lo in range(0, wave.size, _SLAB):
                        model[lo:lo + _SLAB] += (sed[lo:lo + _SLAB, None, None]
                                                 * psf).astype(np.float32)
                gaia = _star_mask((ny, nx), pos, radius).astype(np.uint8)
        # the noise model and the noisy cube in two cube-sized arrays, in place; the
        # same float32 operations, in the same order, as written out:
        #   error = sqrt(sky**2 + kappa * m+ + (m+ / snr_max)**2),  m+ = clip(model, 0)
        #   flux = model + error * N(0, 1)
        sky = self.sky_curve().astype(np.float32)[:, None, None]
        error = np.clip(model, 0, None)
        scratch = np.divide(error, self.snr_max)
        np.square(scratch, out=scratch)
        error *= self.photon_kappa
        error += sky**2
        error += scratch
        np.sqrt(error, out=error)
        if self.noise and rng is not None:
            flux = rng.standard_normal(dtype=np.float32, out=scratch)
            flux *= error
            flux += model
        else:
            flux = scratch
            np.copyto(flux, model)
        if self.hexagon:
            badpix |= self._outside_hexagon((ny, nx))[None]
        if rng is not None and self.bad_fraction > 0:
            n_bad = rng.binomial(model.size, self.bad_fraction)
            idx = rng.integers(0, model.size, n_bad)
            badpix.reshape(-1)[idx] = 1
        bad = badpix != 0
        np.copyto(flux, np.float32(0.0), where=bad)
        np.copyto(error, np.float32(1e10), where=bad)
        return {"flux": flux, "model": model, "error": error, "badpix": badpix,
                "errweight": np.ones((ny, nx), np.float32), "flat": np.ones((ny, nx), np.float32),
                "gaia_mask": gaia}

    @staticmethod
    def _outside_hexagon(shape):
        """Return 1 outside the largest flat-topped hexagon inscribed in the grid."""
        ny, nx = shape
        yy, xx = np.indices(shape, dtype=float)
        x = np.abs(xx - (nx - 1) / 2)
        y = np.abs(yy - (ny - 1) / 2)
        r = min(nx / 2, ny / np.sqrt(3))
        inside = (y <= np.sqrt(3) / 2 * r) & (np.sqrt(3) * x + y <= np.sqrt(3) * r)
        return (~inside).astype(np.uint8)
