"""The MaNGA reader on the real DAP MAPS file of 7815-3702 and a tiny LOGCUBE fixture."""

import shutil

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from astropy.table import QTable

from astro_cl.exceptions import SurveyError
from astro_cl.surveys.manga import DONOTUSE_BIT, MaNGASurvey, read_dap_maps

MAPS = "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"


@pytest.fixture(scope="module")
def real_maps(shared_data):
    return shared_data / "manga" / MAPS


@pytest.fixture(scope="module")
def record(real_maps):
    return MaNGASurvey(path=real_maps).open()[0]


def test_catalogue_from_file_names(real_maps):
    survey = MaNGASurvey(path=real_maps.parent).open()
    assert survey.ids == ["7815-3702"]
    assert survey.catalogue["plate"][0] == 7815 and survey.catalogue["ifudesign"][0] == 3702


def test_multichannel_maps_with_ivar_and_mask(record, real_maps):
    ha = record.maps["emline_gflux_ha-6564"]
    assert ha.data.shape == (42, 42)
    assert ha.unit == u.Unit("1e-17 erg / (s cm2)") / u.pix
    assert isinstance(ha.uncertainty, InverseVariance)
    assert ha.mask.dtype == bool
    with fits.open(real_maps) as hdul:
        channel = 18  # C19 = 'Ha-6564'
        assert hdul["EMLINE_GFLUX"].header["C19"].strip() == "Ha-6564"
        raw = hdul["EMLINE_GFLUX"].data[channel]
        bits = hdul["EMLINE_GFLUX_MASK"].data[channel]
        ivar = hdul["EMLINE_GFLUX_IVAR"].data[channel]
    np.testing.assert_array_equal(ha.data, raw)
    np.testing.assert_array_equal(ha.uncertainty.array, ivar)
    expected = ((bits & (1 << DONOTUSE_BIT)) != 0) | ~np.isfinite(raw)
    np.testing.assert_array_equal(ha.mask, expected)
    assert 0 < ha.mask.mean() < 1
    # the flux is positive where the DAP says it is usable, and most of the centre is usable
    assert np.nanmedian(ha.data[~ha.mask]) > 0
    assert not ha.mask[21, 21]


def test_units_and_channel_names_from_header(record):
    assert record.maps["stellar_vel"].unit == u.km / u.s
    assert record.maps["stellar_sigma"].uncertainty.array.shape == (42, 42)
    assert record.maps["specindex_dn4000"].unit == u.dimensionless_unscaled
    assert record.maps["specindex_hdeltaa"].unit == u.AA
    assert record.maps["specindex_mg1"].unit == u.mag
    assert record.maps["emline_gew_ha-6564"].unit == u.AA
    assert record.maps["spx_ellcoo_elliptical_azimuth"].unit == u.deg
    assert record.maps["spx_ellcoo_r_re"].unit == u.dimensionless_unscaled
    assert "binid" not in record.maps
    assert len([k for k in record.maps if k.startswith("emline_gflux_")]) == 22


def test_observing_meta(record):
    obs = record.observing
    assert obs.pixel_scale.to_value(u.arcsec / u.pix) == pytest.approx(0.5, rel=1e-4)
    assert obs.psf_fwhm.to_value(u.arcsec) == pytest.approx(2.59937)
    assert obs.redshift == pytest.approx(8808.5919386934 / 299792.458)
    assert record.maps["stellar_vel"].wcs.has_celestial


def test_extension_subset_and_missing(real_maps):
    maps, header = read_dap_maps(real_maps, extensions=["stellar_vel"])
    assert list(maps) == ["stellar_vel"] and header["PLATEIFU"] == "7815-3702"
    with pytest.raises(SurveyError, match="missing extension 'NOPE'"):
        read_dap_maps(real_maps, extensions=["NOPE"])


def test_check_survey_and_catalogue_join(real_maps, tmp_path):
    from astro_cl.testing import check_survey

    shutil.copy(real_maps, tmp_path / MAPS)
    QTable({"plateifu": ["7815-3702"], "nsa_z": [0.0297]}).write(tmp_path / "drpall.ecsv")
    survey = MaNGASurvey(path=tmp_path, catalogue_file=tmp_path / "drpall.ecsv",
                         extensions=["STELLAR_VEL", "EMLINE_GFLUX"]).open()
    assert survey[0].observing.redshift == pytest.approx(0.0297)
    # Unusable spaxels have IVAR = 0, hence an infinite 1-sigma uncertainty (and no warning).
    check_survey(survey)
    batch = survey.to_tensors()
    assert np.isinf(batch.uncertainty.numpy()).any()
    assert tuple(batch.data.shape) == (1, 23, 42, 42)


def _write_logcube(path, n_wave=12, n=42):
    rng = np.random.default_rng(1)
    flux = rng.lognormal(size=(n_wave, n, n)).astype(np.float32)
    hdr = fits.Header()
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "WAVE-LOG",
                       "CRVAL1": 317.9, "CRVAL2": 11.5, "CRVAL3": 3.6e-7,
                       "CD1_1": -0.5 / 3600, "CD2_2": 0.5 / 3600, "CD3_3": 8.3e-11,
                       "CRPIX1": 22.0, "CRPIX2": 22.0, "CRPIX3": 1.0,
                       "CUNIT1": "deg", "CUNIT2": "deg", "CUNIT3": "m",
                       "BUNIT": "1E-17 erg/s/cm^2/Ang/spaxel", "INSTRUME": "MaNGA"}.items():
        hdr[key] = value
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "SDSS 2.5-M"
    mask = np.zeros(flux.shape, np.int32)
    mask[:, 0, 0] = 1024
    fits.HDUList([primary, fits.ImageHDU(flux, hdr, name="FLUX"),
                  fits.ImageHDU(np.full_like(flux, 4.0), hdr, name="IVAR"),
                  fits.ImageHDU(mask, hdr, name="MASK")]).writeto(path)
    return flux


def test_logcube_through_specutils(tmp_path, real_maps):
    flux = _write_logcube(tmp_path / "manga-7815-3702-LOGCUBE.fits")
    survey = MaNGASurvey(path=tmp_path).open()
    assert survey.default_kind == "cube"
    rec = survey[0]
    assert rec.cube.flux.unit.is_equivalent(u.Unit("1e-17 erg / (Angstrom cm2 s)") / u.pix)
    np.testing.assert_array_equal(np.moveaxis(rec.cube.flux.value, rec.cube.spectral_axis_index,
                                              0), flux)
    assert rec.observing.wavelength_range[0].to_value(u.AA) == pytest.approx(3600.0)
    shutil.copy(real_maps, tmp_path / MAPS)
    both = MaNGASurvey(path=tmp_path, extensions=["STELLAR_VEL"]).open()[0]
    assert both.cube is not None and list(both.maps) == ["stellar_vel"]


def test_no_files(tmp_path):
    with pytest.raises(SurveyError, match="no MaNGA files"):
        MaNGASurvey(path=tmp_path).open()


def test_cube_and_maps_on_different_grids(tmp_path, real_maps):
    _write_logcube(tmp_path / "manga-7815-3702-LOGCUBE.fits", n=6)
    shutil.copy(real_maps, tmp_path / MAPS)
    survey = MaNGASurvey(path=tmp_path, extensions=["STELLAR_VEL"]).open()
    with pytest.raises(SurveyError, match="LOGCUBE.*MAPS|spatial shape"):
        survey[0]


def test_cli_info_on_real_maps(real_maps, capsys):
    from astro_cl.cli import main

    assert main(["info", "manga", str(real_maps), "-o", 'extensions=["STELLAR_VEL"]']) == 0
    out = capsys.readouterr().out
    assert "1 galaxies" in out and "maps: 1" in out
    assert "stellar_vel: shape (42, 42), unit km / s" in out
    assert "uncertainty InverseVariance, WCS pos.eq.ra, pos.eq.dec" in out
    assert "psf_fwhm=2.59937 arcsec" in out
