"""Stellar-population basis of the mock galaxies: the MaStar SSP grid, or kcorrect as a fallback.

The default basis is the MaStar simple-stellar-population (SSP) grid v1.0 of
Maraston et al. (2020, MNRAS 496, 2962): 9 ages (3 Myr - 14 Gyr) x 6
metallicities ([Z/H] = -1.35 ... +0.35), Salpeter IMF, built from the
empirical MaStar stellar library (R ~ 1800, 3622-10352 A). The 54 spectra are
read in place from the ``sdss-mangadap`` package (BSD-3;
``mangadap/data/spectral_templates/mastar_ssp_v1.0``), which ships them
normalised to a median of one. They are turned into a physical basis once per
process (`load_basis` is cached):

* wavelengths from vacuum to air (Morton 2000, as in the IAU convention), so
  that they match the air wavelengths of CALIFA and of our emission lines;
* luminosity per solar mass formed from the Maraston & Stromback (2011) MILES
  SSPs of the same evolutionary code (M11-MILES, Salpeter, shipped by the same
  package): the mean flux in 5400-5600 A of each MaStar SSP is set to
  ``L(t, [Z/H]) = A(log t) + B(log t) [Z/H]``, with ``A`` the M11 solar-metallicity
  sequence and ``B`` the metallicity slope fitted to the M11 grid (linear in
  log t, extrapolated below [Z/H] = -0.33 and above +0.30, the M11 range);
* surviving stellar mass (stars + remnants) per solar mass formed from the
  Salpeter IMF (0.1-100 Msun), main-sequence lifetimes ``10 Gyr (m/Msun)**-2.5``
  and the remnant masses of Renzini & Ciotti (1993), which M05/M11 use
  (0.71 at 13 Gyr);
* a common resolution of 5.8 A FWHM in the rest frame (the V500 6 A at the
  median redshift of the mocks): each spectrum is convolved with a Gaussian of
  the quadrature difference to its native resolution (its ``SRES`` extension);
* below 3640 A and above 10300 A (the SDSS u and z bands reach 2760 and
  11200 A in the rest frame at the mocks' redshifts) each SSP is continued with
  the non-negative combination of the five kcorrect templates that best fits
  it in 3650-4200 A (7900-10300 A), scaled to join it. The u- and z-band
  fluxes of young populations therefore carry the kcorrect templates' shape.

Star-formation histories are binned on the grid's ages: the SSP of age
``a_i`` holds the mass formed between the geometric mid-points of its
neighbours (`SFH_EDGES`); the star-formation rate is the mass formed in the
last `SFR_TIMESCALE` (56 Myr, the three youngest bins) divided by that time.

When ``sdss-mangadap`` is not installed, `load_basis` warns and falls back to
the five kcorrect templates (Blanton & Roweis 2007), whose ages span only
0.15-7.35 Gyr and whose metallicities cluster near solar: a mock made with
them cannot cover the age and metallicity ranges of real galaxies.
"""

import functools
import importlib.util
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Nebular emission lines clipped from template spectra (rest air wavelength, Angstrom).
NEBULAR_LINES = (3727.4, 3869.0, 3968.5, 4101.7, 4340.5, 4861.3, 4958.9, 5006.8, 5875.6, 6300.3,
            6548.0, 6562.8, 6583.4, 6716.4, 6730.8, 7135.8, 9068.6, 9530.6)


def kcorrect_data_dir():
    """Return the data folder of the installed kcorrect package (filters, templates).

    Returns
    -------
    path : `~pathlib.Path`
    """
    # located, not imported: importing kcorrect imports matplotlib.pyplot (seconds)
    spec = importlib.util.find_spec("kcorrect")
    if spec is None or not spec.submodule_search_locations:
        msg = "the kcorrect package (SDSS filters and templates of the mocks) is not installed"
        raise ModuleNotFoundError(msg)
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "data"


def clip_emission(wave, flux, half_width=14.0):
    """Clip nebular emission lines to the interpolated continuum, keeping absorption.

    Parameters
    ----------
    wave : `numpy.ndarray`
        Wavelength in Angstrom, ``(n_wave,)``.
    flux : `numpy.ndarray`
        Spectra, ``(n_spectra, n_wave)``.
    half_width : float, optional
        Half-width in Angstrom of the window clipped around each line.

    Returns
    -------
    clipped : `numpy.ndarray`
    """
    out = flux.copy()
    for line in NEBULAR_LINES:
        inside = np.abs(wave - line) < half_width
        if not inside.any():
            continue
        idx = np.flatnonzero(inside)
        lo, hi = max(idx[0] - 1, 0), min(idx[-1] + 1, wave.size - 1)
        frac = (wave[idx] - wave[lo]) / (wave[hi] - wave[lo])
        cont = out[:, lo, None] * (1 - frac) + out[:, hi, None] * frac
        out[:, idx] = np.minimum(out[:, idx], cont)
    return out

__all__ = [
    "NEBULAR_LINES",
    "SFH_AGES",
    "SFH_EDGES",
    "SFH_ZH",
    "SFR_TIMESCALE",
    "Z_SUN",
    "SpectralBasis",
    "clip_emission",
    "grid_directory",
    "kcorrect_data_dir",
    "load_basis",
    "load_kcorrect_basis",
    "load_ssp_basis",
    "surviving_fraction",
    "vacuum_to_air",
]

#: Solar metallicity (mass fraction) of the grid's [Z/H] scale (Maraston 2005; BC03).
Z_SUN = 0.02
#: Ages of the SSP grid (Gyr), the bins of every star-formation history.
SFH_AGES = np.array([10**-2.5, 0.01, 10**-1.5, 0.1, 0.3, 1.0, 3.0, 9.0, 14.0])
#: [Z/H] of the SSP grid (dex, relative to `Z_SUN`).
SFH_ZH = np.array([-1.35, -1.0, -0.7, -0.33, 0.0, 0.35])
#: Age of the Universe (Gyr, flat LCDM H0 = 70, Om0 = 0.3): no star is older.
T_UNIVERSE = 13.47
#: Lookback-time edges (Gyr) of the bins: geometric mid-points between the grid ages.
SFH_EDGES = np.concatenate([[0.0], np.sqrt(SFH_AGES[1:] * SFH_AGES[:-1]), [T_UNIVERSE]])
#: Averaging time of the star-formation rate (yr): the three youngest bins.
SFR_TIMESCALE = float(SFH_EDGES[3] * 1e9)
#: Rest-frame resolution of the basis (FWHM, Angstrom).
BASIS_FWHM = 5.8
_GRID_NAME = "mastar_ssp_v1.0"
#: File names round 10**-2.5 and 10**-1.5 Gyr (the grid's README gives the exact ages).
_NAME_AGES = {0.003: 10**-2.5, 0.032: 10**-1.5}
_PC10_CM = 3.0856775814913673e19
_WAVE = (2600.0, 11600.0, 1.0)  # rest-frame grid of the basis: start, stop, step (Angstrom)
_BLUE_FIT, _BLUE_JOIN = (3650.0, 4200.0), (3640.0, 3690.0)
_RED_FIT, _RED_JOIN = (7900.0, 10300.0), (10250.0, 10300.0)


@dataclass(frozen=True, eq=False)  # hashed by identity: one cached basis per process
class SpectralBasis:
    """Template spectra and the per-template quantities the truth maps are computed from.

    Attributes
    ----------
    wave : `numpy.ndarray`
        Rest-frame air wavelength (Angstrom), ``(n_wave,)``.
    flux : `numpy.ndarray`
        Flux density at 10 pc per solar mass formed (erg/s/cm^2/A), ``(n_templates, n_wave)``.
    age : `numpy.ndarray`
        Age of each template (Gyr; formed-mass weighted for composite templates).
    metallicity : `numpy.ndarray`
        Metallicity Z (mass fraction).
    mremain : `numpy.ndarray`
        Surviving stellar mass (stars and remnants) per solar mass formed.
    young : `numpy.ndarray`
        Fraction of each template's formed mass formed in the last ``sfr_timescale``.
    sfr_timescale : float
        Averaging time of the star-formation rate (yr).
    f5635 : `numpy.ndarray`
        Intrinsic flux density at 5635 A (mean over 5585-5685 A) per solar mass formed.
    cell_map : `numpy.ndarray` or None
        ``(n_cells, n_templates)``: how a star-formation history binned on the
        `SFH_AGES` x `SFH_ZH` cells maps onto the templates; None when the
        templates are the cells (the SSP grid).
    kind : str
        ``"ssp"`` or ``"kcorrect"``.
    source : str
        Where the templates were read from.
    """

    wave: np.ndarray
    flux: np.ndarray
    age: np.ndarray
    metallicity: np.ndarray
    mremain: np.ndarray
    young: np.ndarray
    sfr_timescale: float
    f5635: np.ndarray
    cell_map: np.ndarray | None
    kind: str
    source: str

    @property
    def n_templates(self):
        """int: number of templates."""
        return self.flux.shape[0]

    @property
    def log_z(self):
        """`numpy.ndarray`: log10(Z / Zsun) of each template."""
        return np.log10(self.metallicity / Z_SUN)

    def to_templates(self, cells):
        """Turn masses formed per (age, [Z/H]) cell into masses formed per template.

        Parameters
        ----------
        cells : `numpy.ndarray`
            ``(n, len(SFH_AGES) * len(SFH_ZH))``, age-major.

        Returns
        -------
        weights : `numpy.ndarray`
            ``(n, n_templates)``.
        """
        return cells if self.cell_map is None else cells @ self.cell_map


def vacuum_to_air(wave):
    """Convert vacuum wavelengths to air (Morton 2000, eq. 3; the IAU standard).

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom.

    Returns
    -------
    air : `numpy.ndarray`
    """
    wave = np.asarray(wave, float)
    s2 = (1e4 / wave) ** 2
    n = 1 + 8.34254e-5 + 2.406147e-2 / (130 - s2) + 1.5998e-4 / (38.9 - s2)
    return wave / n


def surviving_fraction(age_gyr):
    """Stellar mass (living stars and remnants) left per solar mass formed, Salpeter IMF.

    Salpeter (1955) IMF between 0.1 and 100 Msun; main-sequence lifetime
    ``10 Gyr (m/Msun)**-2.5``; remnants of Renzini & Ciotti (1993): white dwarfs
    ``0.077 m + 0.48`` below 8.5 Msun, 1.4 Msun neutron stars up to 40 Msun,
    black holes of half the initial mass above.

    Parameters
    ----------
    age_gyr : array_like
        Age of the population (Gyr).

    Returns
    -------
    fraction : `numpy.ndarray`
    """
    age = np.atleast_1d(np.asarray(age_gyr, float))
    m = np.geomspace(0.1, 100.0, 4001)
    phi = m**-2.35
    remnant = np.where(m < 8.5, 0.077 * m + 0.48, np.where(m < 40, 1.4, 0.5 * m))
    m_to = (np.clip(age, 1e-6, None) / 10.0) ** (-1 / 2.5)
    alive = m[None, :] <= m_to[:, None]
    mass = np.where(alive, m[None, :], np.minimum(remnant, m)[None, :]) * phi[None, :]
    total = np.trapezoid(m * phi, m)
    out = np.trapezoid(mass, m, axis=1) / total
    return out.reshape(np.shape(age_gyr)) if np.ndim(age_gyr) else out


def grid_directory():
    """Return the MaStar SSP directory of the installed ``sdss-mangadap``, or None.

    The package is located without importing it.

    Returns
    -------
    path : `~pathlib.Path` or None
    """
    spec = importlib.util.find_spec("mangadap")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "spectral_templates" / _GRID_NAME
        if path.is_dir() and any(path.glob("MaStar-SSP-*.fits.gz")):
            return path
    return None


def _kcorrect_templates():
    """Read the five kcorrect templates (emission lines clipped) and their SFH fractions."""
    from astropy.io import fits

    path = kcorrect_data_dir() / "templates" / "kcorrect-default-v4.fits"
    with fits.open(path, memmap=False) as hdul:
        wave = np.asarray(hdul["FLUX"].data["wave"][0], dtype=float)
        flux = np.asarray(hdul["FLUX"].data["flux"][0], dtype=float)
        mremain = np.asarray(hdul["MREMAIN"].data, float) / np.asarray(hdul["INTSFH"].data, float)
        mets = np.asarray(hdul["METS"].data, float)
        m300 = np.clip(np.asarray(hdul["M300"].data, float), 0, 1)
        m1000 = np.clip(np.asarray(hdul["M1000"].data, float), 0, 1)
    keep = (wave > 2500) & (wave < 12000)
    wave, flux = wave[keep], clip_emission(wave[keep], flux[:, keep])
    return wave, flux, mremain, mets, m300, m1000, str(path)


def _f5635(wave, flux):
    win = (wave > 5585) & (wave < 5685)
    return flux[:, win].mean(axis=1)


@functools.lru_cache(maxsize=1)
def load_kcorrect_basis():
    """Return the five kcorrect templates as a basis (the fallback; cached).

    The templates carry no ages. They are defined from the star-formation
    fractions the file gives (mass formed in the last 0.3 and 1 Gyr), assuming
    a constant rate in [0, 0.3], [0.3, 1] and [1, 13.7] Gyr (mid-points 0.15,
    0.65, 7.35 Gyr). The star-formation rate is the mass formed in the last
    300 Myr over 300 Myr. A cell (age, [Z/H]) of a star-formation history maps
    onto the non-negative template mixture closest to its log age and [Z/H].

    Returns
    -------
    basis : `SpectralBasis`
    """
    from scipy.optimize import nnls

    wave, flux, mremain, mets, m300, m1000, source = _kcorrect_templates()
    fractions = np.stack([m300, np.clip(m1000 - m300, 0, 1), 1 - np.maximum(m1000, m300)])
    age = np.array([0.15, 0.65, 7.35]) @ fractions
    zh = np.log10(mets / Z_SUN)
    # unit sum strongly enforced; log age and [Z/H] matched as well as the five allow
    design = np.vstack([np.log10(age), zh, 30.0 * np.ones(5)])
    cells = []
    for a in SFH_AGES:
        for z in SFH_ZH:
            cells.append(nnls(design, np.array([np.log10(a), z, 30.0]))[0])
    cell_map = np.asarray(cells)
    cell_map /= cell_map.sum(axis=1, keepdims=True)
    return SpectralBasis(wave=wave, flux=flux, age=age, metallicity=mets, mremain=mremain,
                         young=m300, sfr_timescale=3e8, f5635=_f5635(wave, flux),
                         cell_map=cell_map, kind="kcorrect", source=source)


def _m11_luminosity(directory):
    """Fit log L(5400-5600 A) per solar mass formed of the M11-MILES SSPs: A(log t), B(log t)."""
    from astropy.io import fits

    m11 = directory.parent / "m11_miles"
    files = sorted(m11.glob("M11_MILES_*.fits"))
    if not files:
        msg = f"{m11}: no M11-MILES SSPs to normalise the MaStar grid"
        raise FileNotFoundError(msg)
    rows = []
    for path in files:
        with fits.open(path, memmap=False) as hdul:
            hdr, data = hdul[0].header, np.asarray(hdul[0].data, float)
        wave = hdr["CRVAL1"] + hdr["CDELT1"] * np.arange(data.size)
        win = (wave > 5400) & (wave < 5600)
        rows.append((float(hdr["AGE"]), np.log10(float(hdr["Z"]) / Z_SUN),
                     np.log10(data[win].mean())))
    rows = np.asarray(rows)
    solar = rows[np.abs(rows[:, 1]) < 1e-6]
    solar = solar[np.argsort(solar[:, 0])]
    slopes = []
    for age in np.unique(rows[:, 0]):
        s = rows[rows[:, 0] == age]
        if np.ptp(s[:, 1]) > 0.3:
            slopes.append((np.log10(age), np.polyfit(s[:, 1], s[:, 2], 1)[0]))
    slopes = np.asarray(slopes)
    b_fit = np.polyfit(slopes[:, 0], slopes[:, 1], 1)
    lo, hi = slopes[:, 0].min(), slopes[:, 0].max()

    def log_l(age, zh):
        lt = np.log10(age)
        a = np.interp(lt, np.log10(solar[:, 0]), solar[:, 2])
        return a + np.polyval(b_fit, np.clip(lt, lo, hi)) * zh

    return log_l


def _broadening_matrix(wave, fwhm_native, fwhm_target):
    """Sparse Gaussian convolution with the quadrature difference of two resolutions."""
    from scipy import sparse

    step = wave[1] - wave[0]
    sigma = np.sqrt(np.clip(fwhm_target**2 - fwhm_native**2, (0.5 * step) ** 2, None)) / 2.3548
    half = int(np.ceil(4 * sigma.max() / step))
    offsets = np.arange(-half, half + 1)
    cols = np.clip(np.arange(wave.size)[:, None] + offsets[None, :], 0, wave.size - 1)
    kern = np.exp(-0.5 * (offsets[None, :] * step / sigma[:, None]) ** 2)
    kern /= kern.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(wave.size), offsets.size)
    return sparse.csr_matrix((kern.ravel(), (rows, cols.ravel())), shape=(wave.size, wave.size))


def _extend(wave, flux, kc_flux, fit, join, blue):
    """Continue each spectrum outside its range with its best kcorrect mixture, scaled to join."""
    from scipy.optimize import nnls

    infit = (wave >= fit[0]) & (wave <= fit[1])
    injoin = (wave >= join[0]) & (wave <= join[1])
    out = flux.copy()
    outside = wave < join[0] if blue else wave > join[1]
    # linear taper across the join window, from the extension to the SSP
    t = np.clip((wave - join[0]) / (join[1] - join[0]), 0, 1)
    w_ssp = t if blue else 1 - t
    for k in range(flux.shape[0]):  # 54 spectra, once per process
        c = nnls(kc_flux[:, infit].T, flux[k, infit])[0]
        ext = c @ kc_flux
        ext *= flux[k, injoin].mean() / max(ext[injoin].mean(), 1e-300)
        band = injoin | outside
        out[k, band] = w_ssp[band] * flux[k, band] + (1 - w_ssp[band]) * ext[band]
        out[k, outside] = ext[outside]
    return out


@functools.lru_cache(maxsize=1)
def load_ssp_basis(directory=None):
    """Read the MaStar SSP grid and make it a physical basis (cached; see the module notes).

    Parameters
    ----------
    directory : str or `~pathlib.Path`, optional
        The ``mastar_ssp_v1.0`` directory; default `grid_directory`.

    Returns
    -------
    basis : `SpectralBasis`

    Raises
    ------
    FileNotFoundError
        If the grid (or the M11-MILES SSPs beside it) is not there.
    ValueError
        If the files do not form the expected 9 x 6 grid.
    """
    from astropy.io import fits

    directory = Path(directory) if directory is not None else grid_directory()
    if directory is None or not directory.is_dir():
        msg = f"MaStar SSP grid not found (looked for {_GRID_NAME} in sdss-mangadap)"
        raise FileNotFoundError(msg)
    pattern = re.compile(r"MaStar-SSP-A(\d+\.\d+)-Z([+-]\d+\.\d+)\.fits\.gz$")
    spectra_in, keys = {}, []
    for path in sorted(directory.glob("MaStar-SSP-*.fits.gz")):
        match = pattern.search(path.name)
        if match is None:
            continue
        age = float(match.group(1))
        age = _NAME_AGES.get(age, age)
        zh = float(match.group(2))
        with fits.open(path, memmap=False) as hdul:
            hdr = hdul[0].header
            flux = np.asarray(hdul[0].data, float)
            sres = np.asarray(hdul["SRES"].data, float)
        vac = 10 ** (hdr["CRVAL1"] + hdr["CDELT1"] * np.arange(flux.size))
        spectra_in[(age, zh)] = (vacuum_to_air(vac), flux, sres)
        keys.append((age, zh))
    ia = [int(np.argmin(np.abs(np.log10(SFH_AGES / a)))) for a, _ in keys]
    iz = [int(np.argmin(np.abs(SFH_ZH - z))) for _, z in keys]
    cells = {(i, j): key for i, j, key in zip(ia, iz, keys, strict=True)
             if abs(np.log10(SFH_AGES[i] / key[0])) < 0.01 and abs(SFH_ZH[j] - key[1]) < 0.01}
    if len(cells) != SFH_AGES.size * SFH_ZH.size:
        msg = (f"{directory}: expected the {SFH_AGES.size} x {SFH_ZH.size} MaStar SSP grid "
               f"(ages {SFH_AGES.round(4).tolist()} Gyr, [Z/H] {SFH_ZH.tolist()}), "
               f"found {len(cells)} of its spectra")
        raise ValueError(msg)
    log_l = _m11_luminosity(directory)
    wave = np.arange(_WAVE[0], _WAVE[1] + _WAVE[2] / 2, _WAVE[2])  # rest-frame air grid
    flux = np.zeros((len(cells), wave.size))
    fwhm = np.zeros((len(cells), wave.size))
    ages, zhs = np.zeros(len(cells)), np.zeros(len(cells))
    for n, (i, j) in enumerate(sorted(cells)):
        age, zh = SFH_AGES[i], SFH_ZH[j]
        w, f, sres = spectra_in[cells[(i, j)]]
        win = (w > 5400) & (w < 5600)
        # erg/s/A per solar mass formed, then flux density at 10 pc
        scale = 10 ** log_l(age, zh) / f[win].mean() / (4 * np.pi * _PC10_CM**2)
        inside = (wave >= w[0]) & (wave <= w[-1])
        flux[n, inside] = np.interp(wave[inside], w, f) * scale
        fwhm[n] = np.interp(wave, w, w / sres)
        ages[n], zhs[n] = age, zh
    # one kernel per spectrum would differ by < 2 per cent in width: use the median resolution
    kernel = _broadening_matrix(wave, np.median(fwhm, axis=0), BASIS_FWHM)
    flux = (kernel @ flux.T).T
    kc_wave, kc_flux = _kcorrect_templates()[:2]
    kc = np.stack([np.interp(wave, kc_wave, f) for f in kc_flux])
    flux = _extend(wave, flux, kc, _BLUE_FIT, _BLUE_JOIN, blue=True)
    flux = _extend(wave, flux, kc, _RED_FIT, _RED_JOIN, blue=False)
    young = (ages * 1e9 < SFR_TIMESCALE).astype(float)
    return SpectralBasis(wave=wave, flux=flux, age=ages, metallicity=Z_SUN * 10**zhs,
                         mremain=surviving_fraction(ages), young=young,
                         sfr_timescale=SFR_TIMESCALE, f5635=_f5635(wave, flux), cell_map=None,
                         kind="ssp", source=str(directory))


@functools.lru_cache(maxsize=1)
def load_basis():
    """Return the basis of the mocks: the MaStar SSP grid, or kcorrect (warning) without it.

    Returns
    -------
    basis : `SpectralBasis`

    Warns
    -----
    astro_cl.exceptions.AstroCLWarning
        When ``sdss-mangadap`` (the MaStar SSP grid) is not installed: the
        fallback's ages span only 0.15-7.35 Gyr (``pip install astro_cl[ssp]``).
    """
    from astro_cl.exceptions import AstroCLWarning

    directory = grid_directory()
    if directory is not None:
        return load_ssp_basis(directory)
    warnings.warn("the MaStar SSP grid (package sdss-mangadap) is not installed: the mock "
                  "galaxies use the five kcorrect templates, whose mass-weighted ages span only "
                  "0.15-7.35 Gyr and whose metallicities cluster near solar; install it with "
                  "pip install 'astro_cl[ssp]'", AstroCLWarning, stacklevel=2)
    return load_kcorrect_basis()
