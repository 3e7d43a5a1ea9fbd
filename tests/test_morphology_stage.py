"""Morphology as the numerical Hubble stage: the helper, the catalogue columns, the study match."""

import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.tasks import compare_with_study
from astro_cl.utils.morphology import HUBBLE_STAGES, hubble_stage


@pytest.mark.parametrize(("text", "stage"), [
    ("E0", -5), ("E7", -5), ("E", -5), ("S0", -2), ("S0a", 0), ("S0/a", 0), ("Sa", 1),
    ("Sab", 2), ("Sb", 3), ("SBb", 3), ("SAB(r)c", 5), ("Sbc", 4), ("Sc", 5), ("Scd", 6),
    ("Sd", 7), ("Sdm", 8), ("Sm", 9), ("I", 10), ("Irr", 10), (b"Sa", 1), (" Sb ", 3),
])
def test_hubble_stage_of_catalogue_spellings(text, stage):
    assert hubble_stage(text) == stage


@pytest.mark.parametrize("text", ["BCD", "U", "", "--", "galaxy", "S"])
def test_types_off_the_sequence_are_nan(text):
    assert np.isnan(hubble_stage(text))


def test_hubble_stage_keeps_the_shape_and_order():
    types = np.array([["E3", "Sb"], ["Sd", "BCD"]])
    stage = hubble_stage(types)
    assert stage.shape == (2, 2) and stage.dtype == float
    assert stage[0, 0] < stage[0, 1] < stage[1, 0] and np.isnan(stage[1, 1])
    # the table is the RC3 order: every type later on the sequence has a larger T
    assert list(HUBBLE_STAGES.values())[:12] == sorted(list(HUBBLE_STAGES.values())[:12])


def test_every_type_of_the_ecalifa_catalogue_maps(shared_data):
    """The 895 real eCALIFA types: all but BCD and U (18 galaxies) get a stage."""
    cat = QTable.read(shared_data / "ecalifa" / "ecalifa_global.csv", format="ascii.ecsv")
    types = np.asarray(cat["type"]).astype(str)
    stage = hubble_stage(types)
    off = ~np.isfinite(stage)
    assert set(types[off]) == {"BCD", "U"}
    assert off.sum() == 18


def test_mock_catalogue_has_t_type_from_its_type():
    import astro_cl

    cat = astro_cl.get_survey("ecalifa-mock", n=12, size=16, seed=4).catalogue
    assert "T_type" in cat.colnames
    np.testing.assert_array_equal(np.asarray(cat["T_type"]),
                                  hubble_stage(np.asarray(cat["type"]).astype(str)))


def test_ecalifa_reader_adds_t_type(tmp_path):
    """The real-cube reader derives T_type from the catalogue's type (the mock files here)."""
    import astro_cl

    mock = astro_cl.get_survey("ecalifa-mock", n=3, size=16, seed=2)
    mock.write(tmp_path, progress=False)
    survey = astro_cl.get_survey("ecalifa", path=tmp_path)
    cat = survey.catalogue
    np.testing.assert_array_equal(np.asarray(cat["T_type"]),
                                  hubble_stage(np.asarray(cat["type"]).astype(str)))


def test_study_comparison_takes_t_type_first_and_gives_a_tau_range():
    names = ["EW_Ha_cen", "T_type", "type", "ZH_LW_Re_fit", "Age_LW_Re_fit", "Sigma_Mass_cen",
             "log_NII_Ha_cen", "log_Mass"]
    scores = [0.9, 0.8, 0.05, 0.7, 0.6, 0.5, 0.4, 0.3]
    table = QTable({"property": names, "score": scores, "score_err": np.full(8, 0.01)})
    out = compare_with_study(table)
    assert out["column"][out["property"] == "morphology"][0] == "T_type"
    assert out.meta["kendall_tau"] == pytest.approx(1.0)
    lo, hi = out.meta["kendall_tau_range"]
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # errors << gaps
    # errors as large as the gaps: the order is not firm, and the range says so
    loose = compare_with_study(QTable({"property": names, "score": scores,
                                       "score_err": np.full(8, 0.1)}), seed=3)
    lo, hi = loose.meta["kendall_tau_range"]
    assert lo < 0.6 < hi <= 1.0
    again = compare_with_study(QTable({"property": names, "score": scores,
                                       "score_err": np.full(8, 0.1)}), seed=3)
    assert again.meta["kendall_tau_range"] == loose.meta["kendall_tau_range"]
    # without errors there is no range
    bare = compare_with_study(QTable({"property": names, "score": scores}))
    assert np.isnan(bare.meta["kendall_tau_range"]).all()
