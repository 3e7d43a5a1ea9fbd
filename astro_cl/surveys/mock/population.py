"""Population draws of the mock galaxies: mass, star formation, morphology, size, redshift.

Every galaxy ``i`` of a survey with seed ``s`` draws from its own generator,
``numpy.random.SeedSequence(s, spawn_key=(i, 0))``, so galaxy ``i`` is the
same whatever the number of galaxies or worker processes.

Two selections reproduce the two kinds of survey (``selection=``):

* ``"diameter"`` (eCALIFA-like, the default): log M is the two-Gaussian
  mixture fitted to the eCALIFA catalogue (0.74 N(10.62, 0.44) + 0.26
  N(9.40, 0.70), truncated to [8.0, 12.0]); sizes follow the eCALIFA size-mass
  relations (log Re = 0.364 log M - 3.455 for E/S0, 0.261 log M - 2.084 for
  spirals, 0.22 dex scatter); the ratio of the angular half-mass radius to the
  field is drawn from the eCALIFA distribution of Re / 74" (log-normal, median
  0.157, sigma 0.58 in ln, kept in 0.04-0.5), which sets the redshift. These
  are calibrated on the catalogue, not predicted.
* ``"flux"`` (SDSS main sample at z < 0.08, r < 17.77; Strauss et al. 2002):
  each galaxy takes the redshift and absolute r magnitude of a random real
  galaxy of kcorrect's SDSS test set (3,600 with 0.005 < z < 0.08), and its
  mass from the mocks' own mean observed-frame log(M/L_r) =
  -2.435 + 0.287 log M (fitted to them) with 0.14 dex scatter; the redshift
  and luminosity distributions are calibrated on that set, not predicted;
  sizes from Shen et al. (2003): late types
  R = 0.1 M^0.14 (1 + M/3.98e10)^0.25 kpc (0.18 dex scatter), early types
  log R = 0.56 log M - 5.54 (0.12 dex). Large, massive galaxies at low redshift
  overflow the field, as in real cutouts.

Relations common to both (z ~ 0):

* environment: void / wall / filament / cluster with probabilities
  0.10 / 0.35 / 0.35 / 0.20;
* quenched fraction: a logistic in log M whose mid-point depends on environment
  (void 10.95, wall 10.7, filament 10.55, cluster 10.2; width 0.3 dex), the
  separable mass + environment quenching of Peng et al. (2010), with mid-points
  set to give the eCALIFA shares of blue cloud, green valley and red sequence;
* star-forming main sequence log SFR = 0.76 log M - 7.64 (Renzini & Peng 2015)
  with 0.3 dex scatter; green valley 0.75-1.35 dex and red sequence ~2 dex below;
* star-formation histories: the stars form from a lookback time ``t_form``
  that grows with mass (downsizing, Gallazzi et al. 2005; Perez et al. 2013):
  13.47 Gyr minus an exponential delay of mean 4 Gyr x 10**(-(log M - 9)/2);
  discs start up to 3 Gyr later than bulges; green-valley galaxies were
  quenched 0.3-2.5 Gyr ago, red-sequence ones 2-7 Gyr ago (earlier when
  massive);
* stellar metallicity: the mass-weighted [Z/H] - mass relation of Gallazzi et
  al. (2005, table 2 medians) with a scatter falling from 0.3 dex at
  log M = 9 to 0.1 dex at 11.5, +0.1 dex on the red sequence below 10^10.25
  Msun fading to 0 at 10^10.75 (Peng, Maiolino & Cochrane 2015), a radial
  gradient N(-0.1, 0.05) dex per Re (Sanchez-Blazquez et al. 2014; Gonzalez
  Delgado et al. 2015) and 0.3 dex of enrichment over each history (older
  stars poorer); gas 12 + log(O/H) = 8.68 -
  0.4 exp(-(log M - 8.5)/0.8) with 0.08 dex scatter;
* bulge-to-total mass ratio rising with mass and quenching; Hubble type from
  B/T and quenching (E, S0, S0a, Sa ... Sdm, I);
* bars with the frequencies of the CALIFA morphological classification
  (Walcher et al. 2014): strong (B) and weak (AB) bars per Hubble type, holding
  10-20 and 4-8 per cent of the disc mass, 0.6-1.2 disc scale radii long;
* spiral arms in Sa-Sdm discs: two arms (60 per cent) or three to four, pitch
  angles rising from ~10 deg (Sa) to ~30 deg (Sdm) (Kennicutt 1981), young
  stars concentrated in the arms (amplitude 0.5-0.9 in the star-formation
  rate, 0.05-0.2 in mass); star-forming clumps in Sd-I galaxies;
* diffuse ionised gas of evolved stars (HOLMES): EW(H-alpha) 0.5-1.5 A of the
  old-star continuum (Cid Fernandes et al. 2011), with LIER-like
  log([NII]/H-alpha) in -0.05 ... 0.3 and log([OIII]/H-beta) in -0.1 ... 0.5
  (Belfiore et al. 2016);
* inclination with cos i uniform, intrinsic disc thickness 0.2, position angle
  uniform.
"""

import functools

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import CatalogueError, ValidationError
from astro_cl.surveys.mock.spectra import kpc_per_arcsec, luminosity_distance

__all__ = [
    "ENVIRONMENTS",
    "SELECTIONS",
    "TYPES",
    "draw_galaxy",
    "draw_population",
    "galaxy_seed",
    "half_mass_radius",
    "sersic_b",
    "sfms",
    "sfms_class",
    "stellar_mzr",
    "twin_population",
]

ENVIRONMENTS = ("void", "wall", "filament", "cluster")
#: Population selections: eCALIFA-like diameter selection, SDSS-like flux limit.
SELECTIONS = ("diameter", "flux")
_ENV_P = np.array([0.10, 0.35, 0.35, 0.20])
_ENV_MQ = {"void": 10.95, "wall": 10.7, "filament": 10.55, "cluster": 10.2}
#: Hubble types and the bulge-to-total range assigned to each (twin mode draws B/T in it).
TYPES = {
    "E": (0.8, 1.0), "S0": (0.5, 0.8), "S0a": (0.4, 0.6), "Sa": (0.3, 0.45),
    "Sab": (0.22, 0.35), "Sb": (0.14, 0.25), "Sbc": (0.08, 0.16), "Sc": (0.04, 0.1),
    "Scd": (0.02, 0.06), "Sd": (0.0, 0.03), "Sdm": (0.0, 0.02), "I": (0.0, 0.01),
}
_SPIRAL_EDGES = [(0.33, "Sa"), (0.25, "Sab"), (0.17, "Sb"), (0.11, "Sbc"), (0.06, "Sc"),
                 (0.03, "Scd"), (0.012, "Sd"), (0.0, "Sdm")]
#: Probabilities of a weak (AB) and a strong (B) bar per type (CALIFA classification).
_BARS = {"S0": (0.08, 0.15), "S0a": (0.29, 0.15), "Sa": (0.32, 0.10), "Sab": (0.42, 0.16),
         "Sb": (0.30, 0.31), "Sbc": (0.28, 0.30), "Sc": (0.33, 0.17), "Scd": (0.40, 0.11),
         "Sd": (0.36, 0.28), "Sdm": (0.30, 0.30), "I": (0.17, 0.0)}
#: Mean spiral-arm pitch angle (deg) per type.
_PITCH = {"S0a": 8.0, "Sa": 10.0, "Sab": 12.0, "Sb": 15.0, "Sbc": 18.0, "Sc": 21.0,
          "Scd": 24.0, "Sd": 27.0, "Sdm": 30.0}
#: Gallazzi et al. (2005) table 2: log M* and median mass-weighted log(Z/Zsun).
_MZR_LOGM = np.array([8.91, 9.11, 9.31, 9.51, 9.72, 9.91, 10.11, 10.31, 10.51, 10.72, 10.91,
                      11.11, 11.31, 11.51, 11.72, 11.91])
_MZR_Z = np.array([-0.60, -0.61, -0.65, -0.61, -0.52, -0.41, -0.23, -0.11, -0.01, 0.04, 0.07,
                   0.10, 0.12, 0.13, 0.14, 0.15])
Z_RANGE = (0.005, 0.08)
LOGM_RANGE = (8.0, 12.0)
#: Lookback time of the Big Bang in the mocks' cosmology (Gyr).
T_UNIVERSE = 13.47
_R_LIMIT = 17.77  # SDSS main-sample Petrosian r limit
_M_SUN_R = 4.65  # absolute AB magnitude of the Sun in SDSS r (Willmer 2018)


def galaxy_seed(seed, index, stream=0):
    """Return the `numpy.random.SeedSequence` of one galaxy and stream.

    Parameters
    ----------
    seed : int
        Survey seed.
    index : int
        Galaxy index.
    stream : int, optional
        0 = population draws, 1 = rendering (noise, artefacts).

    Returns
    -------
    seq : `numpy.random.SeedSequence`
    """
    return np.random.SeedSequence(int(seed), spawn_key=(int(index), int(stream)))


def sfms(log_mass):
    """Star-forming main sequence of Renzini & Peng (2015).

    Parameters
    ----------
    log_mass : array_like
        log10 stellar mass (Msun).

    Returns
    -------
    log_sfr : `numpy.ndarray`
        log10 SFR (Msun/yr).
    """
    return 0.76 * np.asarray(log_mass, float) - 7.64


def sfms_class(log_mass, log_sfr):
    """Classify galaxies as blue cloud, green valley or red sequence by their SFMS offset.

    Parameters
    ----------
    log_mass, log_sfr : array_like

    Returns
    -------
    classes : `numpy.ndarray` of str
        "BC" (offset >= -0.7 dex), "GV" (-1.4 to -0.7 dex) or "RS".
    """
    d = np.asarray(log_sfr, float) - sfms(log_mass)
    return np.where(d >= -0.7, "BC", np.where(d >= -1.4, "GV", "RS"))


def stellar_mzr(log_mass):
    """Median mass-weighted stellar metallicity at a stellar mass (Gallazzi et al. 2005).

    Parameters
    ----------
    log_mass : array_like

    Returns
    -------
    zh : `numpy.ndarray`
        log10(Z/Zsun), interpolated in their table 2 (constant outside it).
    """
    return np.interp(np.asarray(log_mass, float), _MZR_LOGM, _MZR_Z)


def sersic_b(n):
    """Sersic b_n (Ciotti & Bertin 1999 expansion).

    Parameters
    ----------
    n : array_like

    Returns
    -------
    b : `numpy.ndarray`
    """
    n = np.asarray(n, float)
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2)


def half_mass_radius(bt, n_bulge, re_bulge, re_disc):
    """Half-mass radius of a bulge + exponential disc (circularised, same centre).

    Parameters
    ----------
    bt : float
        Bulge-to-total mass ratio.
    n_bulge : float
    re_bulge, re_disc : float
        Half-mass radii of the components.

    Returns
    -------
    re : float
    """
    from scipy.special import gammainc

    r = np.geomspace(1e-3, 50.0, 2000) * max(re_bulge, re_disc)
    fb = gammainc(2 * n_bulge, sersic_b(n_bulge) * (r / re_bulge) ** (1 / n_bulge))
    fd = gammainc(2.0, sersic_b(1.0) * r / re_disc)
    f = bt * fb + (1 - bt) * fd
    return float(np.interp(0.5, f, r))


def _shen_size(log_mass, early):
    m = 10.0 ** np.asarray(log_mass, float)
    late = -1.0 + 0.14 * np.log10(m) + 0.25 * np.log10(1 + m / 3.98e10)
    early_r = 0.56 * np.log10(m) - 5.54
    return np.where(early, np.maximum(early_r, late - 0.1), late)


def _califa_size(log_mass, early):
    return np.where(early, 0.364 * log_mass - 3.455, 0.261 * log_mass - 2.084)


def _type_from_bt(bt, quenched, log_mass, q_bulge):
    if quenched and bt >= 0.8:
        return f"E{int(np.clip(round(10 * (1 - q_bulge)), 0, 7))}"
    if quenched and bt >= 0.5:
        return "S0"
    if bt >= 0.45:
        return "S0a"
    if bt < 0.015 and log_mass < 9.4:
        return "I"
    return next(t for edge, t in _SPIRAL_EDGES if bt >= edge)


def _z_for_angle(re_kpc, theta):
    zz = np.linspace(0.001, 0.2, 2000)
    ang = re_kpc / kpc_per_arcsec(zz)  # decreasing with z
    return float(np.interp(theta, ang[::-1], zz[::-1]))


def _mass_to_light_r(log_mass):
    """Typical observed-frame log(M/L_r) at a mass, fitted to the mocks (0.14 dex rms)."""
    return np.clip(-2.435 + 0.287 * np.asarray(log_mass, float), 0.0, 0.85)


@functools.cache
def _sdss_sample():
    """Return redshifts and absolute r magnitudes of kcorrect's real SDSS test galaxies.

    Those with 0.005 < z < 0.08 and r < 17.77 (Galactic-extinction corrected
    model magnitudes).
    """
    from astropy.io import fits

    from astro_cl.surveys.mock.ssp import kcorrect_data_dir

    path = kcorrect_data_dir() / "test" / "gst_tests_small.fits"
    with fits.open(path, memmap=False) as hdul:
        data = hdul[1].data
        z = np.asarray(data["Z"], float)
        flux = np.asarray(data["MODELFLUX"][:, 2] * 10 ** (0.4 * data["EXTINCTION"][:, 2]), float)
    keep = (z > Z_RANGE[0]) & (z < Z_RANGE[1]) & (flux > 10 ** (-0.4 * (_R_LIMIT - 22.5)))
    z = z[keep]
    abs_r = 22.5 - 2.5 * np.log10(flux[keep]) - 5 * np.log10(luminosity_distance(z) * 1e5)
    z.flags.writeable = abs_r.flags.writeable = False
    return z, abs_r


def _flux_limited_draw(rng):
    """Draw (log M, z) of a galaxy of the SDSS main sample at z < 0.08.

    A real galaxy's redshift and luminosity, turned into a mass with the mocks'
    M/L (and its 0.14 dex scatter).
    """
    z, abs_r = _sdss_sample()
    j = int(rng.integers(z.size))
    log_l = (_M_SUN_R - abs_r[j]) / 2.5
    grid = np.linspace(*LOGM_RANGE, 801)
    logm = float(np.interp(log_l, grid - _mass_to_light_r(grid), grid))
    return float(np.clip(logm + rng.normal(0, 0.14), *LOGM_RANGE)), float(z[j])


def _califa_mass(rng):
    lo, hi = LOGM_RANGE
    while True:
        m = rng.normal(10.62, 0.44) if rng.random() < 0.74 else rng.normal(9.40, 0.70)
        if lo <= m <= hi:
            return float(m)


def _morphology(rng, gtype, state, re_disc):
    """Bar, spiral arms and star-forming clumps of a galaxy of a given type."""
    key = "E" if gtype.startswith("E") else gtype
    p_ab, p_b = _BARS.get(key, (0.0, 0.0))
    u = rng.random()
    bar = 2 if u < p_b else 1 if u < p_b + p_ab else 0
    out = {"bar": bar, "bar_frac": 0.0, "bar_len": 0.0, "bar_q": 1.0, "bar_angle": 0.0,
           "arms": 0, "arm_pitch": 0.0, "arm_amp_sf": 0.0, "arm_amp_mass": 0.0,
           "arm_phase": 0.0, "clumps": []}
    if bar:
        out.update(bar_frac=float(rng.uniform(0.10, 0.20) if bar == 2 else rng.uniform(0.04, 0.08)),
                   bar_len=float(rng.uniform(0.6, 1.2)), bar_q=float(rng.uniform(0.25, 0.4)),
                   bar_angle=float(rng.uniform(0, 180)))
    if key in _PITCH:
        sf_amp = {"BC": (0.5, 0.9), "GV": (0.3, 0.6), "RS": (0.0, 0.15)}[state]
        out.update(arms=int(2 if rng.random() < 0.6 else rng.integers(3, 5)),
                   arm_pitch=float(np.clip(rng.normal(_PITCH[key], 4.0), 5.0, 40.0)),
                   arm_amp_sf=float(rng.uniform(*sf_amp)),
                   arm_amp_mass=float(rng.uniform(0.05, 0.2)),
                   arm_phase=float(rng.uniform(0, 2 * np.pi)))
    if key in ("Sd", "Sdm", "I") and state != "RS":
        n = int(rng.integers(3, 9))
        rad = re_disc * np.sqrt(rng.uniform(0.05, 2.5, n))
        ang = rng.uniform(0, 2 * np.pi, n)
        out["clumps"] = [[float(r * np.cos(a)), float(r * np.sin(a)),
                          float(re_disc * rng.uniform(0.08, 0.2)), float(rng.uniform(1.0, 4.0))]
                         for r, a in zip(rad, ang, strict=True)]
    return out


def draw_galaxy(seed, index, *, fov_arcsec=32.0, overrides=None, selection="diameter"):
    """Draw the global parameters of one galaxy.

    Parameters
    ----------
    seed : int
        Survey seed.
    index : int
        Galaxy index (its generator is `galaxy_seed` ``(seed, index, 0)``).
    fov_arcsec : float, optional
        Field of view of the renderer (for the diameter selection).
    overrides : dict, optional
        Values fixed by a twin catalogue row: ``log_mass``, ``log_sfr``, ``type``,
        ``re_kpc``, ``z``, ``pa``, ``ellip`` (the eccentricity of the isophotes,
        ``sqrt(1 - (b/a)**2)``, as in the eCALIFA catalogue), ``name``.
    selection : {"diameter", "flux"}, optional
        eCALIFA-like or SDSS-like population (see the module notes).

    Returns
    -------
    params : dict
        The galaxy's parameters.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If ``selection`` is unknown.
    """
    if selection not in SELECTIONS:
        msg = f"selection: expected one of {SELECTIONS}, got {selection!r}"
        raise ValidationError(msg)
    ov = dict(overrides or {})
    rng = np.random.default_rng(galaxy_seed(seed, index, 0))
    env = ENVIRONMENTS[int(rng.choice(4, p=_ENV_P))]
    logm = ov.get("log_mass")
    z_flux = None
    if selection == "flux":
        m_flux, z_flux = _flux_limited_draw(rng)
        logm = m_flux if logm is None else logm
    elif logm is None:
        logm = _califa_mass(rng)
    # star-formation state
    fq = 1 / (1 + np.exp(-(logm - _ENV_MQ[env]) / 0.3))
    p_gv = 0.05 + 0.6 * fq * (1 - fq)
    p_rs = max(fq - p_gv / 2, 0.0)
    p_bc = max(1 - p_rs - p_gv, 0.0)
    probs = np.array([p_bc, p_gv, p_rs]) / (p_bc + p_gv + p_rs)
    state = ("BC", "GV", "RS")[int(rng.choice(3, p=probs))]
    offset = {"BC": float(np.clip(rng.normal(0, 0.3), -0.65, 0.9)),
              "GV": float(rng.uniform(-1.35, -0.75)),
              "RS": float(np.clip(rng.normal(-2.0, 0.3), -3.0, -1.45))}[state]
    log_sfr = ov.get("log_sfr")
    if log_sfr is None:
        log_sfr = float(sfms(logm) + offset)
    else:
        state = str(sfms_class(logm, log_sfr))
    quenched = state != "BC"
    # star-formation history: formation epoch (downsizing), quenching epoch
    delay_scale = 4.0 * 10 ** (-(logm - 9.0) / 2)
    t_form = float(T_UNIVERSE - min(rng.exponential(delay_scale), T_UNIVERSE - 1.5))
    t_form_disc = float(max(t_form - rng.uniform(0.0, 3.0), 1.0))
    t_quench = {"BC": 0.0, "GV": float(rng.uniform(0.3, 2.5)),
                "RS": float(np.clip(rng.uniform(2.0, 7.0) + 1.5 * (logm - 10.5), 1.5,
                                    t_form - 1.0))}[state]
    tau_bulge = float(rng.uniform(0.7, 2.0))
    tau_disc = float(rng.uniform(2.0, 4.0) if state == "RS" else rng.uniform(3.0, 8.0))
    # morphology
    q_bulge = float(rng.uniform(0.55, 1.0))
    n_bulge = float(np.clip(rng.normal(3.5, 0.6) if quenched else rng.normal(2.2, 0.6), 1.0, 6.0))
    if "type" in ov and ov["type"] is not None:
        gtype = str(ov["type"])
        key = "E" if gtype.startswith("E") else gtype if gtype in TYPES else "I"
        lo, hi = TYPES[key]
        bt = float(rng.uniform(lo, hi))
        if gtype.startswith("E") and len(gtype) > 1 and gtype[1:].isdigit():
            q_bulge = float(np.clip(1 - int(gtype[1:]) / 10 + rng.uniform(-0.05, 0.05), 0.3, 1))
        if key in ("E", "S0"):
            n_bulge = float(np.clip(rng.normal(3.8, 0.5), 2.0, 6.0))
    else:
        mean_bt = 0.04 + 0.35 / (1 + np.exp(-(logm - 10.5) / 0.35))
        if quenched:
            mean_bt = min(0.72 + 0.2 * (logm - 10.0) / 1.5, 0.95) if state == "RS" else 0.3
        conc = 12.0 if state == "RS" else 8.0
        bt = float(np.clip(rng.beta(mean_bt * conc + 0.05, (1 - mean_bt) * conc + 0.05), 0, 1))
        gtype = _type_from_bt(bt, quenched, logm, q_bulge)
    # sizes
    re_kpc = ov.get("re_kpc")
    if re_kpc is None:
        early = bt >= 0.5
        if selection == "flux":
            re_kpc = float(10 ** (_shen_size(logm, early) + rng.normal(0, 0.12 if early else 0.18)))
        else:
            re_kpc = float(10 ** (_califa_size(logm, early) + rng.normal(0, 0.22)))
    ratio = float(rng.uniform(0.15, 0.4))
    unit_re = half_mass_radius(bt, n_bulge, ratio, 1.0)
    re_disc = re_kpc / unit_re
    re_bulge = ratio * re_disc
    # orientation
    ellip = ov.get("ellip")
    cos_i = float(rng.uniform(0, 1))
    if ellip is not None and np.isfinite(ellip):
        # the eCALIFA catalogue's ``ellip`` is the eccentricity sqrt(1 - (b/a)**2)
        # (it equals the ``ecc`` of the study's label table), not 1 - b/a
        q_obs = float(np.clip(np.sqrt(max(1.0 - float(ellip) ** 2, 0.0)), 0.2, 1.0))
        cos_i = float(np.sqrt(np.clip((q_obs**2 - 0.04) / (1 - 0.04), 0, 1)))
    q_disc = float(np.sqrt(0.2**2 + (1 - 0.2**2) * cos_i**2))
    pa = ov.get("pa")
    pa = float(rng.uniform(0, 180)) if pa is None or not np.isfinite(pa) else float(pa) % 180
    # redshift
    ratio_fov = float(np.clip(np.exp(rng.normal(np.log(0.157), 0.58)), 0.04, 0.5))
    z = ov.get("z")
    if z is None or not np.isfinite(z):
        z = (z_flux if selection == "flux"
             else float(np.clip(_z_for_angle(re_kpc, ratio_fov * fov_arcsec), *Z_RANGE)))
    # metallicities: scatter about the mass-metallicity relations, gradient, enrichment
    sigma_z = float(np.interp(logm, [9.0, 11.5], [0.3, 0.1]))
    # passive galaxies are richer at fixed mass, below ~10^10.75 Msun (Peng et al. 2015)
    rich = 0.1 * float(np.clip((10.75 - logm) / 0.5, 0, 1)) if state == "RS" else 0.0
    zh_star = float(stellar_mzr(logm) + rng.normal(0, sigma_z) + rich)
    zh_grad = float(rng.normal(-0.1, 0.05))
    doh = float(rng.normal(0, 0.08))
    ew_dig = float(rng.uniform(0.5, 1.5))
    dig_n2, dig_o3 = float(rng.uniform(-0.05, 0.3)), float(rng.uniform(-0.1, 0.5))
    ra = float(rng.uniform(0, 360))
    dec = float(np.degrees(np.arcsin(rng.uniform(-0.2, 0.9))))
    morph = _morphology(rng, gtype, state, re_disc)
    return {
        "index": int(index), "name": ov.get("name") or f"mock{index:06d}", "environment": env,
        "sfms_state": state, "log_mass_total": float(logm), "log_sfr_total": float(log_sfr),
        "bt": bt, "n_bulge": n_bulge, "q_bulge": q_bulge, "re_kpc": float(re_kpc),
        "re_disc_kpc": float(re_disc), "re_bulge_kpc": float(re_bulge), "cos_i": cos_i,
        "q_disc": q_disc, "pa": pa, "z": float(z), "type": gtype, "t_form": t_form,
        "t_form_disc": t_form_disc, "t_quench": t_quench, "tau_bulge": tau_bulge,
        "tau_disc": tau_disc, "zh_star": zh_star, "zh_grad": zh_grad, "zh_enrich": 0.3,
        "doh": doh, "ew_dig": ew_dig, "dig_n2": dig_n2, "dig_o3": dig_o3, "ra": ra, "dec": dec,
        "selection": selection,
        "match_fov": bool(ov.get("match_fov", False)), **morph,
    }


def draw_population(n, seed=0, *, fov_arcsec=32.0, start=0, selection="diameter"):
    """Draw the global parameters of ``n`` galaxies.

    Parameters
    ----------
    n : int
        Number of galaxies.
    seed : int, optional
    fov_arcsec : float, optional
        Field of view used by the diameter selection.
    start : int, optional
        Index of the first galaxy.
    selection : {"diameter", "flux"}, optional

    Returns
    -------
    params : list of dict
        One dict per galaxy (see `draw_galaxy`).
    """
    if int(n) < 0:
        msg = f"n: expected a non-negative number of galaxies, got {n!r}"
        raise ValueError(msg)
    return [draw_galaxy(seed, i, fov_arcsec=fov_arcsec, selection=selection)
            for i in range(start, start + int(n))]


def _col(table, name, unit=None):
    if name not in table.colnames:
        return None
    col = table[name]
    if hasattr(col, "unit") and col.unit is not None and unit is not None:
        import astropy.units as u

        try:
            return np.asarray(u.Quantity(col).to_value(unit), float)
        except (u.UnitsError, TypeError):
            return np.asarray(getattr(col, "value", col), float)
    return np.asarray(getattr(col, "value", col))


def twin_population(catalogue, seed=0, *, fov_arcsec=32.0):
    """One mock galaxy per row of a real catalogue, matching mass, SFR, type, size and z.

    Parameters
    ----------
    catalogue : str, `~pathlib.Path` or `~astropy.table.Table`
        eCALIFA-style table with ``log_Mass``, ``log_SFR_Ha``, ``type``,
        ``Re_kpc`` (or ``Re`` in arcsec), ``z``; optional ``Name``, ``PA``, ``ellip``.
        Missing values (NaN) are drawn from the population relations.
    seed : int, optional
    fov_arcsec : float, optional

    Returns
    -------
    params : list of dict
        Masses and SFRs are flagged ``match_fov``: the rendered field of view
        holds the catalogue's mass and SFR, as pyPipe3D's integrated values do.

    Raises
    ------
    astro_cl.exceptions.CatalogueError
        If ``log_Mass`` or ``z`` is missing.
    """
    import astropy.units as u

    if not hasattr(catalogue, "colnames"):
        path = str(catalogue)
        fmt = "ascii.ecsv" if path.endswith((".csv", ".ecsv")) else None
        try:
            catalogue = QTable.read(path, format=fmt) if fmt else QTable.read(path)
        except (OSError, ValueError) as exc:
            msg = f"{path}: cannot read the twin catalogue ({exc})"
            raise CatalogueError(msg) from exc
    for need in ("log_Mass", "z"):
        if need not in catalogue.colnames:
            msg = f"twin catalogue: missing column {need!r}; columns are {catalogue.colnames[:20]}"
            raise CatalogueError(msg)
    n = len(catalogue)
    logm = _col(catalogue, "log_Mass", u.dex(u.Msun)).astype(float)
    z = _col(catalogue, "z").astype(float)
    sfr = _col(catalogue, "log_SFR_Ha", u.dex(u.Msun / u.yr))
    re_kpc = _col(catalogue, "Re_kpc", u.kpc)
    re_arcsec = _col(catalogue, "Re", u.arcsec)
    types = _col(catalogue, "type")
    names = _col(catalogue, "Name")
    pas = _col(catalogue, "PA", u.deg)
    ellip = _col(catalogue, "ellip")
    out = []
    for i in range(n):
        if not (np.isfinite(logm[i]) and np.isfinite(z[i])):
            msg = f"twin catalogue: row {i} has no finite log_Mass/z ({logm[i]}, {z[i]})"
            raise CatalogueError(msg)
        r = None
        if re_kpc is not None and np.isfinite(float(re_kpc[i])):
            r = float(re_kpc[i])
        elif re_arcsec is not None and np.isfinite(float(re_arcsec[i])):
            r = float(re_arcsec[i]) * float(kpc_per_arcsec(z[i]))
        ov = {
            "log_mass": float(np.clip(logm[i], 7.5, 12.5)), "z": float(np.clip(z[i], 0.001, 0.2)),
            "log_sfr": (float(sfr[i]) if sfr is not None and np.isfinite(float(sfr[i]))
                        else None),
            "re_kpc": r, "type": None if types is None else str(types[i]),
            "name": None if names is None else str(names[i]).strip(),
            "pa": None if pas is None else float(pas[i]),
            "ellip": None if ellip is None else float(ellip[i]), "match_fov": True,
        }
        if ov["type"] in ("", "U", "BCD", "--"):
            ov["type"] = "I" if ov["type"] == "BCD" else None
        out.append(draw_galaxy(seed, i, fov_arcsec=fov_arcsec, overrides=ov))
    return out
