"""The parameter schema derived from ``__init__`` signatures (astro_cl.training.schema)."""

import numpy as np
import pytest

from astro_cl.base import Component
from astro_cl.exceptions import ValidationError
from astro_cl.training.schema import (
    TRAINER_CONSTRAINTS,
    Interval,
    Options,
    Schedule,
    SequenceOf,
    param_constraints,
    validate_params,
)


class Toy(Component):
    name = "toy"
    _parameter_constraints = {"mode": [Options("a", "b")]}

    def __init__(self, *, flag=True, count=3, scale=1.5, label="x", sizes=(1, 2), names=("u",),
                 mode="a", anything=None):
        self.flag = flag
        self.count = count
        self.scale = scale
        self.label = label
        self.sizes = sizes
        self.names = names
        self.mode = mode
        self.anything = anything


class OpenEnded(Component):
    name = "open"

    def __init__(self, *, n=1, **extra):
        self.n = n
        self.extra = extra


@pytest.mark.parametrize(("params", "message"), [
    ({"flag": 1}, "flag = 1: expected true or false"),
    ({"count": 2.0}, "count = 2.0: expected an integer"),
    ({"count": True}, "count = True: expected an integer"),
    ({"scale": "big"}, "scale = 'big': expected a number"),
    ({"label": 3}, "label = 3: expected a string"),
    ({"sizes": [1, "2"]}, "sizes = [1, '2']: expected a list of integers"),
    ({"names": "u"}, "names = 'u': expected a list of strings"),
    ({"mode": "c"}, "mode = 'c': expected one of 'a', 'b'"),
    ({"colour": "red"}, "colour is not a parameter of 'toy'"),
])
def test_types_follow_the_defaults(params, message):
    with pytest.raises(ValidationError, match="^where: ") as info:
        validate_params(Toy, params, where="where")
    assert message in str(info.value)


def test_accepted_values():
    validate_params(Toy, {"flag": np.bool_(False), "count": np.int64(4), "scale": 2,
                          "sizes": np.array([3, 4]), "names": ["g", "r"], "mode": "b",
                          "anything": object()})
    constraints = param_constraints(Toy, numbers_only=True)
    assert constraints["label"] is None and constraints["sizes"] is None
    assert constraints["count"] == [int]


def test_keyword_arguments_are_open_ended():
    validate_params(OpenEnded, {"n": 2, "whatever": "x"})
    with pytest.raises(ValidationError, match="n = 'x'"):
        validate_params(OpenEnded, {"n": "x"})


def test_fallback_checks_undeclared_trainer_parameters():
    class Plain(Component):
        name = "plain"

        def __init__(self, *, epochs=None):
            self.epochs = epochs

    validate_params(Plain, {"epochs": "ten"})  # a None default: unchecked
    with pytest.raises(ValidationError, match="epochs = 'ten'"):
        validate_params(Plain, {"epochs": "ten"}, fallback=TRAINER_CONSTRAINTS)


@pytest.mark.parametrize(("value", "problem"), [
    ({"name": "step", "gamma": 0.5}, None),
    ({"name": "cosine", "epochs": 10, "min_factor": 0.1}, None),
    ({"name": "multistep", "milestones": [2, -1]}, "milestones = [2, -1]"),
    ({"name": "warm"}, "unknown schedule name 'warm'"),
    ({"name": "step", "epochs": 3}, "schedule 'step' has no key 'epochs'"),
])
def test_schedule_tables(value, problem):
    found = Schedule().problem(value)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_descriptions():
    assert Interval(float, 0, 1, closed="left").describe() == "a number in [0, 1)"
    assert Interval(int, None, 5, closed="neither").describe() == "an integer < 5"
    assert SequenceOf(Interval(int, 1, None), min_length=1).describe() == \
        "a list of integers >= 1 (at least 1)"
    assert not Interval(float, 0, None).accepts(float("nan"))
    assert Options("adam", case_sensitive=False).accepts("ADAM")


def test_cosine_preset_anneals_over_the_run():
    """``schedule = "cosine"`` (a name, as a TOML file writes it) spans the run's epochs."""
    from astro_cl.training.settings import TrainerConfig
    from astro_cl.training.trainer import lr_factor

    table = TrainerConfig(schedule="cosine", epochs=20).schedule_table()
    assert table == {"name": "cosine", "min_factor": 0.0, "epochs": 20}
    assert lr_factor(table, 0) == pytest.approx(1.0)
    assert lr_factor(table, 10) == pytest.approx(0.5)
    # a table that names its own length keeps it
    own = TrainerConfig(schedule={"name": "cosine", "epochs": 5}, epochs=20).schedule_table()
    assert own["epochs"] == 5


def test_patience_zero_is_accepted():
    from astro_cl.training.settings import TrainerConfig

    assert TRAINER_CONSTRAINTS["patience"][1].accepts(0)
    assert not TRAINER_CONSTRAINTS["patience"][1].accepts(-1)
    assert TrainerConfig(patience=0).patience == 0


def test_config_names_a_wrong_data_kind(tmp_path):
    from astro_cl.training.config import load_config

    path = tmp_path / "run.toml"
    path.write_text('[survey]\nname = "sdss-mock"\n[model]\nname = "simclr"\n'
                    '[training]\nkind = "image"\n')
    with pytest.raises(ValidationError,
                       match=r"run\.toml: training\.kind = 'image': expected one of 'images'"):
        load_config(path)
