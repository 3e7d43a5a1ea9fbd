"""The user's path: shipped configs, train -> embed/predict -> evaluate -> report, and the
commands of README.md and the getting-started page, run as written at tiny sizes."""

import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest

from astro_cl.cli import main
from astro_cl.exceptions import AstroCLWarning

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "examples" / "configs").glob("*.toml"))
#: Survey parameters of the tiny runs (CubePCA needs more spaxels above its fit_snr than
#: it has components).
TINY = {"ecalifa-mock": {"n": 16, "size": 32}, "sdss-mock": {"n": 8, "size": 32}}


def _survey_name(config):
    import tomllib

    return tomllib.loads(config.read_text())["survey"]["name"]


def _tiny_survey(survey, tmp_path, request):
    """Return the tiny run's survey settings, its survey PATH argument (or None) and its size.

    Mocks are drawn small; the image-folder config runs on a folder of 16 real Galaxy Zoo 1
    cutouts linked from the shared data (which it needs, and says so when it skips).
    """
    if survey in TINY:
        return dict(TINY[survey]), None, TINY[survey]["n"]
    assert survey == "image-folder", f"no tiny settings for shipped survey {survey!r}"
    gz1 = request.getfixturevalue("shared_data") / "gz1"
    folder = tmp_path / "cutouts"
    folder.mkdir()
    rows = (gz1 / "labels.csv").read_text().splitlines()
    for row in rows[1:17]:
        objid = row.split(",")[0]
        (folder / f"{objid}.jpeg").symlink_to(gz1 / "images" / f"{objid}.jpeg")
    (folder / "labels.csv").write_text("\n".join(rows[:17]) + "\n")
    return {}, folder, 16


def test_there_are_shipped_configs():
    assert {c.name for c in CONFIGS} >= {"ecalifa_simclr.toml", "picasso_unet.toml"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_runs_end_to_end(config, tmp_path, monkeypatch, capsys, request):
    """Every shipped config: train --fast-dev-run as shipped (tiny survey), then the next steps."""
    monkeypatch.chdir(tmp_path)
    survey = _survey_name(config)
    model = tmp_path / "model.pt"
    tiny, path, n_tiny = _tiny_survey(survey, tmp_path, request)
    where = [] if path is None else ["--set", f'survey.path="{path}"']
    status = main(["train", str(config), "--fast-dev-run",
                   *[x for k, v in tiny.items() for x in ("--set", f"survey.{k}={v}")],
                   *where, "--set", "training.progress=false",
                   "--output", str(model)])
    assert status == 0
    assert model.is_file() and model.with_suffix(".md").is_file()
    # a fast dev run leaves no checkpoint, history or cache behind
    import tomllib

    ckdir = tmp_path / tomllib.loads(config.read_text())["training"]["checkpoint_dir"]
    leftovers = list(ckdir.rglob("*")) if ckdir.exists() else []
    assert leftovers == [], leftovers
    card = model.with_suffix(".md").read_text()
    assert "fast-dev-run" in card and "Input contract" in card

    import astro_cl

    encoder = astro_cl.load_model(model)
    survey_cfg = {k: v for k, v in tomllib.loads(config.read_text())["survey"].items()
                  if k not in ("name", "path")}
    # the mocks' own size and a new seed; a folder's crop and resampling as trained
    params = {**survey_cfg, **tiny, "seed": 7} if path is None else survey_cfg
    settings = [x for k, v in params.items()
                for x in ("--set", f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}")]
    positional = [] if path is None else [str(path)]
    if encoder.output_type == "embedding":
        # real images are embedded with the trunk's features, as the config's comments say
        readout = [] if path is None else ["--readout", "features"]
        assert main(["embed", str(model), survey, *positional, *settings, *readout,
                     "--out", "emb"]) == 0
        from astropy.table import QTable

        emb = QTable.read(tmp_path / "emb.ecsv")
        assert len(emb) == n_tiny and np.isfinite(np.asarray(emb["embedding"])).all()
        assert emb.meta["readout"] == ("embedding" if path is None else "features")
        params = {**params, **({} if path is None else {"path": path})}
        cat = astro_cl.get_survey(survey, **params).catalogue
        cat.write(tmp_path / "cat.ecsv")
        with warnings.catch_warnings():
            # a one-batch model's embedding is collapsed (or nearly): evaluate says so with an
            # AstroCLWarning, and skips tasks the tiny catalogue cannot support
            warnings.simplefilter("ignore", AstroCLWarning)
            assert main(["evaluate", "emb.ecsv", "--catalogue", "cat.ecsv", "--out", "results",
                         "--no-progress"]) == 0
            assert main(["report", "results"]) == 0
        assert (tmp_path / "results" / "report" / "index.html").is_file()
    else:
        assert main(["predict", str(model), survey, *positional, *settings,
                     "--out", "maps"]) == 0
        files = sorted((tmp_path / "maps").glob("*.maps.fits"))
        assert len(files) == n_tiny
        from astro_cl.data.fits_maps import read_maps

        maps = read_maps(files[0])
        assert set(maps) == set(encoder.info_["target_names"])


# -- the model artefact -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cube_model(tmp_path_factory):
    """A SimCLR trained (two batches) on preprocessed eCALIFA mocks, saved and reloaded."""
    import astro_cl
    from astro_cl.models.simclr import SimCLR
    from astro_cl.preprocess import CubePCA

    tmp = tmp_path_factory.mktemp("artefact")
    survey = astro_cl.get_survey("ecalifa-mock", n=6, size=20, seed=3)
    encoder = SimCLR(width=0.25, embedding_dim=8, hidden=(16,), kind="cube",
                     augmenter=[{"name": "random-flip"}])
    encoder.fit(survey, preprocessor=CubePCA(n_components=5, fit_snr=3.0), cache_dir=tmp / "cache",
                provenance={"note": "test"},
                trainer={"epochs": 1, "batch_size": 6, "progress": False})
    encoder.save(tmp / "model.pt")
    return {"survey": survey, "encoder": encoder, "path": tmp / "model.pt", "tmp": tmp}


def test_saved_model_embeds_raw_cubes_like_the_trained_one(cube_model):
    """Before: the preprocessor was not saved, and embed on raw cubes crashed in torch."""
    import astro_cl

    loaded = astro_cl.load_model(cube_model["path"])
    assert loaded.preprocessor_ is not None and loaded.preprocessor_.name == "cube-pca"
    assert loaded.contract_.kind == "cube" and loaded.contract_.in_channels == 6
    assert loaded.provenance_ == {"note": "test"}
    assert loaded.versions_["astro_cl"] == astro_cl.__version__
    raw = loaded.embed(cube_model["survey"])
    # the same inputs through the in-memory encoder's own preprocessing
    expected = cube_model["encoder"].embed(cube_model["survey"])
    np.testing.assert_allclose(np.asarray(raw["embedding"]), np.asarray(expected["embedding"]),
                               atol=1e-6)
    # and records work as well as surveys
    records = [cube_model["survey"][i] for i in range(2)]
    emb = loaded.transform(records)
    np.testing.assert_allclose(emb, np.asarray(raw["embedding"])[:2], atol=1e-6)


def test_preprocessor_state_survives_bit_for_bit(cube_model):
    import astro_cl

    loaded = astro_cl.load_model(cube_model["path"])
    original = cube_model["encoder"].preprocessor_
    assert loaded.preprocessor_.fingerprint() == original.fingerprint()


def test_model_file_stays_weights_only(cube_model):
    import torch

    ckpt = torch.load(cube_model["path"], weights_only=True)
    assert {"preprocessor", "contract", "provenance", "versions"} <= set(ckpt)


def test_data_outside_the_contract_is_refused(cube_model):
    import astro_cl
    from astro_cl.exceptions import ValidationError

    loaded = astro_cl.load_model(cube_model["path"])
    images = astro_cl.get_survey("sdss-mock", n=2, size=16, seed=0)
    with pytest.raises(ValidationError, match="reads IFU cubes"):
        loaded.embed(images)


def test_wrong_channel_count_names_what_the_model_expects(cube_model):
    import torch

    import astro_cl
    from astro_cl.data.batch import TensorBatch
    from astro_cl.exceptions import ValidationError

    loaded = astro_cl.load_model(cube_model["path"])
    batch = TensorBatch(data=torch.zeros(2, 3, 20, 20), mask=torch.zeros(2, 1, 20, 20,
                                                                         dtype=torch.bool),
                        ids=["a", "b"])
    with pytest.raises(ValidationError, match="expects 6 input channels.*have 3"):
        loaded.transform(batch)


def test_pixel_scale_and_bands_are_checked():
    import astropy.units as u

    import astro_cl
    from astro_cl.data.record import ObservingMeta
    from astro_cl.exceptions import ValidationError
    from astro_cl.models.contract import InputContract

    rec = astro_cl.get_survey("sdss-mock", n=1, size=16, seed=0)[0]
    contract = InputContract.from_record(rec, kind="images", in_channels=5)
    contract.check_record(rec)
    assert contract.bands == list(rec.bands)
    far = rec.__class__(id=rec.id, images=rec.images, observing=ObservingMeta(
        pixel_scale=contract.pixel_scale * 4 * u.arcsec / u.pix, bands=rec.bands))
    with pytest.raises(ValidationError, match="pixel scale"):
        contract.check_record(far)
    other = InputContract.from_dict({**contract.to_dict(), "bands": ["g", "r", "i", "z", "y"]})
    with pytest.raises(ValidationError, match="bands"):
        other.check_record(rec)
    assert InputContract.from_dict(contract.to_dict()) == contract


def test_trainer_checkpoint_without_artefact_entries_still_loads(tmp_path):
    import astro_cl
    from astro_cl.models.simclr import SimCLR

    survey = astro_cl.get_survey("sdss-mock", n=4, size=16, seed=0)
    SimCLR(width=0.25, embedding_dim=8, hidden=(16,), augmenter=[{"name": "random-flip"}]).fit(
        survey, trainer={"epochs": 1, "batch_size": 4, "progress": False,
                         "checkpoint_dir": tmp_path})
    loaded = astro_cl.load_model(tmp_path / "last.pt")
    assert loaded.preprocessor_ is None and loaded.contract_ is None
    assert loaded.transform(survey).shape == (4, 8)


def test_load_model_errors_are_clear(tmp_path):
    import astro_cl
    from astro_cl.exceptions import CheckpointError

    with pytest.raises(CheckpointError, match="is a directory"):
        astro_cl.load_model(tmp_path)
    with pytest.raises(FileNotFoundError):
        astro_cl.load_model(tmp_path / "nothing.pt")


def test_embed_refuses_a_map_model_and_predict_an_embedding_model(cube_model, tmp_path,
                                                                  capsys):
    status = main(["predict", str(cube_model["path"]), "ecalifa-mock", "--set", "n=2",
                   "--out", str(tmp_path / "maps")])
    assert status == 2
    assert "does not predict maps" in capsys.readouterr().err


# -- one CLI vocabulary ---------------------------------------------------------------------
@pytest.mark.parametrize("command", ["info", "embed", "predict"])
def test_commands_reading_a_survey_take_survey_path_and_set(command):
    from astro_cl.cli import build_parser

    parser = build_parser()
    head = {"info": [], "embed": ["m.pt"], "predict": ["m.pt"]}[command]
    tail = [] if command == "info" else ["--out", "o"]
    args = parser.parse_args([command, *head, "ecalifa", "data/ecalifa", "--set", "n=3",
                              "--set", 'bands=["g"]', *tail])
    assert (args.survey, args.path) == ("ecalifa", "data/ecalifa")
    assert args.settings == ["n=3", 'bands=["g"]']
    args = parser.parse_args([command, *head, "ecalifa-mock", *tail])
    assert args.path is None


@pytest.mark.parametrize("command", ["train", "info", "embed", "predict", "evaluate"])
def test_component_parameters_are_spelled_set_everywhere(command):
    from astro_cl.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    options = {s for a in sub._actions for s in a.option_strings}
    assert "--set" in options
    assert "--param" not in options


def test_set_values_are_typed_as_toml():
    from astro_cl.utils.options import parse_assignments, parse_value

    assert parse_value("16") == 16 and parse_value("1e-3") == 1e-3
    assert parse_value("false") is False and parse_value("data/x") == "data/x"
    assert parse_assignments(["a.b=1", "a.c='x'", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"},
                                                                    "d": [1, 2]}
    from astro_cl.exceptions import ValidationError

    with pytest.raises(ValidationError, match="KEY=VALUE"):
        parse_assignments(["novalue"])
    with pytest.raises(ValidationError, match="TASK.KEY|SECTION.KEY"):
        parse_assignments(["a=1"], depth=2)


def test_info_set_passes_typed_survey_parameters(capsys):
    assert main(["info", "sdss-mock", "--set", "n=3", "--set", "size=16"]) == 0
    assert "3 galaxies" in capsys.readouterr().out


def test_download_command_fetches_from_a_mirror(tmp_path, capsys):
    """`astro-cl download` exposes the archive downloader (loopback server, no network)."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "NGC0001.V500.drscube.fits.gz").write_bytes(b"not really a cube")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        status = main(["download", "ecalifa", "NGC0001", "--out", str(tmp_path / "out"),
                       "--base-url", base, "--no-progress"])
    finally:
        server.shutdown()
        server.server_close()
    assert status == 0
    assert (tmp_path / "out" / "NGC0001.V500.drscube.fits.gz").read_bytes() == \
        b"not really a cube"
    assert main(["download", "nosuch", "X", "--out", str(tmp_path)]) == 2
    assert "no archive known" in capsys.readouterr().err


class _QuietHandler:
    """SimpleHTTPRequestHandler without request logging (built lazily)."""

    def __new__(cls, *args, **kwargs):
        import http.server

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

        return Handler(*args, **kwargs)


# -- the documented commands, as written ------------------------------------------------------
def _bash_lines(path):
    """Commands of the bash blocks of a Markdown or reST file, comments stripped."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    else:
        blocks = re.findall(r"\.\. code-block:: bash\n\n((?:(?:   .*)?\n)+)", text)
    lines = []
    for block in blocks:
        for raw in block.splitlines():
            words = shlex.split(raw, comments=True)
            if words:
                lines.append(words)
    return lines


#: Lines that install or test the package: .ci/run executes them itself (checked below).
_SETUP = ("python -m venv", "pip install", ". .venv/bin/activate", "python -m pytest")


def _is_setup(words):
    line = " ".join(words)
    return any(line.startswith(s) or f"&& {s}" in line for s in _SETUP)


@pytest.mark.parametrize("doc", ["README.md", "docs/getting_started.rst"])
def test_documented_commands_run_as_written(doc, tmp_path, monkeypatch, capsys):
    lines = _bash_lines(ROOT / doc)
    assert lines, f"{doc}: no bash blocks found"
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    ran = 0
    for words in lines:
        if _is_setup(words):
            continue
        assert words[0] == "astro-cl", f"{doc}: unexpected command {' '.join(words)!r}"
        args = words[1:]
        if args[:1] == ["demo"]:
            continue  # minutes at its default size; tests/test_demo.py runs it at tiny size
        with warnings.catch_warnings():
            # commands run on a one-batch (fast-dev-run) model: evaluate warns that the
            # embedding is collapsed, which is what it should say
            warnings.simplefilter("ignore", AstroCLWarning)
            status = main(args)
        assert status == 0, f"{doc}: `{' '.join(words)}` exited {status}"
        ran += 1
    assert ran > 0


def test_ci_runs_the_readme_setup_lines():
    readme = [w for w in _bash_lines(ROOT / "README.md") if _is_setup(w)]
    script = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")  # join continued lines
    ci = [shlex.split(line, comments=True) for line in script.splitlines()]
    for words in readme:
        if " ".join(words).startswith(("python -m venv", ". .venv")):
            continue  # CI makes its own venv
        assert words in ci, f".ci/run does not run the README line {' '.join(words)!r}"


def test_similar_writes_a_table_and_a_thumbnail_grid(cube_model, tmp_path, capsys):
    """`astro-cl similar`: neighbours of a query, as a table and a thumbnail figure."""
    from astropy.table import QTable
    from PIL import Image

    from astro_cl.cli.embed import write_embeddings

    survey = cube_model["survey"]
    import astro_cl

    table = astro_cl.load_model(cube_model["path"]).embed(survey)
    # the cube mocks carry no images: give the table the ids of an image survey to draw
    images = astro_cl.get_survey("sdss-mock", n=len(table), size=16, seed=0)
    table["id"] = images.ids
    write_embeddings(table, tmp_path / "emb_img")
    query = images.ids[0]
    assert main(["similar", str(tmp_path / "emb_img.ecsv"), "sdss-mock", "--set",
                 f"n={len(table)}", "--set", "size=16", "--query", query, "--k", "3",
                 "--out", str(tmp_path / "sim")]) == 0
    result = QTable.read(tmp_path / "sim" / "similar.ecsv")
    assert list(result["rank"]) == [1, 2, 3] and query not in set(result["id"])
    assert np.all(np.diff(np.asarray(result["similarity"])) <= 1e-7)
    with Image.open(tmp_path / "sim" / "similar.png") as png:
        assert png.size[0] > 100 and png.size[1] > 50
    assert main(["similar", str(tmp_path / "emb_img.ecsv"), "sdss-mock", "--query", "nope",
                 "--out", str(tmp_path / "sim2")]) == 2
    assert "no embedding for query ids ['nope']" in capsys.readouterr().err
