"""Tests of the example plugin, as a plugin author would write them."""

import numpy as np
import pytest
from astro_cl_toy import (
    ToyAutoencoder,
    ToyGain,
    ToyPercentileScaler,
    ToySurvey,
    astro_cl_register_augmenters,
    astro_cl_register_encoders,
    astro_cl_register_preprocessors,
    astro_cl_register_surveys,
)
from astropy.table import QTable

from astro_cl import SurveyError
from astro_cl.augment import Compose, RandomFlip
from astro_cl.data.batch import TensorBatch
from astro_cl.testing import check_augmenter, check_encoder, check_preprocessor, check_survey


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


def test_the_hooks_register_the_survey_preprocessor_augmenter_and_encoder():
    registered = []
    astro_cl_register_surveys(register=registered.append)
    astro_cl_register_preprocessors(register=registered.append)
    astro_cl_register_augmenters(register=registered.append)
    astro_cl_register_encoders(register=registered.append)
    assert registered == [ToySurvey, ToyPercentileScaler, ToyGain, ToyAutoencoder]


def test_toy_preprocessor_honours_the_preprocessor_contract(toy_folder):
    check_preprocessor(ToyPercentileScaler(), ToySurvey(path=toy_folder))
    images = np.random.default_rng(1).lognormal(size=(4, 5, 8, 8)).astype(np.float32)
    check_preprocessor(ToyPercentileScaler(percentile=90.0), images)


def test_toy_preprocessor_scales_each_band_to_its_percentile(toy_folder):
    survey = ToySurvey(path=toy_folder)
    data, mask, std = ToyPercentileScaler(percentile=100.0).fit_transform(survey)
    assert data.shape == (3, 5, 8, 8) and std is None and not mask.any()
    np.testing.assert_allclose(data.max(axis=(0, 2, 3)), 1.0, rtol=1e-6)


def test_toy_augmenter_honours_the_augmenter_contract():
    check_augmenter(ToyGain())
    check_augmenter(Compose(steps=[RandomFlip(), (ToyGain(amplitude=0.5), 0.5)]))


def test_toy_augmenter_draws_gains_in_range():
    batch = TensorBatch.from_arrays(np.ones((200, 1, 2, 2), np.float32))
    gains = ToyGain(amplitude=0.2)(batch, seed=0).data[:, 0, 0, 0]
    assert 0.8 <= float(gains.min()) < 0.85 and 1.15 < float(gains.max()) <= 1.2


def test_toy_encoder_honours_the_encoder_contract(toy_folder):
    pytest.importorskip("torch")
    check_encoder(ToyAutoencoder(), ToySurvey(path=toy_folder), expected_rows=3,
                  fit_params={"trainer": {"progress": False}})


def test_toy_encoder_learns_with_the_settings_it_is_given(toy_folder):
    pytest.importorskip("torch")
    survey = ToySurvey(path=toy_folder)
    model = ToyAutoencoder(embedding_dim=4).fit(
        survey, trainer={"epochs": 40, "batch_size": 3, "progress": False})
    losses = [row["train_loss"] for row in model.history_]
    assert len(losses) == 40 and losses[-1] < 0.5 * losses[0]
    # the settings given replace the plugin's defaults one by one
    assert (model.trainer_.epochs, model.trainer_.batch_size, model.trainer_.lr) == (40, 3, 1e-2)
    assert model.transform(survey).shape == (3, 4)
