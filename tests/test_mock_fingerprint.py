"""Cache keys of generated mock surveys come from their fingerprint, not from their catalogue."""

import numpy as np
import pytest

import astro_cl.surveys.mock.survey as mock_survey
from astro_cl.preprocess import PreprocessedCache
from astro_cl.surveys.base import Survey
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.memory import InMemorySurvey
from astro_cl.surveys.sdss_mock import SDSSMockSurvey


def _forbid_catalogue(monkeypatch):
    def no_catalogue(self):
        raise AssertionError(f"{self.name}: the catalogue was built")

    monkeypatch.setattr(SDSSMockSurvey, "_open", no_catalogue)
    monkeypatch.setattr(ECALIFAMockSurvey, "_open", no_catalogue)


def test_key_of_a_large_mock_does_not_build_its_catalogue(tmp_path, monkeypatch):
    _forbid_catalogue(monkeypatch)
    cache = PreprocessedCache(tmp_path)
    key, inputs = cache.key(SDSSMockSurvey(n=800, seed=3))
    fingerprint = inputs["source"]["fingerprint"]
    assert fingerprint["params"]["seed"] == 3 and fingerprint["params"]["n"] == 800
    assert fingerprint["model_version"].startswith("sha256:")
    assert inputs["ids"] is None
    assert cache.key(SDSSMockSurvey(n=800, seed=3))[0] == key
    others = {cache.key(s)[0] for s in (SDSSMockSurvey(n=800, seed=4), SDSSMockSurvey(n=801, seed=3),
                                        SDSSMockSurvey(n=800, seed=3, noise=False),
                                        ECALIFAMockSurvey(n=800, seed=3))}
    assert key not in others and len(others) == 4


def test_existing_entry_is_reused_without_building_the_catalogue(tmp_path, monkeypatch):
    cache = PreprocessedCache(tmp_path)
    built = cache.get_or_build(SDSSMockSurvey(n=3, seed=5, size=16), progress=False)
    _forbid_catalogue(monkeypatch)
    again = cache.get_or_build(SDSSMockSurvey(n=3, seed=5, size=16), progress=False)
    assert again.directory == built.directory and again.ids == built.ids
    np.testing.assert_array_equal(again.arrays["data"], built.arrays["data"])


def test_model_version_enters_the_key(tmp_path, monkeypatch):
    _forbid_catalogue(monkeypatch)
    cache = PreprocessedCache(tmp_path)
    survey = SDSSMockSurvey(n=10, seed=1)
    key = cache.key(survey)[0]
    monkeypatch.setattr(mock_survey, "mock_model_version", lambda cls=None: "sha256:changed")
    assert cache.key(survey)[0] != key


def test_no_fingerprint_for_files_or_a_twin_table(tmp_path):
    from astropy.table import QTable

    assert Survey.fingerprint(InMemorySurvey(records=[])) is None
    assert SDSSMockSurvey(path=tmp_path).fingerprint() is None
    twin = QTable({"Name": ["a"], "z": [0.02]})
    assert SDSSMockSurvey(twin=twin).fingerprint() is None
    twin_file = tmp_path / "twin.csv"
    twin_file.write_text("Name,z\na,0.02\n")
    fp = SDSSMockSurvey(twin=twin_file).fingerprint()
    assert fp is not None and len(fp["params"]["twin"]) == 64  # the file's SHA-256
    twin_file.write_text("Name,z\na,0.03\n")
    assert SDSSMockSurvey(twin=twin_file).fingerprint()["params"]["twin"] != fp["params"]["twin"]


@pytest.mark.parametrize("workers", [None, 1])
def test_catalogue_workers_default_to_available_cpus(monkeypatch, workers):
    monkeypatch.setattr(mock_survey, "_CATALOGUE_WORKERS", workers)
    monkeypatch.setattr(mock_survey, "available_cpus", lambda: 1)
    assert mock_survey._catalogue_workers() == 1
    monkeypatch.setattr(mock_survey, "available_cpus", lambda: 16)
    assert mock_survey._catalogue_workers() == (2 if workers is None else workers)
