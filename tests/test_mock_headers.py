"""The mock files carry the real header cards, checked card by card against the readers' layout.

CALIFA V500 cubes (reduction v2.3): PRIMARY flux with a celestial + spectral WCS whose
spectral cards are in Angstrom (``CRVAL3 = 3749``, ``CDELT3 = 2``), then ERROR,
ERRWEIGHT, BADPIX (uint8), FLAT, GAIA_MASK; tools such as pyPipe3D build the wavelengths
as ``CRVAL3 + CDELT3 * (i + 1 - CRPIX3)`` without reading units. SDSS cutouts: one
ImageHDU per band (``EXTNAME`` = band, ``BUNIT`` nanomaggy, celestial WCS) and
``<BAND>_IVAR`` extensions (see ``astro_cl.surveys.ecalifa`` and ``astro_cl.surveys.sdss``).
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.sdss_mock import SDSSMockSurvey


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ecalifa")
    cat = ECALIFAMockSurvey(n=1, seed=3, size=12).write(directory, progress=False)
    return directory / f"{cat['Name'][0]}.V500.drscube.fits", cat


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sdss")
    cat = SDSSMockSurvey(n=1, seed=3, size=16).write(directory, progress=False)
    return directory / f"{cat['id'][0]}.fits", cat


_SPECTRAL = {"CTYPE3": "AWAV", "CUNIT3": "Angstrom", "CRVAL3": 3749.0, "CDELT3": 2.0,
             "CRPIX3": 1.0}
_CELESTIAL = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg"}


def _check_cards(header, expected):
    for key, value in expected.items():
        assert key in header, f"missing card {key}"
        if isinstance(value, float):
            assert header[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert str(header[key]).strip() == value, key


def test_cube_layout_card_by_card(cube_file):
    path, cat = cube_file
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "ERROR", "ERRWEIGHT", "BADPIX", "FLAT",
                                          "GAIA_MASK"]
        primary = hdul[0].header
        assert primary["NAXIS"] == 3
        assert (primary["NAXIS3"], primary["NAXIS2"], primary["NAXIS1"]) == (1877, 12, 12)
        assert primary["BITPIX"] == -32
        assert primary["NEXTEND"] == 5
        _check_cards(primary, _SPECTRAL | _CELESTIAL)
        assert primary["CDELT1"] == pytest.approx(-0.5 / 3600)
        assert primary["CDELT2"] == pytest.approx(0.5 / 3600)
        assert primary["BUNIT"] == "1E-16 erg/s/cm^2/Angstrom"
        assert primary["OBJECT"] == cat["Name"][0]
        assert primary["Z"] == pytest.approx(float(cat["z"][0]))
        assert primary["PSF_FWHM"] == pytest.approx(2.5)
        for name in ("ERROR", "BADPIX"):
            assert hdul[name].data.shape == hdul[0].data.shape
            _check_cards(hdul[name].header, _SPECTRAL | _CELESTIAL)
        assert hdul["BADPIX"].header["BITPIX"] == 8
        assert hdul["GAIA_MASK"].header["BITPIX"] == 8
        assert hdul["GAIA_MASK"].data.shape == (12, 12)
        assert hdul["ERRWEIGHT"].data.shape == hdul["FLAT"].data.shape == (12, 12)


def test_cube_wavelengths_read_without_units(cube_file):
    """CRVAL3 + CDELT3 * (i + 1 - CRPIX3) is the wavelength in Angstrom, as tools read it."""
    path, _ = cube_file
    with fits.open(path) as hdul:
        h = hdul[0].header
        wave = h["CRVAL3"] + h["CDELT3"] * (np.arange(h["NAXIS3"]) + 1 - h["CRPIX3"])
    assert wave[0] == 3749.0 and wave[-1] == 7501.0
    back = ECALIFAMockSurvey(path=path.parent)[0]
    assert np.allclose(back.cube.spectral_axis.to_value(u.AA), wave)
    assert back.cube.flux.unit == u.Unit("1e-16 erg / (s cm2 AA)")


def test_image_layout_card_by_card(image_file):
    path, cat = image_file
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names[:11] == ["PRIMARY", "U", "U_IVAR", "G", "G_IVAR", "R", "R_IVAR", "I",
                              "I_IVAR", "Z", "Z_IVAR"]
        primary = hdul[0].header
        assert primary["BANDS"] == "u,g,r,i,z"
        assert primary["NEXTEND"] == len(hdul) - 1
        assert primary["Z"] == pytest.approx(float(cat["z"][0]))
        assert primary["OBJECT"] == cat["id"][0]
        for band in "ugriz":
            h = hdul[band.upper()].header
            assert h["BUNIT"] == "nanomaggy"
            _check_cards(h, _CELESTIAL)
            assert h["CDELT1"] == pytest.approx(-0.396 / 3600)
            assert h["PSF_FWHM"] > 1.0
            assert h["Z"] == pytest.approx(float(cat["z"][0]))
            assert hdul[band.upper()].data.shape == (16, 16)
            assert hdul[f"{band.upper()}_IVAR"].header["BUNIT"] == "nanomaggy-2"
