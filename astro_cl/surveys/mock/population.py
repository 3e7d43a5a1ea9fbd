"""Population draws of the mock galaxies: mass, star formation, morphology, size, redshift.

Every galaxy ``i`` of a survey with seed ``s`` draws from its own generator,
``numpy.random.SeedSequence(s, spawn_key=(i, 0))``, so galaxy ``i`` is the
same whatever the number of galaxies or worker processes.

Relations (all z ~ 0):

* environment: void / wall / filament / cluster with probabilities
  0.10 / 0.35 / 0.35 / 0.20;
* stellar mass: a normal distribution in log M (mean 10.35, sd 0.6) truncated to
  [8.5, 11.8], close to the diameter-selected CALIFA sample (Walcher et al. 2014);
* quenched fraction: a logistic in log M whose mid-point depends on environment
  (void 10.75, wall 10.5, filament 10.35, cluster 10.0; width 0.3 dex), the
  separable mass + environment quenching of Peng et al. (2010);
* star-forming main sequence log SFR = 0.76 log M - 7.64 (Renzini & Peng 2015)
  with 0.3 dex scatter; green valley 0.7-1.4 dex and red sequence ~2 dex below;
* bulge-to-total mass ratio rising with mass and quenching; Hubble type from
  B/T and quenching (E, S0, S0a, Sa ... Sdm, I);
* half-mass radius from Shen et al. (2003): late types
  R = 0.1 M^0.14 (1 + M/3.98e10)^0.25 kpc (0.18 dex scatter), early types
  log R = 0.56 log M - 5.54 (0.12 dex);
* inclination with cos i uniform, intrinsic disc thickness 0.2, position angle
  uniform;
* redshift: the galaxy's angular half-mass radius is drawn log-uniformly in
  [FoV/12, FoV/5] (a diameter selection like CALIFA's, which fills the field)
  and converted to a redshift, clipped to 0.005-0.08.
"""

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import CatalogueError
from astro_cl.surveys.mock.spectra import kpc_per_arcsec

__all__ = [
    "ENVIRONMENTS",
    "TYPES",
    "draw_galaxy",
    "draw_population",
    "galaxy_seed",
    "half_mass_radius",
    "sersic_b",
    "sfms",
    "twin_population",
]

ENVIRONMENTS = ("void", "wall", "filament", "cluster")
_ENV_P = np.array([0.10, 0.35, 0.35, 0.20])
_ENV_MQ = {"void": 10.75, "wall": 10.5, "filament": 10.35, "cluster": 10.0}
#: Hubble types and the bulge-to-total range assigned to each (twin mode draws B/T in it).
TYPES = {
    "E": (0.8, 1.0), "S0": (0.5, 0.8), "S0a": (0.4, 0.6), "Sa": (0.3, 0.45),
    "Sab": (0.22, 0.35), "Sb": (0.14, 0.25), "Sbc": (0.08, 0.16), "Sc": (0.04, 0.1),
    "Scd": (0.02, 0.06), "Sd": (0.0, 0.03), "Sdm": (0.0, 0.02), "I": (0.0, 0.01),
}
_SPIRAL_EDGES = [(0.45, "Sa"), (0.33, "Sab"), (0.22, "Sb"), (0.14, "Sbc"), (0.08, "Sc"),
                 (0.04, "Scd"), (0.015, "Sd"), (0.0, "Sdm")]
Z_RANGE = (0.005, 0.08)
LOGM_RANGE = (8.5, 11.8)


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


def _size_relation(log_mass, early):
    m = 10.0 ** np.asarray(log_mass, float)
    late = -1.0 + 0.14 * np.log10(m) + 0.25 * np.log10(1 + m / 3.98e10)
    early_r = 0.56 * np.log10(m) - 5.54
    return np.where(early, np.maximum(early_r, late - 0.1), late)


def _type_from_bt(bt, quenched, log_mass, q_bulge):
    if quenched and bt >= 0.8:
        return f"E{int(np.clip(round(10 * (1 - q_bulge)), 0, 7))}"
    if quenched and bt >= 0.5:
        return "S0"
    if bt >= 0.55:
        return "S0a"
    if bt < 0.015 and log_mass < 9.4:
        return "I"
    return next(t for edge, t in _SPIRAL_EDGES if bt >= edge)


def _z_for_angle(re_kpc, theta):
    zz = np.linspace(0.001, 0.2, 2000)
    ang = re_kpc / kpc_per_arcsec(zz)  # decreasing with z
    return float(np.interp(theta, ang[::-1], zz[::-1]))


def draw_galaxy(seed, index, *, fov_arcsec=32.0, overrides=None):
    """Draw the global parameters of one galaxy.

    Parameters
    ----------
    seed : int
        Survey seed.
    index : int
        Galaxy index (its generator is `galaxy_seed` ``(seed, index, 0)``).
    fov_arcsec : float, optional
        Field of view of the renderer, for the diameter selection.
    overrides : dict, optional
        Values fixed by a twin catalogue row: ``log_mass``, ``log_sfr``, ``type``,
        ``re_kpc``, ``z``, ``pa``, ``ellip``, ``name``.

    Returns
    -------
    params : dict
        The galaxy's parameters (see the `draw_population` columns).
    """
    ov = dict(overrides or {})
    rng = np.random.default_rng(galaxy_seed(seed, index, 0))
    env = ENVIRONMENTS[int(rng.choice(4, p=_ENV_P))]
    logm = ov.get("log_mass")
    if logm is None:
        lo, hi = LOGM_RANGE
        logm = float(np.clip(rng.normal(10.35, 0.6), lo, hi))
        while not lo <= logm <= hi:  # pragma: no cover - clip above keeps this false
            logm = float(rng.normal(10.35, 0.6))
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
    gv_recency = float(rng.uniform(0.2, 0.5)) if state == "GV" else 0.0
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
            mean_bt = min(0.55 + 0.3 * (logm - 10.0) / 1.5, 0.92) if state == "RS" else 0.45
        conc = 8.0
        bt = float(np.clip(rng.beta(mean_bt * conc + 0.05, (1 - mean_bt) * conc + 0.05), 0, 1))
        gtype = _type_from_bt(bt, quenched, logm, q_bulge)
    # sizes
    re_kpc = ov.get("re_kpc")
    if re_kpc is None:
        early = bt >= 0.5
        re_kpc = float(10 ** (_size_relation(logm, early) + rng.normal(0, 0.12 if early else 0.18)))
    ratio = float(rng.uniform(0.15, 0.4))
    unit_re = half_mass_radius(bt, n_bulge, ratio, 1.0)
    re_disc = re_kpc / unit_re
    re_bulge = ratio * re_disc
    # orientation
    ellip = ov.get("ellip")
    cos_i = float(rng.uniform(0, 1))
    if ellip is not None and np.isfinite(ellip):
        q_obs = float(np.clip(1 - ellip, 0.2, 1.0))
        cos_i = float(np.sqrt(np.clip((q_obs**2 - 0.04) / (1 - 0.04), 0, 1)))
    q_disc = float(np.sqrt(0.2**2 + (1 - 0.2**2) * cos_i**2))
    pa = ov.get("pa")
    pa = float(rng.uniform(0, 180)) if pa is None or not np.isfinite(pa) else float(pa) % 180
    # redshift: diameter selection
    theta = float(np.exp(rng.uniform(np.log(fov_arcsec / 12), np.log(fov_arcsec / 5))))
    z = ov.get("z")
    if z is None or not np.isfinite(z):
        z = float(np.clip(_z_for_angle(re_kpc, theta), *Z_RANGE))
    # metallicity offsets (scatter about the mass-metallicity relations)
    dz_star = float(rng.normal(0, 0.1))
    doh = float(rng.normal(0, 0.08))
    ra = float(rng.uniform(0, 360))
    dec = float(np.degrees(np.arcsin(rng.uniform(-0.2, 0.9))))
    return {
        "index": int(index), "name": ov.get("name") or f"mock{index:06d}", "environment": env,
        "sfms_state": state, "log_mass_total": float(logm), "log_sfr_total": float(log_sfr),
        "bt": bt, "n_bulge": n_bulge, "q_bulge": q_bulge, "re_kpc": float(re_kpc),
        "re_disc_kpc": float(re_disc), "re_bulge_kpc": float(re_bulge), "cos_i": cos_i,
        "q_disc": q_disc, "pa": pa, "z": float(z), "type": gtype, "gv_recency": gv_recency,
        "dlogz_star": dz_star, "doh": doh, "ra": ra, "dec": dec,
        "match_fov": bool(ov.get("match_fov", False)),
    }


def draw_population(n, seed=0, *, fov_arcsec=32.0, start=0):
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

    Returns
    -------
    params : list of dict
        One dict per galaxy (see `draw_galaxy`).
    """
    if int(n) < 0:
        msg = f"n: expected a non-negative number of galaxies, got {n!r}"
        raise ValueError(msg)
    return [draw_galaxy(seed, i, fov_arcsec=fov_arcsec) for i in range(start, start + int(n))]


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

