"""Renderers: one galaxy state to SDSS-like ugriz images or eCALIFA-like V500 cubes.

Both renderers use the same linear decomposition of the pixels. The stellar
attenuation is tabulated on a grid of A_V nodes (0.1 mag apart) and every
pixel's continuum is written as a linear interpolation between the two nodes
that bracket its A_V (accurate to 0.2 per cent), so a pixel is

``flux = C @ D + lines @ P``

with ``C`` ``(n_pix, n_templates * n_nodes)`` coefficients (mass formed x
interpolation weight), ``D`` the attenuated, redshifted templates and ``P`` the
line profiles. For images ``D`` and ``P`` are integrated through the SDSS
filters once per galaxy; for cubes they are sampled on the 2 A grid. The PSF is
applied to ``C`` and to the line fluxes (a Gaussian convolution is linear), so
no pixel or spaxel is ever visited in a Python loop.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from astro_cl.surveys.mock import spectra

__all__ = ["CubeRenderer", "ImageRenderer", "component_coefficients"]

_AV_STEP = 0.1
_FWHM = 2.3548200450309493


def component_coefficients(state, step=_AV_STEP):
    """Coefficients of the (template, A_V node) components of every pixel.

    Parameters
    ----------
    state : `~astro_cl.surveys.mock.structure.GalaxyState`
    step : float, optional
        Spacing of the A_V nodes.

    Returns
    -------
    coeffs : `numpy.ndarray`
        ``(n_pix, n_used)`` solar masses formed per component.
    nodes : `numpy.ndarray`
        A_V of the used nodes.
    templates : `numpy.ndarray`
        Template index of each used component.
    """
    av = state.av_stellar
    nodes = spectra.attenuation_nodes(float(av.max()), step)
    nn = nodes.size
    j = np.minimum((av / step).astype(int), nn - 2)
    t = np.clip(av / step - j, 0, 1)
    w = state.weights
    nt = w.shape[1]
    coeffs = np.zeros((w.shape[0], nt * nn))
    rows = np.arange(w.shape[0])
    for k in range(nt):  # loop over the 5 templates, not pixels
        coeffs[rows, k * nn + j] += w[:, k] * (1 - t)
        coeffs[rows, k * nn + j + 1] += w[:, k] * t
    used = np.flatnonzero(coeffs.any(axis=0))
    return coeffs[:, used], np.tile(nodes, nt)[used], np.repeat(np.arange(nt), nn)[used]


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

    def band_matrices(self, z, nodes, templates):
        """Maggies per solar mass formed of each component, and per unit line flux, per band.

        Parameters
        ----------
        z : float
        nodes, templates : `numpy.ndarray`
            From `component_coefficients`.

        Returns
        -------
        cont : `numpy.ndarray`
            ``(n_comp, n_band)``.
        lines : `numpy.ndarray`
            ``(n_lines, n_band)`` maggies per unit line flux at 10 pc.
        """
        cont = np.empty((nodes.size, len(self.bands)))
        lines = np.empty((len(spectra.LINES), len(self.bands)))
        unique_nodes = np.unique(nodes)
        dim = spectra._dimming(z)
        for b, band in enumerate(self.bands):  # loop over 5 bands
            wave = spectra.band_grid(band)
            comps = spectra.continuum_components(z, wave, unique_nodes)
            mag = spectra.maggies_matrix(comps, wave, band).reshape(-1, unique_nodes.size)
            cont[:, b] = mag[templates, np.searchsorted(unique_nodes, nodes)]
            lines[:, b] = spectra.line_band_response(z, band) * dim
        return cont, lines

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
        coeffs, nodes, templates = component_coefficients(state)
        cont, lines = self.band_matrices(state.z, nodes, templates)
        return (coeffs.sum(axis=0) @ cont + state.lines10.sum(axis=0) @ lines) * 1e9

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
        coeffs, nodes, templates = component_coefficients(state)
        cont, lines = self.band_matrices(state.z, nodes, templates)
        flat = (coeffs @ cont + state.lines10 @ lines) * 1e9  # nanomaggies
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
        coeffs, nodes, templates = component_coefficients(state)
        uniq = np.unique(nodes)
        comps = spectra.continuum_components(state.z, wave, uniq).reshape(
            -1, uniq.size, wave.size)
        spec = comps[templates, np.searchsorted(uniq, nodes)]
        prof = spectra.line_profiles(state.z, edges, self.fwhm) * spectra._dimming(state.z)
        sig = self.psf_fwhm / _FWHM / self.pixel_scale
        amp = np.concatenate([coeffs, state.lines10], axis=1)
        amp = _blur(amp.T.reshape(-1, ny, nx), sig).reshape(amp.shape[1], -1).T
        basis = np.concatenate([spec, prof], axis=0) * 1e16
        # contiguous in (wave, y, x): every later pass over the cube is elementwise
        model = np.ascontiguousarray(
            (amp.astype(np.float32) @ basis.astype(np.float32)).T).reshape(wave.size, ny, nx)
        gaia = np.zeros((ny, nx), np.uint8)
        badpix = np.zeros(model.shape, np.uint8)
        if rng is not None and self.star_rate > 0:
            pos, mag, temp, radius = _draw_stars(rng, (ny, nx), self.pixel_scale, self.star_rate)
            if pos.shape[0]:
                for (y0, x0), m, tk in zip(pos, mag, temp, strict=True):
                    bb = _blackbody(wave, tk)
                    norm = spectra.maggies_matrix(bb[None], wave, "r")[0]
                    sed = bb * 10 ** (-0.4 * m) / norm * 1e16
                    model += (sed[:, None, None]
                              * _psf_image((ny, nx), (y0, x0), sig)[None]).astype(np.float32)
                gaia = _star_mask((ny, nx), pos, radius).astype(np.uint8)
        sky = self.sky_curve().astype(np.float32)[:, None, None]
        pos_model = np.clip(model, 0, None)
        error = np.sqrt(sky**2 + self.photon_kappa * pos_model + (pos_model / self.snr_max) ** 2)
        flux = model
        if self.noise and rng is not None:
            flux = model + error * rng.standard_normal(model.shape, dtype=np.float32)
        if self.hexagon:
            badpix |= self._outside_hexagon((ny, nx))[None]
        if rng is not None and self.bad_fraction > 0:
            n_bad = rng.binomial(model.size, self.bad_fraction)
            idx = rng.integers(0, model.size, n_bad)
            badpix.reshape(-1)[idx] = 1
        bad = badpix != 0
        flux = np.where(bad, np.float32(0.0), flux).astype(np.float32, copy=False)
        error = np.where(bad, np.float32(1e10), error).astype(np.float32, copy=False)
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
