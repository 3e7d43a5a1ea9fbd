"""The Encoder interface's save/load, and load_model for an encoder that has neither."""

import numpy as np
import pytest

import astro_cl
from astro_cl.exceptions import CheckpointError
from astro_cl.models import Encoder
from astro_cl.plugins import registry


class _MeanEncoder(Encoder):
    """Embed each sample as its mean: an encoder without save or load."""

    name = "test-mean-encoder"
    description = "Test: the mean of each sample."

    def fit(self, X, y=None, **fit_params):
        self.fitted_ = True
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float32)
        return X.reshape(len(X), -1).mean(axis=1, keepdims=True)


@pytest.fixture
def mean_encoder(monkeypatch, fresh_registry):
    """Register the test encoder at run time; forgotten after the test."""
    monkeypatch.setattr(registry, "_RUNTIME", [])
    return registry.register_component("encoder", _MeanEncoder)


def test_interface_declares_save_and_load():
    assert callable(Encoder.save) and callable(Encoder.load)
    assert isinstance(Encoder.__dict__["load"], classmethod)


def test_save_without_an_implementation_names_the_class_and_what_to_implement(tmp_path):
    model = _MeanEncoder().fit(np.ones((2, 3)))
    with pytest.raises(CheckpointError, match=r"_MeanEncoder .*implement _MeanEncoder\.save"):
        model.save(tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
    with pytest.raises(CheckpointError, match=r"model\.pt: _MeanEncoder .*class method "
                                              r"_MeanEncoder\.load\(path"):
        _MeanEncoder.load(tmp_path / "model.pt")


def test_load_model_of_an_encoder_without_load_is_a_clear_error(mean_encoder, tmp_path):
    pytest.importorskip("torch")
    from astro_cl.training.checkpoints import make_header, save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(path, {}, make_header(mean_encoder.name, {}))
    with pytest.raises(CheckpointError) as info:
        astro_cl.load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "'test-mean-encoder' model" in message
    assert "_MeanEncoder cannot load model files" in message
    assert "load(path, *, device='cpu', **overrides)" in message


def test_output_type_and_its_deprecated_former_name_output_kind():
    from astro_cl.exceptions import AstroCLDeprecationWarning
    from astro_cl.models.regressor import CNNRegressor

    assert _MeanEncoder.output_type == "embedding" and CNNRegressor.output_type == "maps"
    with pytest.warns(AstroCLDeprecationWarning, match=r"output_kind is deprecated; use "
                                                       r"output_type"):
        assert _MeanEncoder().output_kind == "embedding"
    with pytest.warns(AstroCLDeprecationWarning, match="class attribute output_kind is "
                                                       "deprecated; name it output_type"):
        class OldStyle(_MeanEncoder):
            output_kind = "maps"

    assert OldStyle.output_type == "maps"
