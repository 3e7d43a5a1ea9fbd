"""The Pipe3D reader on the real NGC 4047 per-spaxel file."""

import warnings

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning, SurveyError
from astro_cl.surveys.pipe3d import Pipe3DSurvey, read_pipe3d_maps

FILE = "NGC4047_allpix.pipe3d.hdf5"


@pytest.fixture(scope="module")
def pipe3d_file(shared_data):
    return shared_data / "pipe3d" / FILE


@pytest.fixture(scope="module")
def ssp_maps(pipe3d_file):
    return read_pipe3d_maps(pipe3d_file, tables=["SSP"])


def test_scatter_back_onto_grid(pipe3d_file, ssp_maps):
    maps, name = ssp_maps
    assert name == "NGC4047"
    with h5py.File(pipe3d_file) as fh:
        raw = fh["SSP"][:]
    ix, iy = raw["ix"], raw["iy"]
    age = maps["age_lwt"]
    assert age.data.shape == (iy.max() + 1, ix.max() + 1) == (72, 77)
    # every spaxel lands on its own pixel with its own value
    np.testing.assert_array_equal(age.data[iy, ix], raw["age_lwt"].astype(np.float32))
    assert age.unit == u.dex(u.yr)
    np.testing.assert_array_equal(age.mask, ~np.isfinite(age.data))
    good = ~age.mask
    assert good.any()
    # light-weighted ages of a spiral's stellar populations: 10^8 - 10^10.3 yr
    assert 8 < np.median(age.data[good]) < 10.3


def test_relative_errors_are_not_uncertainties(ssp_maps):
    maps, _ = ssp_maps
    assert maps["age_lwt"].uncertainty is None  # e_age_lwt is a fraction
    assert "e_age_lwt" in maps
    assert maps["e_age_lwt"].unit == u.dimensionless_unscaled
    assert maps["Av_ssp"].uncertainty is not None  # e_Av_ssp in mag, like Av_ssp
    assert "e_Av_ssp" not in maps


def test_wcs_fitted_to_spaxel_coordinates(pipe3d_file, ssp_maps):
    maps, _ = ssp_maps
    wcs = maps["age_lwt"].wcs
    t = QTable.read(pipe3d_file, path="SSP")
    sky = wcs.pixel_to_world(np.asarray(t["ix"], float), np.asarray(t["iy"], float))
    sep = np.abs(sky.ra.deg - t["ra_abs"].to_value(u.deg)) * np.cos(np.deg2rad(48.6))
    assert np.nanmax(sep) * 3600 < 0.1
    assert wcs.proj_plane_pixel_scales()[0].to_value(u.arcsec) == pytest.approx(1.0, rel=1e-3)


def test_survey_with_catalogue_and_check(pipe3d_file, shared_data):
    from astro_cl.testing import check_survey

    survey = Pipe3DSurvey(path=pipe3d_file, tables=["ELINES"],
                          catalogue_file=shared_data / "ecalifa" / "ecalifa_global.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCLWarning)  # 894 catalogue rows without a file
        survey.open()
        check_survey(survey, n_records=1)
    rec = survey[0]
    assert rec.id == "NGC4047"
    assert rec.observing.redshift == pytest.approx(float(survey.catalogue["z"][0]))
    assert rec.maps["Halpha"].unit == u.Unit("1e-16 erg / (s cm2)")
    assert rec.maps["Halpha"].uncertainty is not None
    assert rec.observing.pixel_scale.to_value(u.arcsec / u.pix) == pytest.approx(1.0, rel=1e-3)


def test_missing_table_and_column_selection(pipe3d_file):
    with pytest.raises(SurveyError, match="missing table"):
        read_pipe3d_maps(pipe3d_file, tables=["NOPE"])
    maps, _ = read_pipe3d_maps(pipe3d_file, tables=["indices"], columns=["D4000_idx"])
    assert list(maps) == ["D4000_idx"]


def test_not_hdf5(tmp_path):
    bad = tmp_path / "X_allpix.pipe3d.hdf5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(SurveyError, match="not a readable HDF5"):
        Pipe3DSurvey(path=tmp_path).open()[0]
