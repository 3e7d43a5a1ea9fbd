"""Validation of the mock surveys against real galaxies, conservation, determinism, file formats."""

import importlib.util
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.mock.population import draw_population, twin_population
from astro_cl.surveys.mock.render import ImageRenderer
from astro_cl.surveys.mock.structure import build_state
from astro_cl.surveys.sdss_mock import SDSSMockSurvey


def _real_sdss_colours():
    import kcorrect
    from astropy.io import fits

    path = Path(kcorrect.__file__).resolve().parent / "data" / "test" / "gst_tests_small.fits"
    with fits.open(path) as hdul:
        data = hdul[1].data
        flux = data["MODELFLUX"] * 10 ** (0.4 * data["EXTINCTION"])  # Galactic extinction
        z = data["Z"]
    sel = (z > 0.005) & (z < 0.08) & np.all(flux[:, :3] > 0, axis=1)
    f = flux[sel]
    return -2.5 * np.log10(f[:, 0] / f[:, 2]), -2.5 * np.log10(f[:, 1] / f[:, 2])


def _mock_colours(n=300, seed=0):
    ir = ImageRenderer()
    population = draw_population(n, seed, fov_arcsec=64 * ir.pixel_scale, selection="flux")
    fluxes = np.array([ir.integrated(build_state(p, (64, 64), ir.pixel_scale))
                       for p in population])
    return (-2.5 * np.log10(fluxes[:, 0] / fluxes[:, 2]),
            -2.5 * np.log10(fluxes[:, 1] / fluxes[:, 2]))


def _two_peaks(x):
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(2, random_state=0).fit(x[:, None])
    order = np.argsort(gm.means_.ravel())
    return gm.means_.ravel()[order], np.sqrt(gm.covariances_.ravel()[order]), gm.weights_[order]


@pytest.fixture(scope="module")
def colours():
    return _real_sdss_colours(), _mock_colours()


def test_colours_close_to_real_sdss_galaxies(colours):
    """A validation (colours were not tuned): KS distance u-r < 0.25 (measured 0.09) against
    real SDSS galaxies with 0.005 < z < 0.08 (the mock draws their redshifts and
    luminosities); g-r < 0.5 (measured 0.36): the whole g-r distribution is ~0.1 mag redder
    than the real one, the offset of old SSP models in g-r that Maraston et al. (2009) found
    for luminous red galaxies."""
    from scipy.stats import ks_2samp

    (ur, gr), (mur, mgr) = colours
    assert ks_2samp(ur, mur).statistic < 0.25
    assert ks_2samp(gr, mgr).statistic < 0.5
    assert 0.03 < np.median(mgr) - np.median(gr) < 0.15


@pytest.mark.parametrize(("which", "tolerance"), [(0, 0.15), (1, 0.15)])
def test_colours_bimodal_with_the_real_red_sequence(colours, which, tolerance):
    """Two Gaussian populations, separated by more than the sum of their widths, each > 15 %,
    with the real red fraction within 0.15; red peak within 0.15 mag of the real one
    (measured: u-r 2.59 vs 2.54, g-r 0.91 vs 0.83; red fractions 0.68 vs 0.72)."""
    real, mock = colours[0][which], colours[1][which]
    means, sigmas, weights = _two_peaks(mock)
    assert means[1] - means[0] > 1.0 * (sigmas[0] + sigmas[1])
    assert weights.min() > 0.15
    real_means, _, real_weights = _two_peaks(real)
    assert abs(means[1] - real_means[1]) < tolerance
    if which == 0:  # u-r separates the populations best
        assert abs(weights[1] - real_weights[1]) < 0.15


def test_twin_tracks_the_ecalifa_catalogue(shared_data):
    """Mass (FoV) and SFR match to < 0.02 dex rms, size exactly, types kept."""
    from astropy.table import QTable

    table = QTable.read(shared_data / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
    table = table[np.isfinite(table["log_SFR_Ha"].value)][::15]
    survey = ECALIFAMockSurvey(twin=table, seed=0, size=48)
    cat = survey.catalogue
    assert len(cat) == len(table)
    dm = cat["log_Mass"].value - table["log_Mass"].value
    ds = cat["log_SFR_Ha"].value - table["log_SFR_Ha"].value
    assert np.sqrt(np.mean(dm**2)) < 0.02
    assert np.sqrt(np.mean(ds**2)) < 0.05
    assert np.allclose(cat["Re_kpc"].to_value(u.kpc), table["Re_kpc"].to_value(u.kpc))
    assert np.array_equal(cat["z"], table["z"])
    types = np.asarray(table["type"]).astype(str)
    keep = ~np.isin(types, ["U", "BCD"])
    assert np.array_equal(np.asarray(cat["type"])[keep], types[keep])
    assert list(cat["Name"]) == [str(n).strip() for n in table["Name"]]


def test_twin_needs_mass_and_redshift():
    from astropy.table import QTable

    from astro_cl.exceptions import CatalogueError

    with pytest.raises(CatalogueError, match="log_Mass"):
        twin_population(QTable({"z": [0.02]}))


def test_deterministic_in_memory():
    a = SDSSMockSurvey(n=3, seed=9, size=24)[2]
    b = SDSSMockSurvey(n=5, seed=9, size=24)[2]
    assert np.array_equal(a.images.data, b.images.data)
    c = SDSSMockSurvey(n=3, seed=10, size=24)[2]
    assert not np.array_equal(a.images.data, c.images.data)


@pytest.mark.slow
def test_deterministic_across_workers(tmp_path):
    survey = SDSSMockSurvey(n=4, seed=4, size=24)
    survey.write(tmp_path / "one", workers=1, progress=False)
    survey.write(tmp_path / "two", workers=2, progress=False)
    for name in ("catalogue.ecsv", "mock000003.fits", "mock000003.maps.fits"):
        one, two = (tmp_path / "one" / name).read_bytes(), (tmp_path / "two" / name).read_bytes()
        if name.endswith(".fits"):
            from astropy.io import fits

            with fits.open(tmp_path / "one" / name) as h1, fits.open(tmp_path / "two" / name) as h2:
                assert all(np.array_equal(x.data, y.data) for x, y in zip(h1, h2, strict=True))
        else:
            assert one == two


def _need(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} (the real-format reader) does not exist yet")


def test_ecalifa_round_trip(tmp_path):
    _need("astro_cl.surveys.ecalifa")
    mock = ECALIFAMockSurvey(n=2, seed=3, size=16, star_rate=2.0)
    cat = mock.write(tmp_path, progress=False)
    assert (tmp_path / f"{cat['Name'][0]}.V500.drscube.fits").is_file()
    back = ECALIFAMockSurvey(path=tmp_path)
    assert back.ids == mock.ids
    for i in range(2):
        a, b = mock[i], back[i]
        assert np.array_equal(a.cube.flux.value, b.cube.flux.value)
        assert np.array_equal(a.cube.mask, b.cube.mask)
        assert np.array_equal(a.star_mask, b.star_mask)
        assert b.cube.flux.unit == a.cube.flux.unit
        assert np.allclose(a.cube.spectral_axis.to_value(u.AA), b.cube.spectral_axis.to_value(u.AA))
        assert set(b.maps) == set(a.maps)
        assert np.allclose(a.maps["stellar_mass"].data, b.maps["stellar_mass"].data, rtol=1e-6)
    assert np.allclose(back.catalogue["log_Mass"].value, mock.catalogue["log_Mass"].value)


def test_sdss_round_trip(tmp_path):
    _need("astro_cl.surveys.sdss")
    mock = SDSSMockSurvey(n=2, seed=3, size=24, bad_column_rate=1.0)
    mock.write(tmp_path, progress=False)
    back = SDSSMockSurvey(path=tmp_path)
    assert back.ids == mock.ids
    for i in range(2):
        a, b = mock[i], back[i]
        assert np.array_equal(a.images.data, b.images.data)
        assert np.array_equal(a.images.mask, b.images.mask)
        assert b.images.unit == u.nanomaggy
        assert b.observing.redshift == pytest.approx(a.observing.redshift)
        good = ~a.images.mask
        assert np.allclose(a.images.uncertainty.array[good], b.images.uncertainty.array[good],
                           rtol=1e-5)
        assert np.allclose(a.maps["metallicity"].data, b.maps["metallicity"].data)


def test_conformance():
    testing = pytest.importorskip("astro_cl.testing")
    testing.check_survey(SDSSMockSurvey(n=3, seed=0, size=16))
    testing.check_survey(ECALIFAMockSurvey(n=2, seed=0, size=12))


def _manga_test_spectra():
    """The real MaNGA spectra shipped with sdss-mangadap, rest-frame air, bad pixels filled."""
    from astropy.io import fits

    from astro_cl.surveys.mock import ssp

    directory = ssp.grid_directory()
    path = None if directory is None else directory.parents[1] / "tests" / "MaNGA_test_spectra.fits.gz"
    if path is None or not path.is_file():
        pytest.skip(f"real MaNGA spectra not found ({path}); install sdss-mangadap")
    with fits.open(path) as hdul:
        wave = ssp.vacuum_to_air(hdul["WAVE"].data.astype(float))
        flux = hdul["FLUX"].data.astype(float)
        bad = (hdul["MASK"].data != 0) | (hdul["IVAR"].data <= 0)
        snr = np.median(flux * np.sqrt(np.clip(hdul["IVAR"].data, 0, None)), axis=1)
        z = hdul["Z"].data.astype(float)
    out = []
    for i in range(flux.shape[0]):
        if bad[i].mean() > 0.1 or snr[i] < 10:  # an empty and a faint outer spectrum
            continue
        good = ~bad[i]
        f = flux[i].copy()
        f[~good] = np.interp(wave[~good], wave[good], f[good])
        out.append((wave / (1 + z[i]), f))
    return out


@pytest.fixture(scope="module")
def mock_spaxel_indices():
    import dataclasses

    from astro_cl.surveys.mock import diagnostics
    from astro_cl.surveys.mock.render import CubeRenderer

    cr = CubeRenderer(noise=False, star_rate=0, hexagon=False)
    d4, hda, ew, n2, o3 = [], [], [], [], []
    lines = {"Hbeta": 4861.33, "OIII5007": 5006.84, "Halpha": 6562.80, "NII6584": 6583.45}
    centre = np.zeros((12, 12), bool)
    centre[4:8, 4:8] = True
    for p in draw_population(24, 0, fov_arcsec=6.0):
        state = build_state(p, (12, 12), cr.pixel_scale)
        full = cr.render(state)["model"].reshape(cr.n_wave, -1).T.astype(float)
        stars = dataclasses.replace(state, lines10=np.zeros_like(state.lines10))
        cont = cr.render(stars)["model"].reshape(cr.n_wave, -1).T.astype(float)
        rest = cr.wave / (1 + state.z)
        d4.append(diagnostics.d4000n(rest, full))
        hda.append(diagnostics.hdelta_a(rest, full))
        f, e = diagnostics.line_fluxes(rest, full[centre.ravel()].sum(0),
                                       cont[centre.ravel()].sum(0), lines)
        ew.append(e["Halpha"])
        n2.append(np.log10(f["NII6584"] / f["Halpha"]))
        o3.append(np.log10(f["OIII5007"] / f["Hbeta"]))
    return (np.concatenate(d4), np.concatenate(hda), np.array(ew), np.array(n2), np.array(o3))


def test_d4000_hdelta_against_real_manga_spectra(mock_spaxel_indices):
    """A validation: real MaNGA spectra (6 usable) fall inside the mock D4000_n range, and at
    their D4000_n the mock spaxels' median H-delta_A is within 1.5 A of theirs (measured:
    0.2-0.8 A lower for the five old centres, 1.3 A lower for the star-forming one)."""
    from astro_cl.surveys.mock import diagnostics

    d4, hda = mock_spaxel_indices[:2]
    spectra_real = _manga_test_spectra()
    assert len(spectra_real) >= 5
    for rest, flux in spectra_real:
        d, h = float(diagnostics.d4000n(rest, flux)), float(diagnostics.hdelta_a(rest, flux))
        assert np.percentile(d4, 1) < d < np.percentile(d4, 99)
        near = np.abs(d4 - d) < 0.05
        assert near.sum() > 10
        assert np.median(hda[near]) == pytest.approx(h, abs=1.5)


def test_emission_lines_against_ecalifa(shared_data, mock_spaxel_indices):
    """A validation against the eCALIFA catalogue's central values: EW(H-alpha) KS < 0.35
    (measured ~0.25: the mock has fewer very weak lines) and the BPT classes (Kauffmann 2003,
    Kewley 2001) within 0.25 of the real shares (measured: SF 0.33 vs 0.41, composite 0.42
    vs 0.26, AGN/LINER 0.25 vs 0.33; the mock's H II regions follow Pettini & Pagel's two
    calibrations, which put metal-rich centres among the composites)."""
    from astropy.table import QTable
    from scipy.stats import ks_2samp

    from astro_cl.surveys.mock.diagnostics import bpt_class

    table = QTable.read(shared_data / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
    ew_real = np.asarray(table["EW_Ha_cen"].value, float)
    n2_real = np.asarray(table["log_NII_Ha_cen"].value, float)
    o3_real = np.asarray(table["log_OIII_Hb_cen"].value, float)
    _, _, ew, n2, o3 = mock_spaxel_indices
    assert ks_2samp(ew, ew_real[np.isfinite(ew_real)]).statistic < 0.35
    ok = np.isfinite(n2_real) & np.isfinite(o3_real)
    real, mock = bpt_class(n2_real[ok], o3_real[ok]), bpt_class(n2, o3)
    for name in ("SF", "composite", "AGN/LINER"):
        assert abs(np.mean(mock == name) - np.mean(real == name)) < 0.25
