"""Make the validation figures of the mock-survey page (docs/science/mock_surveys.rst).

Run from the repository root::

    python docs/science/mock_validation.py [--out docs/science/_static]

Needs kcorrect (real SDSS galaxies), sdss-mangadap (the MaStar grid and real
MaNGA spectra) and, for the eCALIFA and MaNGA-map panels, ``../shared/data``
(skipped when absent).
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[2]
_LINES = {"Hbeta": 4861.33, "OIII5007": 5006.84, "Halpha": 6562.80, "NII6584": 6583.45}


def _tests():
    sys.path.insert(0, str(_ROOT / "tests"))
    import test_mock_validation

    return test_mock_validation


def colour_figure(ax_ur, ax_gr, n=400, seed=0):
    """Plot mock vs real SDSS u-r and g-r distributions (0.005 < z < 0.08).

    Parameters
    ----------
    ax_ur, ax_gr : `matplotlib.axes.Axes`
    n : int, optional
        Number of mock galaxies.
    seed : int, optional
    """
    tests = _tests()
    (ur, gr), (mur, mgr) = tests._real_sdss_colours(), tests._mock_colours(n, seed)
    for ax, real, mock, name, bins in ((ax_ur, ur, mur, "u - r", np.arange(0.5, 3.6, 0.1)),
                                       (ax_gr, gr, mgr, "g - r", np.arange(0.0, 1.2, 0.04))):
        ax.hist(real, bins, density=True, histtype="step", lw=2, label="SDSS (kcorrect test set)")
        ax.hist(mock, bins, density=True, histtype="step", lw=2, label="sdss-mock")
        ax.set_xlabel(f"{name} (observed, mag)")
        ax.legend(fontsize=8)


def twin_figure(axes, data_dir):
    """Plot twin-mode mock values against the eCALIFA catalogue rows.

    Parameters
    ----------
    axes : sequence of 3 `matplotlib.axes.Axes`
    data_dir : `~pathlib.Path`
        The shared data directory.
    """
    from astropy.table import QTable

    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    table = QTable.read(data_dir / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
    table = table[np.isfinite(table["log_SFR_Ha"].value)][::4]
    cat = ECALIFAMockSurvey(twin=table, size=48).catalogue
    for ax, col in zip(axes, ("log_Mass", "log_SFR_Ha", "Re_kpc"), strict=True):
        x, y = np.asarray(table[col].value), np.asarray(cat[col].value)
        ax.scatter(x, y, s=4)
        ax.plot([x.min(), x.max()], [x.min(), x.max()], "k--", lw=1)
        ax.set_xlabel(f"eCALIFA {col}")
        ax.set_ylabel(f"twin mock {col}")
        ax.set_title(f"rms {np.sqrt(np.mean((y - x) ** 2)):.3f}", fontsize=9)


def population_figure(axes, data_dir, n=600, seed=0):
    """Mass-size plane against eCALIFA, redshifts against SDSS, and the age-[Z/H] span.

    Parameters
    ----------
    axes : sequence of 3 `matplotlib.axes.Axes`
    data_dir : `~pathlib.Path` or None
        The shared data directory (eCALIFA panel skipped when None).
    n : int, optional
    seed : int, optional
    """
    from astropy.table import QTable

    from astro_cl.surveys.mock.population import _sdss_sample, draw_population
    from astro_cl.surveys.mock.structure import build_state

    diam = draw_population(n, seed, fov_arcsec=24.0)
    if data_dir is not None:
        table = QTable.read(data_dir / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
        axes[0].scatter(table["log_Mass"].value, np.log10(table["Re_kpc"].value), s=3,
                        alpha=0.5, label="eCALIFA")
    axes[0].scatter([p["log_mass_total"] for p in diam], np.log10([p["re_kpc"] for p in diam]),
                    s=3, alpha=0.5, label="ecalifa-mock")
    axes[0].set_xlabel("log M* (Msun)")
    axes[0].set_ylabel("log Re (kpc)")
    axes[0].legend(fontsize=8, markerscale=3)
    flux = draw_population(n, seed, fov_arcsec=64 * 0.396, selection="flux")
    bins = np.linspace(0, 0.08, 17)
    axes[1].hist(_sdss_sample()[0], bins, density=True, histtype="step", lw=2, label="SDSS")
    axes[1].hist([p["z"] for p in flux], bins, density=True, histtype="step", lw=2,
                 label="sdss-mock")
    axes[1].set_xlabel("redshift")
    axes[1].legend(fontsize=8)
    states = [build_state(p, (24, 24), 1.0) for p in diam[:200]]
    ages = [s.summary["Age_MW_int"] for s in states]
    zh = [s.summary["ZH_MW_int"] for s in states]
    colour = [{"BC": "C0", "GV": "C2", "RS": "C3"}[s.summary["sfms_class"]] for s in states]
    axes[2].scatter(ages, zh, s=6, c=colour)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("mass-weighted age (Gyr, whole galaxy)")
    axes[2].set_ylabel("[Z/H] (mass-weighted)")
    axes[2].set_title("200 mocks: blue cloud, green valley, red sequence", fontsize=9)


def _manga_maps(data_dir):
    """D4000_n, H-delta_A, EW(H-alpha) and BPT ratios of the real MaNGA DAP map's spaxels."""
    from astropy.io import fits

    path = data_dir / "manga" / "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"
    with fits.open(path) as hdul:
        index, mask = hdul["SPECINDEX"].data, hdul["SPECINDEX_MASK"].data
        names = {v: int(k[1:]) - 1 for k, v in hdul["SPECINDEX"].header.items()
                 if k.startswith("C") and k[1:].isdigit()}
        snr = hdul["SPX_SNR"].data
        ok = (mask[names["Dn4000"]] == 0) & (mask[names["HDeltaA"]] == 0) & (snr > 10)
        return index[names["Dn4000"]][ok], index[names["HDeltaA"]][ok]


def spectra_figure(axes, data_dir, n=30, seed=0):
    """D4000_n-H-delta_A, EW(H-alpha) and the BPT diagram: mock spectra against real ones.

    Parameters
    ----------
    axes : sequence of 3 `matplotlib.axes.Axes`
    data_dir : `~pathlib.Path` or None
    n : int, optional
        Mock galaxies (16 x 16 spaxel cubes).
    seed : int, optional
    """
    from astropy.table import QTable

    from astro_cl.surveys.mock import diagnostics
    from astro_cl.surveys.mock.population import draw_population
    from astro_cl.surveys.mock.render import CubeRenderer
    from astro_cl.surveys.mock.structure import build_state

    cr = CubeRenderer(noise=False, star_rate=0, hexagon=False)
    d4, hda, ew, n2, o3 = [], [], [], [], []
    centre = np.zeros((16, 16), bool)
    centre[6:10, 6:10] = True
    for p in draw_population(n, seed, fov_arcsec=8.0):
        state = build_state(p, (16, 16), cr.pixel_scale)
        full = cr.render(state)["model"].reshape(cr.n_wave, -1).T.astype(float)
        stars = dataclasses.replace(state, lines10=np.zeros_like(state.lines10))
        cont = cr.render(stars)["model"].reshape(cr.n_wave, -1).T.astype(float)
        rest = cr.wave / (1 + state.z)
        bright = state.truth["stellar_mass"].ravel() > 0.05 * state.truth["stellar_mass"].max()
        d4.append(diagnostics.d4000n(rest, full[bright]))
        hda.append(diagnostics.hdelta_a(rest, full[bright]))
        f, e = diagnostics.line_fluxes(rest, full[centre.ravel()].sum(0),
                                       cont[centre.ravel()].sum(0), _LINES)
        ew.append(e["Halpha"])
        n2.append(np.log10(f["NII6584"] / f["Halpha"]))
        o3.append(np.log10(f["OIII5007"] / f["Hbeta"]))
    d4, hda = np.concatenate(d4), np.concatenate(hda)
    axes[0].scatter(d4, hda, s=1, alpha=0.3, c="C1", label="ecalifa-mock spaxels")
    if data_dir is not None:
        md4, mhda = _manga_maps(data_dir)
        axes[0].scatter(md4, mhda, s=4, c="C0", label="MaNGA 7815-3702 (DAP)")
    for k, (rest, flux) in enumerate(_tests()._manga_test_spectra()):
        axes[0].scatter(diagnostics.d4000n(rest, flux), diagnostics.hdelta_a(rest, flux),
                        marker="*", s=120, c="k", label="MaNGA test spectra" if k == 0 else None)
    axes[0].set_xlabel("D4000_n")
    axes[0].set_ylabel("H-delta_A (A)")
    axes[0].legend(fontsize=7, markerscale=2)
    bins = np.linspace(-2.5, 2.5, 26)
    axes[1].hist(np.log10(-np.clip(ew, None, -1e-3)), bins, density=True, histtype="step", lw=2,
                 label="ecalifa-mock (centre)", color="C1")
    axes[2].scatter(n2, o3, s=8, c="C1", label="ecalifa-mock (centre)")
    if data_dir is not None:
        table = QTable.read(data_dir / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
        real_ew = np.asarray(table["EW_Ha_cen"].value, float)
        real_ew = real_ew[np.isfinite(real_ew)]
        axes[1].hist(np.log10(-np.clip(real_ew, None, -1e-3)), bins, density=True,
                     histtype="step", lw=2, label="eCALIFA (centre)", color="C0")
        axes[2].scatter(table["log_NII_Ha_cen"].value, table["log_OIII_Hb_cen"].value, s=3,
                        c="C0", alpha=0.5, label="eCALIFA (centre)")
    axes[1].set_xlabel("log(-EW(H-alpha) / A)")
    axes[1].legend(fontsize=7)
    x = np.linspace(-1.6, 0.0, 100)
    axes[2].plot(x, 0.61 / (x - 0.05) + 1.3, "k--", lw=1)
    x = np.linspace(-1.6, 0.4, 100)
    axes[2].plot(x, 0.61 / (x - 0.47) + 1.19, "k:", lw=1)
    axes[2].set_xlim(-1.6, 0.6)
    axes[2].set_ylim(-1.2, 1.2)
    axes[2].set_xlabel("log [NII]6584 / H-alpha")
    axes[2].set_ylabel("log [OIII]5007 / H-beta")
    axes[2].legend(fontsize=7, markerscale=2)


def gallery_figure(fig, seed=3, n=8):
    """Show gri composites of sdss-mock galaxies: bulges, bars, spiral arms, clumps.

    Parameters
    ----------
    fig : `matplotlib.figure.Figure`
    seed : int, optional
    n : int, optional
    """
    from astro_cl.surveys.mock.population import draw_galaxy
    from astro_cl.surveys.mock.render import ImageRenderer
    from astro_cl.surveys.mock.structure import build_state

    ir = ImageRenderer(noise=True, star_rate=0, bad_column_rate=0)
    rng = np.random.default_rng(seed)
    chosen, index = [], 0
    wanted = ["E", "S0", "Sa", "Sb", "Sbc", "Sc", "Sd", "I"]
    while len(chosen) < n and index < 2000:
        p = draw_galaxy(seed, index, selection="flux") | {"z": 0.02}
        key = "E" if p["type"].startswith("E") else p["type"]
        if key in wanted and (p["bar"] or p["arms"] or key in ("E", "S0", "I")):
            wanted.remove(key)
            chosen.append(p | {"q_disc": max(p["q_disc"], 0.6)})
        index += 1
    for k, p in enumerate(chosen):
        state = build_state(p, (96, 96), ir.pixel_scale)
        img = ir.render(state, rng)["data"]
        rgb = np.stack([img[3], img[2], img[1]], axis=-1)
        rgb = np.arcsinh(np.clip(rgb, 0, None) / 0.3) / np.arcsinh(np.percentile(rgb, 99.7) / 0.3)
        ax = fig.add_subplot(2, (n + 1) // 2, k + 1)
        ax.imshow(np.clip(rgb, 0, 1), origin="lower")
        bar = {0: "", 1: ", weak bar", 2: ", bar"}[p["bar"]]
        ax.set_title(f"{p['type']} {p['sfms_state']}{bar}", fontsize=8)
        ax.axis("off")


def main(argv=None):
    """Write the figures.

    Parameters
    ----------
    argv : list of str, optional
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/science/_static")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = _ROOT.parent / "shared" / "data"
    data = data if data.is_dir() else None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    colour_figure(*axes)
    fig.tight_layout()
    fig.savefig(out / "mock_colours.png", dpi=110)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    spectra_figure(axes, data)
    fig.tight_layout()
    fig.savefig(out / "mock_spectra.png", dpi=110)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    population_figure(axes, data)
    fig.tight_layout()
    fig.savefig(out / "mock_population.png", dpi=110)
    fig = plt.figure(figsize=(12, 6.5))
    gallery_figure(fig)
    fig.tight_layout()
    fig.savefig(out / "mock_gallery.jpg", dpi=80, pil_kwargs={"quality": 85})
    if data is not None:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
        twin_figure(axes, data)
        fig.tight_layout()
        fig.savefig(out / "mock_twin.png", dpi=110)


if __name__ == "__main__":
    main()
