"""Tests of the example plugin, as a plugin author would write them."""

import numpy as np
import pytest
from astro_cl_toy import ToySurvey, astro_cl_register_surveys
from astropy.table import QTable

from astro_cl import SurveyError
from astro_cl.testing import check_survey


@pytest.fixture
def toy_folder(tmp_path):
    """Three tiny galaxies in the toy format."""
    rng = np.random.default_rng(0)
    for gid in ("a", "b", "c"):
        np.save(tmp_path / f"{gid}.npy", rng.random((5, 8, 8)).astype(np.float32))
    QTable({"id": ["a", "b", "c"], "redshift": [0.01, 0.02, 0.03]}).write(
        tmp_path / "catalogue.csv", format="ascii.csv")
    return tmp_path


def test_toy_survey_honours_the_survey_contract(toy_folder):
    check_survey(ToySurvey(path=toy_folder))


def test_toy_survey_reads_images_and_redshifts(toy_folder):
    survey = ToySurvey(path=toy_folder)
    assert survey.ids == ["a", "b", "c"]
    assert survey["b"].observing.redshift == pytest.approx(0.02)
    assert survey.to_tensors().data.shape == (3, 5, 8, 8)


def test_missing_catalogue_is_a_clear_error(tmp_path):
    with pytest.raises(SurveyError, match="catalogue.csv"):
        ToySurvey(path=tmp_path).open()


def test_the_hook_registers_the_survey():
    registered = []
    astro_cl_register_surveys(register=registered.append)
    assert registered == [ToySurvey]
