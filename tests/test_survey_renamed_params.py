"""Surveys' catalogue_file= parameter and its deprecated former name catalogue=."""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from astro_cl.base import clone
from astro_cl.exceptions import AstroCLDeprecationWarning, ValidationError
from astro_cl.surveys.ecalifa import ECALIFASurvey
from astro_cl.surveys.manga import MaNGASurvey
from astro_cl.surveys.pipe3d import Pipe3DSurvey
from astro_cl.surveys.sdss import SDSSSurvey

SURVEYS = [ECALIFASurvey, MaNGASurvey, Pipe3DSurvey, SDSSSurvey]


@pytest.fixture
def cutouts(tmp_path):
    """Two SDSS cube cutouts and a catalogue beside them under another name."""
    hdr = fits.Header()
    hdr["BANDS"] = "u,g,r,i,z"
    hdr["BUNIT"] = "nanomaggy"
    hdr.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0,
                "CRPIX1": 4.0, "CRPIX2": 4.0, "CDELT1": -0.396 / 3600, "CDELT2": 0.396 / 3600,
                "CUNIT1": "deg", "CUNIT2": "deg"})
    for gid in ("a", "b"):
        fits.PrimaryHDU(np.ones((5, 8, 8), np.float32), hdr).writeto(tmp_path / f"{gid}.fits")
    QTable({"id": ["a", "b"], "z": [0.01, 0.02]}).write(tmp_path / "cat.ecsv")
    return tmp_path


def test_deprecation_warning_class():
    from astropy.utils.exceptions import AstropyDeprecationWarning

    from astro_cl.exceptions import AstroCLWarning

    assert issubclass(AstroCLDeprecationWarning, AstropyDeprecationWarning)
    assert issubclass(AstroCLDeprecationWarning, AstroCLWarning)
    assert AstroCLDeprecationWarning.__module__ == "astro_cl.exceptions"


@pytest.mark.parametrize("cls", SURVEYS, ids=lambda c: c.name)
def test_catalogue_file_is_the_parameter(cls):
    survey = cls(catalogue_file="x.ecsv")
    params = survey.get_params()
    assert params["catalogue_file"] == "x.ecsv" and "catalogue" not in params
    assert clone(survey).catalogue_file == "x.ecsv"
    survey.set_params(catalogue_file="y.ecsv")
    assert survey.catalogue_file == "y.ecsv"


@pytest.mark.parametrize("cls", SURVEYS, ids=lambda c: c.name)
def test_former_name_still_works_with_a_deprecation_warning(cls):
    with pytest.warns(AstroCLDeprecationWarning,
                      match=r"catalogue= is deprecated; use catalogue_file=") as record:
        survey = cls(catalogue="x.ecsv")
    assert record[0].filename == __file__  # points at the caller
    assert survey.catalogue_file == "x.ecsv"
    assert "catalogue" not in survey.get_params()
    with pytest.warns(AstroCLDeprecationWarning, match="use catalogue_file=") as record:
        survey.set_params(catalogue="y.ecsv")
    assert record[0].filename == __file__
    assert survey.catalogue_file == "y.ecsv"


@pytest.mark.parametrize("cls", SURVEYS, ids=lambda c: c.name)
def test_both_names_at_once_is_an_error(cls):
    with pytest.raises(ValidationError, match=r"catalogue= is the former name of "
                                              r"catalogue_file=; give only catalogue_file="):
        cls(catalogue="x.ecsv", catalogue_file="y.ecsv")
    with pytest.raises(ValidationError, match="give only catalogue_file="):
        cls().set_params(catalogue="x.ecsv", catalogue_file="y.ecsv")


def test_former_name_reads_the_catalogue_and_set_params_forgets_the_opened_one(cutouts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        survey = SDSSSurvey(path=cutouts, catalogue_file=cutouts / "cat.ecsv").open()
    assert "z" in survey.catalogue.colnames
    with pytest.warns(AstroCLDeprecationWarning):
        survey.set_params(catalogue=None)
    assert "z" not in survey.catalogue.colnames  # reopened without the catalogue
    with pytest.warns(AstroCLDeprecationWarning):
        old = SDSSSurvey(path=cutouts, catalogue=cutouts / "cat.ecsv")
    np.testing.assert_allclose(old.catalogue["z"], [0.01, 0.02])


def test_cli_set_catalogue_still_works(cutouts, capsys):
    from astro_cl.cli import main

    assert main(["info", "sdss", str(cutouts), "--set",
                 f"catalogue_file={cutouts / 'cat.ecsv'}"]) == 0
    assert "z" in capsys.readouterr().out.split()
    with pytest.warns(AstroCLDeprecationWarning, match="use catalogue_file="):
        assert main(["info", "sdss", str(cutouts), "--set",
                     f"catalogue={cutouts / 'cat.ecsv'}"]) == 0
    assert "z" in capsys.readouterr().out.split()


def test_configuration_file_with_the_former_name_still_validates_and_opens(cutouts, tmp_path):
    from astro_cl.plugins.registry import get_survey
    from astro_cl.training.config import load_config

    path = tmp_path / "run.toml"
    path.write_text(f'[survey]\nname = "sdss"\npath = "{cutouts}"\n'
                    f'catalogue = "{cutouts / "cat.ecsv"}"\n\n[model]\nname = "simclr"\n')
    survey_cfg = dict(load_config(path)["survey"])
    with pytest.warns(AstroCLDeprecationWarning, match="use catalogue_file="):
        survey = get_survey(survey_cfg.pop("name"), **survey_cfg)
    assert "z" in survey.catalogue.colnames
