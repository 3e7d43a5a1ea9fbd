"""Every error a user can cause on the command line: one clear line on stderr, exit status 2.

Each case ran into a traceback (or was silently accepted) before the run
configuration was checked against its schema (`astro_cl.training.schema`).
"""

import pytest

from astro_cl.cli import main

pytest.importorskip("torch")

CONFIG = """\
[survey]
name = "sdss-mock"
n = 4
size = 32

[model]
name = "simclr"
width = 0.0625

[optimizer]
name = "adam"
lr = 1e-3

[training]
epochs = 1
batch_size = 2
progress = false
"""


def run_cli(capsys, argv):
    """Run ``astro-cl`` in-process; return (status, stderr)."""
    status = main(argv)
    return status, capsys.readouterr().err


def assert_one_line_error(status, err, *needles):
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("astro-cl "), err
    assert ": error: " in lines[0], err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(CONFIG)
    return "c.toml"


@pytest.mark.parametrize(("override", "needles"), [
    ("training.epochs=ten", ["training.epochs", "'ten'", "an integer >= 0"]),
    ("training.batch_size=abc", ["training.batch_size", "'abc'", "an integer >= 1"]),
    ("model.width=wide", ["model.width", "'wide'", "a number > 0"]),
    ("optimizer.lr=fast", ["optimizer.lr", "'fast'", "a number >= 0"]),
    ("model.hidden=16", ["model.hidden", "16", "a list of integers >= 1"]),
    ("optimizer.name=rmsprop", ["optimizer.name", "'rmsprop'", "'adam', 'adamw', 'sgd'"]),
    ("training.schedule=warm", ["training.schedule", "'warm'", "'step'"]),
    ("training.schedule={name='step',gama=0.5}", ["training.schedule", "no key 'gama'"]),
    ("training.patience=1.5", ["training.patience", "1.5", "an integer >= 0"]),
    ("training.progress=yes", ["training.progress", "'yes'", "true or false"]),
    ("survey.n=abc", ["survey.n", "'abc'", "an integer"]),
    ("survey.nn=3", ["survey.nn", "not a parameter of 'sdss-mock'"]),
    ("model.nonsense=1", ["model.nonsense", "not a parameter of 'simclr'"]),
])
def test_wrong_types_in_overrides(capsys, config, override, needles):
    status, err = run_cli(capsys, ["train", config, "--set", override])
    assert_one_line_error(status, err, "c.toml", *needles)


def test_wrong_type_in_the_file_itself(capsys, config, tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG.replace("epochs = 1", 'epochs = "1"'))
    status, err = run_cli(capsys, ["train", config])
    assert_one_line_error(status, err, "training.epochs = '1'", "an integer >= 0")


@pytest.mark.parametrize(("override", "needles"), [
    ("training.epochs=-1", ["training.epochs = -1", "an integer >= 0"]),
    ("training.epochs=1.5", ["training.epochs = 1.5"]),
    ("training.batch_size=0", ["training.batch_size = 0"]),
    ("model.width=-1", ["model.width = -1", "a number > 0"]),
    ("model.dropout=1.5", ["model.dropout = 1.5", "[0, 1)"]),
    ("training.validation_fraction=1", ["training.validation_fraction = 1"]),
])
def test_values_that_make_no_sense_are_refused(capsys, config, override, needles):
    status, err = run_cli(capsys, ["train", config, "--set", override])
    assert_one_line_error(status, err, *needles)


def test_cuda_device_without_cuda(capsys, config):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status, err = run_cli(capsys, ["train", config, "--set", "training.device=cuda"])
    assert_one_line_error(status, err, "training.device = 'cuda'", "CUDA is not available")


def test_directory_as_config(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    status, err = run_cli(capsys, ["train", "runs"])
    assert_one_line_error(status, err, "runs", "is a directory")


def test_binary_file_as_config(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04\x80\xff\x00binary junk")
    status, err = run_cli(capsys, ["train", "model.pt"])
    assert_one_line_error(status, err, "model.pt", "not a TOML text file")


def test_unknown_survey_option_in_info(capsys):
    status, err = run_cli(capsys, ["info", "sdss-mock", "-o", "bogus=1"])
    assert_one_line_error(status, err, "bogus", "not a parameter of 'sdss-mock'")


def test_mistyped_survey_option_in_info(capsys):
    status, err = run_cli(capsys, ["info", "sdss-mock", "-o", "n=abc"])
    assert_one_line_error(status, err, "n = 'abc'", "an integer")


@pytest.mark.filterwarnings("ignore:survey 'image-folder'")
def test_empty_survey(capsys, tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    import numpy as np
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "imgs" / "g0.png")
    (tmp_path / "labels.csv").write_text("id,z\nsomeone_else,0.1\n")
    (tmp_path / "c.toml").write_text(CONFIG.replace(
        'name = "sdss-mock"\nn = 4\nsize = 32',
        'name = "image-folder"\npath = "imgs"\nlabels = "labels.csv"\nrequire_labels = true'))
    # no image has a label: the survey is empty
    assert main(["info", "image-folder", "imgs", "-o", "labels=labels.csv",
                 "-o", "require_labels=true"]) == 0
    assert "0 galaxies" in capsys.readouterr().out
    status, err = run_cli(capsys, ["train", "c.toml"])
    assert_one_line_error(status, err, "survey 'image-folder' has no galaxies")


@pytest.mark.parametrize("n", ["0", "-3"])
def test_simulate_refuses_no_galaxies(capsys, tmp_path, n):
    status, err = run_cli(capsys, ["simulate", "sdss-mock", "--n", n, "--out",
                                   str(tmp_path / "mock"), "--no-progress"])
    assert_one_line_error(status, err, f"--n {n}", "number of galaxies >= 1")
    assert not (tmp_path / "mock" / "catalogue.ecsv").exists()


def test_valid_configuration_still_trains(capsys, config):
    status, err = run_cli(capsys, ["train", config, "--set", "training.schedule='constant'"])
    assert status == 0, err


def test_embed_refuses_a_modality_for_a_one_tower_model(tmp_path, capsys):
    """--modality is for two-tower models; a SimCLR model says so instead of ignoring it."""
    import astro_cl
    from astro_cl.models.simclr import SimCLR

    survey = astro_cl.get_survey("sdss-mock", n=4, size=16, seed=0)
    model = SimCLR(width=0.125, hidden=(8,), embedding_dim=4, kind="images").fit(
        survey, trainer={"epochs": 1, "batch_size": 4, "progress": False})
    model.save(tmp_path / "m.pt")
    status = main(["embed", str(tmp_path / "m.pt"), "sdss-mock", "--set", "n=4",
                   "--set", "size=16", "--modality", "cube", "--out", str(tmp_path / "e")])
    assert_one_line_error(status, capsys.readouterr().err,
                          "--modality cube: the 'simclr' model's embed takes no modality")
