"""The SDSS reader: the 20 real ugriz cutouts (.npy) and tiny real-format FITS cutouts."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import QTable
from astropy.wcs import WCS

from astro_cl.exceptions import AstroCLWarning, SurveyError
from astro_cl.surveys.sdss import SDSSSurvey

BANDS = "ugriz"


def _wcs(n=16):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [n / 2, n / 2]
    w.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    return w


def write_cutout(path, *, layout="per-band", seed=0, n=16, ivar=True, z=0.05):
    rng = np.random.default_rng(seed)
    data = rng.lognormal(size=(5, n, n)).astype(np.float32)
    hdr = _wcs(n).to_header()
    hdr["BUNIT"] = "nanomaggy"
    hdr["PSF_FWHM"] = 1.4
    if z is not None:
        hdr["Z"] = z
    if layout == "per-band":
        hdus = [fits.PrimaryHDU()]
        for b, plane in zip(BANDS, data, strict=True):
            hdus.append(fits.ImageHDU(plane, hdr, name=b))
            if ivar:
                iv = np.full_like(plane, 25.0)
                iv[0, 0] = 0
                hdus.append(fits.ImageHDU(iv, hdr, name=f"{b}_IVAR"))
    else:
        hdr["BANDS"] = "z,i,r,g,u"
        hdus = [fits.PrimaryHDU(data[::-1], hdr)]
    fits.HDUList(hdus).writeto(path)
    return data


@pytest.fixture
def cutout_dir(tmp_path):
    write_cutout(tmp_path / "a.fits", seed=0)
    write_cutout(tmp_path / "b.fits.gz", seed=1, layout="cube")
    QTable({"id": ["a", "b", "c"], "z": [0.05, 0.06, 0.07],
            "log_Mass": [10.1, 10.5, 9.9] * u.dex(u.Msun)}).write(tmp_path / "catalogue.ecsv")
    return tmp_path


def test_real_numpy_cutouts(shared_data):
    path = shared_data / "sdss" / "sdss_test_images.npy"
    survey = SDSSSurvey(path=path, unit="mag").open()
    raw = np.load(path)
    assert len(survey) == 20
    assert survey.ids[:2] == ["00", "01"]
    labels = np.load(shared_data / "sdss" / "sdss_test_labels.npy")
    np.testing.assert_array_equal(survey.catalogue["label"], labels)
    rec = survey[3]
    assert rec.bands == tuple(BANDS)
    np.testing.assert_array_equal(rec.images.data, raw[3])
    assert rec.images.unit == u.mag
    assert rec.observing.pixel_scale == 0.396 * u.arcsec / u.pix
    from astro_cl.testing import check_survey

    check_survey(survey)


def test_numpy_without_unit_warns(shared_data):
    with pytest.warns(AstroCLWarning, match="no unit"):
        SDSSSurvey(path=shared_data / "sdss" / "sdss_test_images.npy").open()


def test_numpy_wrong_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 8, 8), np.float32))
    with pytest.raises(SurveyError, match=r"expected \(N, 5, H, W\)"):
        SDSSSurvey(path=tmp_path / "x.npy", unit="mag").open()


def test_fits_cutouts_both_layouts(cutout_dir):
    with pytest.warns(AstroCLWarning, match="1 rows .* have no data file"):
        survey = SDSSSurvey(path=cutout_dir).open()
    assert survey.ids == ["a", "b"] and survey.rows_without_file_ == ["c"]
    a = write_cutout(cutout_dir / "copy-a.fits.x", seed=0)
    rec = survey["a"]
    np.testing.assert_array_equal(rec.images.data, a)
    assert rec.images.unit == u.nanomaggy
    assert rec.images.mask[:, 0, 0].all() and not rec.images.mask[:, 1, 1].any()
    std = rec.images.uncertainty.array
    assert np.isinf(std[:, 0, 0]).all()
    np.testing.assert_allclose(std[:, 1, 1], 0.2)
    assert rec.observing.psf_fwhm == 1.4 * u.arcsec and rec.observing.redshift == 0.05
    assert rec.observing.pixel_scale.to_value(u.arcsec / u.pix) == pytest.approx(0.396)
    b = write_cutout(cutout_dir / "copy-b.fits.x", seed=1)
    rec_b = survey["b"]  # 3-D HDU stored z..u: reordered to ugriz
    np.testing.assert_array_equal(rec_b.images.data, b)
    assert rec_b.images.uncertainty is None
    assert rec_b.properties["log_Mass"] == 10.5 * u.dex(u.Msun)
    from astro_cl.testing import check_survey

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCLWarning)
        check_survey(survey)


def test_maps_attached(cutout_dir):
    from astro_cl.data.fits_maps import write_maps

    write_maps(cutout_dir / "a.maps.fits",
               {"stellar_mass": NDData(np.ones((16, 16), np.float32), unit=u.Msun / u.kpc**2)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCLWarning)
        survey = SDSSSurvey(path=cutout_dir).open()
    assert survey.ids == ["a", "b"]  # the maps file is not a cutout
    assert survey["a"].maps["stellar_mass"].unit == u.Msun / u.kpc**2


def test_missing_band(tmp_path):
    hdr = _wcs().to_header()
    hdr["BUNIT"] = "nanomaggy"
    fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(np.ones((16, 16), np.float32), hdr, name=b)
                                       for b in "gri"]).writeto(tmp_path / "x.fits")
    with pytest.raises(SurveyError, match=r"missing band extension\(s\) \['u', 'z'\]"):
        SDSSSurvey(path=tmp_path).open()[0]


def test_cube_without_bands_card(tmp_path):
    fits.PrimaryHDU(np.ones((5, 8, 8), np.float32)).writeto(tmp_path / "x.fits")
    with pytest.raises(SurveyError, match="no BANDS card"):
        SDSSSurvey(path=tmp_path).open()[0]


def test_cli_info(shared_data, capsys):
    from astro_cl.cli import main

    path = shared_data / "sdss" / "sdss_test_images.npy"
    assert main(["info", "sdss", str(path), "-o", "unit=mag", "--record", "3"]) == 0
    out = capsys.readouterr().out
    assert "survey 'sdss' (SDSSSurvey): 20 galaxies" in out
    assert "label" in out and "record '03'" in out
    assert "images: shape (5, 48, 48), bands ('u', 'g', 'r', 'i', 'z'), unit mag" in out
    assert "masked fraction: 0.000; uncertainty: none" in out
    assert main(["info", "sdss", str(path), "-o", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["info", "sdss", str(path.parent / "missing.npy")]) == 2


def test_reads_the_mock_survey_files(tmp_path):
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey
    from astro_cl.testing import check_survey

    SDSSMockSurvey(n=2, seed=0, size=24).write(tmp_path, progress=False)
    survey = SDSSSurvey(path=tmp_path).open()
    rec = survey[0]
    assert rec.images.data.shape == (5, 24, 24) and rec.images.unit == u.nanomaggy
    assert "stellar_mass" in rec.maps and rec.observing.psf_fwhm is not None
    check_survey(survey)
