"""Make the validation figures of the mock-survey page (docs/science/mock_surveys.rst).

Run from the repository root::

    python docs/science/mock_validation.py [--out docs/science/_static]

Needs kcorrect (real SDSS galaxies) and, for the twin panel, ``../shared/data``
(the eCALIFA catalogue; skipped when absent).
"""

import argparse
from pathlib import Path

import numpy as np


def colour_figure(ax_ur, ax_gr, n=400, seed=0):
    """Plot mock vs real SDSS u-r and g-r distributions (0.005 < z < 0.08).

    Parameters
    ----------
    ax_ur, ax_gr : `matplotlib.axes.Axes`
    n : int, optional
        Number of mock galaxies.
    seed : int, optional
    """
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from test_mock_validation import _mock_colours, _real_sdss_colours

    (ur, gr), (mur, mgr) = _real_sdss_colours(), _mock_colours(n, seed)
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
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    colour_figure(*axes)
    fig.tight_layout()
    fig.savefig(out / "mock_colours.png", dpi=110)
    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    if data.is_dir():
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
        twin_figure(axes, data)
        fig.tight_layout()
        fig.savefig(out / "mock_twin.png", dpi=110)


if __name__ == "__main__":
    main()
