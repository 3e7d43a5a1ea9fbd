"""The eCALIFA reader on tiny real-format V500 cubes and the real catalogue/labels/split."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError
from astro_cl.surveys.ecalifa import ECALIFASurvey

N_WAVE, NY, NX = 20, 8, 7


def write_califa_cube(path, *, seed=0, bunit="10**(-16)erg s-1 cm-2 A-1", gz=False,
                      drop=(), star=True, header_edit=None):
    """Write a tiny cube with the CALIFA v2.3 layout; return the flux array."""
    rng = np.random.default_rng(seed)
    flux = rng.lognormal(size=(N_WAVE, NY, NX)).astype(np.float32)
    err = (0.1 * flux).astype(np.float32)
    badpix = np.zeros(flux.shape, np.uint8)
    badpix[:, 0, 0] = 1
    flux[3, 1, 1] = np.nan
    gaia = np.zeros((NY, NX), np.uint8)
    if star:
        gaia[5:7, 4:6] = 1
    hdr = fits.Header()
    for key, value in {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "AWAV",
        "CRVAL1": 10.0, "CRVAL2": 20.0, "CRVAL3": 3749.0,
        "CDELT1": -0.5 / 3600, "CDELT2": 0.5 / 3600, "CDELT3": 2.0,
        "CRPIX1": 4.0, "CRPIX2": 4.0, "CRPIX3": 1.0,
        "CUNIT1": "deg", "CUNIT2": "deg", "CUNIT3": "Angstrom",
        "BUNIT": bunit, "OBJECT": path.name.split(".")[0],
    }.items():
        if value is not None:
            hdr[key] = value
    for key in drop:
        hdr.remove(key, ignore_missing=True)
    if header_edit:
        header_edit(hdr)
    hdus = [fits.PrimaryHDU(flux, header=hdr), fits.ImageHDU(err, name="ERROR"),
            fits.ImageHDU(np.ones_like(flux), name="ERRWEIGHT"),
            fits.ImageHDU(badpix, name="BADPIX"), fits.ImageHDU(np.ones_like(flux), name="FLAT"),
            fits.ImageHDU(gaia, name="GAIA_MASK")]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return flux


@pytest.fixture
def cube_dir(tmp_path, shared_data):
    names = ["IC5376", "UGC00005", "NGC7819"]
    for i, name in enumerate(names):
        suffix = ".V500.drscube.fits.gz" if i == 1 else ".V500.drscube.fits"
        write_califa_cube(tmp_path / f"{name}{suffix}", seed=i)
    return tmp_path


def _open(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        survey = ECALIFASurvey(path=path, **kw).open()
    return survey, [w for w in caught if issubclass(w.category, AstroCLWarning)]


def test_open_joins_catalogue_and_reports_missing_rows(cube_dir, shared_data):
    survey, caught = _open(cube_dir, catalogue_file=shared_data / "ecalifa" / "ecalifa_global.csv")
    assert survey.ids == ["IC5376", "NGC7819", "UGC00005"]
    assert survey.cubes_without_row_ == []
    assert len(survey.rows_without_cube_) == 895 - 3
    assert any("892 rows" in str(w.message) for w in caught)
    cat = survey.catalogue
    assert cat.colnames[:2] == ["id", "file"]
    assert cat["RA"].unit == u.deg
    assert np.isclose(cat["z"][cat["id"] == "IC5376"][0], 0.01645)


def test_cube_without_row_is_kept_and_reported(cube_dir, shared_data):
    write_califa_cube(cube_dir / "NOTINCAT.V500.drscube.fits", seed=9)
    survey, caught = _open(cube_dir, catalogue_file=shared_data / "ecalifa" / "ecalifa_global.csv")
    assert survey.cubes_without_row_ == ["NOTINCAT"]
    assert "NOTINCAT" in survey
    assert any("1 galaxies with data have no row" in str(w.message) for w in caught)
    rec = survey["NOTINCAT"]
    assert rec.observing.redshift is None


def test_record_contents(cube_dir, shared_data):
    survey, _ = _open(cube_dir, catalogue_file=shared_data / "ecalifa" / "ecalifa_global.csv")
    rec = survey["IC5376"]
    flux = write_califa_cube(cube_dir / "copy.fits", seed=0)
    cube = rec.cube
    assert cube.flux.shape == (N_WAVE, NY, NX)
    assert cube.spectral_axis_index == 0
    assert cube.flux.unit == u.Unit("1e-16 erg / (s cm2 Angstrom)")
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA)[[0, -1]],
                               [3749.0, 3749.0 + 2 * (N_WAVE - 1)])
    good = np.isfinite(flux)
    np.testing.assert_allclose(cube.uncertainty.array[good], 0.1 * flux[good], rtol=1e-6)
    np.testing.assert_array_equal(cube.flux.value[good], flux[good])
    assert cube.mask[:, 0, 0].all() and cube.mask[3, 1, 1]
    assert cube.mask[:, 5, 4].all()  # star
    assert not cube.mask[:, 3, 3].any()
    assert rec.star_mask.dtype == bool and rec.star_mask.sum() == 4
    obs = rec.observing
    assert obs.pixel_scale.to_value(u.arcsec / u.pix) == pytest.approx(0.5)
    assert obs.psf_fwhm == 2.5 * u.arcsec
    assert obs.redshift == pytest.approx(0.01645)
    assert rec.properties["type"] == "Sb"
    assert cube.wcs.has_celestial


def test_gzip_cube_and_check_survey(cube_dir, shared_data):
    from astro_cl.testing import check_survey

    survey, _ = _open(cube_dir, catalogue_file=shared_data / "ecalifa" / "ecalifa_global.csv")
    rec = survey["UGC00005"]
    assert rec.meta["file"].endswith(".fits.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCLWarning)  # check_survey clones and re-opens
        check_survey(survey)
    batch = survey.to_tensors(survey.ids[:2])
    assert tuple(batch.data.shape) == (2, N_WAVE, NY, NX)
    assert tuple(batch.star_mask.shape) == (2, 1, NY, NX)


def test_labels_and_split(cube_dir, shared_data):
    d = shared_data / "ecalifa"
    survey, _ = _open(cube_dir, catalogue_file=d / "ecalifa_global.csv",
                      labels=d / "galaxies_properties.fits", split=d / "train_test_edr.npz")
    cat = survey.catalogue
    assert "Age_LW_int" in cat.colnames and "z_labels" in cat.colnames
    assert set(survey.split_ids("train")) | set(survey.split_ids("test")) == set(survey.ids)
    assert len(survey.split_unmatched_) > 800
    with pytest.raises(ValueError, match="train"):
        survey.split_ids("validation")


def test_split_required_for_split_ids(cube_dir):
    survey = ECALIFASurvey(path=cube_dir).open()
    with pytest.raises(SurveyError, match="no split"):
        survey.split_ids("train")


def test_maps_attached(cube_dir):
    from astro_cl.data.fits_maps import write_maps

    m = NDData(np.ones((NY, NX), np.float32), unit=u.mag)
    write_maps(cube_dir / "IC5376.maps.fits", {"av": m})
    survey = ECALIFASurvey(path=cube_dir).open()
    assert list(survey["IC5376"].maps) == ["av"]
    assert survey["NGC7819"].maps == {}


def test_bunit_fallback_warns(tmp_path):
    write_califa_cube(tmp_path / "X.V500.drscube.fits", drop=("BUNIT",))
    survey = ECALIFASurvey(path=tmp_path).open()
    with pytest.warns(AstroCLWarning, match="no BUNIT"):
        rec = survey[0]
    assert rec.cube.flux.unit == u.Unit("1e-16 erg / (s cm2 Angstrom)")


def test_catalogue_without_join_column(cube_dir):
    QTable({"galaxy": ["IC5376"]}).write(cube_dir / "catalogue.ecsv")
    with pytest.raises(CatalogueError, match="join column 'Name'"):
        ECALIFASurvey(path=cube_dir).open()


def test_params_roundtrip(cube_dir):
    from astro_cl.base import clone

    survey = ECALIFASurvey(path=cube_dir, catalogue_file="x.ecsv")
    assert survey.get_params()["catalogue_file"] == "x.ecsv"
    assert clone(survey).catalogue_file == "x.ecsv"
    survey.set_params(catalogue_file=None)
    assert len(survey.open()) == 3


def test_registered():
    from astro_cl.plugins.registry import get_component_class

    assert get_component_class("survey", "ecalifa") is ECALIFASurvey


def test_reads_the_mock_survey_files(tmp_path):
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.testing import check_survey

    ECALIFAMockSurvey(n=2, seed=0, size=16).write(tmp_path, progress=False)
    survey = ECALIFASurvey(path=tmp_path).open()
    assert len(survey) == 2 and survey.cubes_without_row_ == []
    rec = survey[0]
    assert rec.cube.flux.shape[1:] == (16, 16)
    assert "stellar_mass" in rec.maps and rec.star_mask is not None
    assert rec.observing.redshift == pytest.approx(float(survey.catalogue["z"][0]))
    check_survey(survey, n_records=1)
