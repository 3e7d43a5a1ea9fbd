"""Models hold networks and losses; training settings are a TrainerConfig given to fit."""

import json

import numpy as np
import pytest

from astro_cl.exceptions import ValidationError
from astro_cl.training import TrainerConfig

torch = pytest.importorskip("torch")

from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.models.regressor import CNNRegressor  # noqa: E402
from astro_cl.models.simclr import SimCLR  # noqa: E402
from astro_cl.training.checkpoints import make_header, save_checkpoint  # noqa: E402

SIMCLR_STUDY = {"optimizer": "adam", "lr": 8e-4, "weight_decay": 0.0, "schedule": "step",
                "epochs": 50, "batch_size": None, "validation_fraction": 0.0, "patience": 3,
                "seed": 42}
PICASSSO = {"optimizer": "adam", "lr": 1e-5, "weight_decay": 0.0, "schedule": "multistep",
            "epochs": 13, "batch_size": 16, "validation_fraction": 0.2, "patience": None,
            "seed": 0}


def _images(n=8, c=2, size=16, seed=0):
    return TensorBatch.from_arrays(
        np.random.default_rng(seed).normal(size=(n, c, size, size)).astype(np.float32))


def test_models_take_no_training_settings():
    settings = set(TrainerConfig.settings())
    for cls in (SimCLR, CNNRegressor):
        assert not settings & set(cls._param_names()), cls
    assert len(SimCLR._param_names()) == 11  # was 25 with the trainer's 14


@pytest.mark.parametrize(("model", "study"), [(SimCLR(), SIMCLR_STUDY),
                                              (CNNRegressor(), PICASSSO)])
def test_default_trainers_are_the_studies(model, study):
    got = model.default_trainer().get_params()
    assert {k: got[k] for k in study} == study
    assert got["precision"] == "auto"


def test_from_spec_overrides_the_defaults_key_by_key():
    defaults = SimCLR().default_trainer()
    merged = TrainerConfig.from_spec({"epochs": 3, "lr": 1e-3}, defaults=defaults)
    assert (merged.epochs, merged.lr, merged.schedule, merged.seed) == (3, 1e-3, "step", 42)
    assert defaults.epochs == 50  # not modified
    assert TrainerConfig.from_spec(None, defaults=defaults).get_params() == \
        defaults.get_params()
    given = TrainerConfig(epochs=2)
    copy = TrainerConfig.from_spec(given, defaults=defaults)
    assert copy is not given and copy.get_params() == given.get_params()  # not merged
    with pytest.raises(ValidationError, match=r"\['width'\] are not training settings"):
        TrainerConfig.from_spec({"width": 0.5})
    with pytest.raises(ValidationError, match="expected a TrainerConfig, a dict"):
        TrainerConfig.from_spec(["epochs", 3])


def test_bf16_is_an_alias_of_precision():
    assert TrainerConfig.from_spec({"bf16": True}).precision == "bf16"
    assert TrainerConfig.from_spec({"bf16": False}).precision == "fp32"
    assert TrainerConfig.from_spec({"bf16": True, "precision": "bf16"}).precision == "bf16"
    with pytest.raises(ValidationError, match="contradicts precision = 'fp32'"):
        TrainerConfig.from_spec({"bf16": True, "precision": "fp32"})
    with pytest.raises(ValidationError, match="bf16 = 'yes': expected true or false"):
        TrainerConfig.from_spec({"bf16": "yes"})


def test_settings_are_checked_when_fitting():
    config = TrainerConfig(lr=-1.0)  # stored only
    with pytest.raises(ValidationError, match=r"^TrainerConfig: lr = -1.0: expected a number"):
        config.validate()
    with pytest.raises(ValidationError, match="^SimCLR.fit: trainer: precision = 'fp16'"):
        SimCLR(width=1 / 16).fit(_images(), trainer={"precision": "fp16"})


def test_fit_keeps_and_saves_the_settings(tmp_path):
    model = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4).fit(
        _images(), trainer={"epochs": 2, "batch_size": 4, "progress": False, "seed": 7})
    assert len(model.history_) == 2
    assert model.trainer_.get_params() == {**SIMCLR_STUDY, "epochs": 2, "batch_size": 4,
                                           "seed": 7, "device": None, "checkpoint_dir": None,
                                           "progress": False, "num_threads": None,
                                           "precision": "auto"}
    model.save(tmp_path / "m.pt")
    assert "training settings: " in (tmp_path / "m.md").read_text()
    back = SimCLR.load(tmp_path / "m.pt", trainer={"precision": "fp32"})
    assert back.trainer_.get_params() == {**model.trainer_.get_params(), "precision": "fp32"}


def test_the_same_settings_give_the_same_model():
    """A TrainerConfig and the dict of its differences from the defaults train alike."""
    kw = {"epochs": 2, "batch_size": 4, "lr": 2e-3, "progress": False, "seed": 3}
    a = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4).fit(_images(), trainer=kw)
    settings = TrainerConfig(**{**SIMCLR_STUDY, **kw})
    b = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4).fit(_images(), trainer=settings)
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    np.testing.assert_array_equal(a.transform(_images()), b.transform(_images()))


def test_files_from_before_trainer_config_load_with_their_settings(tmp_path):
    """Settings used to be saved among the model parameters (bf16 included)."""
    model = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4).fit(
        _images(), trainer={"epochs": 1, "progress": False})
    old = {**model.get_params(), "epochs": 9, "batch_size": 5, "lr": 1e-3, "bf16": True,
           "device": None, "progress": True}
    save_checkpoint(tmp_path / "old.pt",
                    {"model_state": model.module_.state_dict(), "extra": {"info": model.info_}},
                    make_header("simclr", old))
    back = SimCLR.load(tmp_path / "old.pt")
    assert (back.trainer_.epochs, back.trainer_.batch_size, back.trainer_.lr) == (9, 5, 1e-3)
    assert back.trainer_.precision == "bf16" and back.trainer_.schedule == "step"
    np.testing.assert_allclose(back.transform(_images()), model.transform(_images()),
                               atol=0.05)  # bf16 inference of the same weights


def test_split_settings_for_callers_that_mix_them():
    model, settings = SimCLR.split_settings({"width": 0.5, "epochs": 4, "bf16": False})
    assert model == {"width": 0.5} and settings == {"epochs": 4, "precision": "fp32"}
    with pytest.raises(ValidationError, match=r"\['colour'\] are neither model parameters"):
        CNNRegressor.split_settings({"colour": "red"})


# -- the TOML run configuration -------------------------------------------------------
def _config(tmp_path, **sections):
    from astro_cl.training.config import load_config

    base = {"survey": {"name": "sdss-mock", "n": 4, "size": 16},
            "model": {"name": "cnn-regressor", "width": 0.0625},
            "training": {"epochs": 1, "progress": False}}
    for name, table in sections.items():
        base[name] = {**base.get(name, {}), **table}
    lines = []
    for name, table in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


def test_config_sections_become_model_and_trainer(tmp_path):
    from astro_cl.training.config import build_run

    run = build_run(_config(tmp_path, optimizer={"name": "adamw", "lr": 1e-3},
                            training={"bf16": True, "checkpoint_dir": "ck", "kind": "images"}))
    assert run["encoder"].get_params()["width"] == 0.0625 and run["encoder"].kind == "images"
    trainer = run["trainer"]
    # given keys replace the model's study defaults; the rest stay (validation 0.2)
    assert (trainer.optimizer, trainer.lr, trainer.epochs, trainer.precision) == \
        ("adamw", 1e-3, 1, "bf16")
    assert (trainer.validation_fraction, trainer.batch_size) == (0.2, 16)
    assert str(run["cache_dir"]) == "ck/cache"


@pytest.mark.parametrize(("sections", "message"), [
    ({"model": {"epochs": 3}}, "model.epochs: training settings belong in [training]"),
    ({"training": {"width": 0.5}}, "training.width is not a training setting"),
    ({"training": {"epochs": "ten"}}, "training.epochs = 'ten': expected an integer >= 0"),
    ({"optimizer": {"name": "rmsprop"}}, "optimizer.name = 'rmsprop'"),
    ({"training": {"bf16": 1}}, "training.bf16: bf16 = 1: expected true or false"),
])
def test_config_errors_name_the_section(tmp_path, sections, message):
    with pytest.raises(ValidationError) as info:
        _config(tmp_path, **sections)
    assert message in str(info.value) and "c.toml" in str(info.value)
