"""The public study layer (`astro_cl.studies`): tasks, results folders, subsets, the import walls."""

import ast
import json
import sys
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.table import QTable

from astro_cl.data.batch import TensorBatch
from astro_cl.exceptions import AstroCLWarning, ValidationError
from astro_cl.plugins import hookspecs
from astro_cl.studies import SourceView, TaskResults, run_tasks
from astro_cl.tasks import DownstreamTask

PACKAGE = Path(__file__).resolve().parents[1] / "astro_cl"
EXAMPLE_PLUGIN = Path(__file__).parent / "example_plugin"


def _catalogue(n=60, seed=0):
    rng = np.random.default_rng(seed)
    mass = rng.uniform(9, 11.5, n)
    passive = rng.random(n) < 0.4
    sfr = 0.8 * (mass - 10) - 0.2 + rng.normal(0, 0.2, n) - 2 * passive
    cat = QTable({"id": [f"g{i}" for i in range(n)], "RA": rng.uniform(0, 360, n) * u.deg,
                  "log_Mass": mass * u.dex(u.Msun), "log_SFR_Ha": sfr * u.dex(u.Msun / u.yr),
                  "environment": rng.choice(["void", "wall", "cluster"], n)})
    X = np.column_stack([mass - 10.5, sfr, rng.normal(0, 0.3, (n, 4))])
    return QTable({"id": cat["id"], "embedding": X.astype(np.float32)}), cat


_FAST = {"property-correlation": {"projection": "pca", "n_bootstrap": 5},
         "property-regression": {"n_bootstrap": 5},
         "environment": {"tests": ("energy",), "n_permutations": 19}}


def _imports(path):
    """``(module, name)`` of every astro_cl import in a file (module level and in functions)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.extend((node.module, a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend((a.name, None) for a in node.names)
    return [(m, n) for m, n in out if m.split(".")[0] == "astro_cl"]


def _subpackage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_the_library_does_not_import_its_command_line():
    offenders = [(str(p.relative_to(PACKAGE)), m) for p in PACKAGE.rglob("*.py")
                 if "cli" not in p.relative_to(PACKAGE).parts
                 for m, _ in _imports(p) if m == "astro_cl.cli" or m.startswith("astro_cl.cli.")]
    assert not offenders


def test_no_private_name_of_the_analysis_path_crosses_a_subpackage():
    """tasks, studies and report keep their private names; the demo and they use public ones."""
    ours = {"tasks", "studies", "report"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        here = rel.parts[0] if len(rel.parts) > 1 else None
        mine = here in ours or rel.name == "demo.py"
        for module, name in _imports(path):
            there = _subpackage(module)
            if there == here:
                continue
            private = any(p.startswith("_") and not p.startswith("__")
                          for p in [*module.split(".")[1:], name or ""])
            if private and (mine or there in ours):
                offenders.append((str(rel), module, name))
    assert not offenders


def test_run_tasks_write_read_and_report(tmp_path):
    emb, cat = _catalogue()
    results = run_tasks(emb, cat, params=_FAST, progress=False, provenance={"input": "x"})
    assert list(results.tasks) == ["property-correlation", "property-regression",
                                   "sfms-clustering", "environment", "similarity-search"]
    assert results.info["left_out"] == {"id": "identifier", "RA": "position"}
    assert results.info["projection"] == "PCA" and not results.collapsed
    assert results.projection.shape == (60, 2)
    results.history = {"simclr": [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}]}
    results.thumbnails = {"g0": np.ones((8, 8))}
    back = TaskResults.read(results.write(tmp_path / "results"))
    assert set(back.tables) == set(results.tables)
    assert back.info["left_out"] == results.info["left_out"]
    assert back.history == results.history and set(back.thumbnails) == {"g0"}
    np.testing.assert_allclose(back.projection, results.projection)
    assert back.provenance["input"] == "x"
    overview = dict(back.overview())
    assert "position: RA" in overview["tasks"]
    index = back.report(tmp_path / "report")
    assert "What was done" in index.read_text(encoding="utf-8")
    with pytest.raises(ValidationError, match="no run.json"):
        TaskResults.read(tmp_path)


def test_default_tasks_the_catalogue_cannot_support_are_skipped_with_a_reason():
    """20 galaxies in four environments, one with 5 or more: evaluate still runs."""
    emb, cat = _catalogue(n=20)
    cat["environment"] = ["wall"] * 11 + ["filament"] * 4 + ["cluster"] * 3 + ["void"] * 2
    with pytest.warns(AstroCLWarning) as record:  # also: too few galaxies per class to rank
        results = run_tasks(emb, cat, params=_FAST, progress=False)
    assert any(str(w.message).startswith("environment skipped: column 'environment' needs "
                                         "at least 2 groups with >= 5") for w in record)
    assert "environment" not in results.tasks
    reason = results.info["skipped_tasks"]["environment"]
    assert "cluster (3), filament (4), void (2), wall (11)" in reason
    assert any("environment was not run" in text for _, text in results.notes())


def test_a_collapsed_embedding_is_reported(tmp_path):
    emb, cat = _catalogue()
    rng = np.random.default_rng(1)
    emb["embedding"] = (np.ones((60, 6)) + 1e-4 * rng.normal(size=(60, 6))).astype(np.float32)
    with pytest.warns(AstroCLWarning, match="the embedding is collapsed"):
        results = run_tasks(emb, cat, params=_FAST, progress=False)
    assert results.collapsed
    assert results.info["embedding"]["median_cosine"] > 0.999
    assert "collapsed" in results.tables["similarity-search"].meta["warning"]
    row = results.headline()[0]
    assert row["passed"] is False and row["value"] < 0.1
    results.thumbnails = {f"g{i}": np.ones((8, 8)) for i in range(60)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCLWarning)
        figs, _ = results.figures()
    assert "COLLAPSED" in figs["similarity search"].get_suptitle()
    page = results.report(tmp_path / "report").read_text(encoding="utf-8")
    assert "class='note warning'>The embedding is collapsed" in page
    healthy, _ = _catalogue()
    assert not run_tasks(healthy, cat, tasks=["similarity-search"], progress=False).collapsed


def test_source_view_rows_channels_and_meta():
    data = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)
    batch = TensorBatch(data=data, mask=torch.zeros(4, 3, 2, 2, dtype=torch.bool),
                        ids=["a", "b", "c", "d"], meta={"survey": "x"})
    view = SourceView(batch, rows=[3, 1], channels=[1, 2], meta={"channels_dropped": [0]})
    assert len(view) == 2 and view.ids == ["d", "b"]
    out = view.batch([1, 0])
    assert out.ids == ["b", "d"]
    torch.testing.assert_close(out.data, data[[1, 3]][:, 1:])
    assert out.mask.shape == (2, 2, 2, 2)
    assert out.meta["channels_dropped"] == [0] and out.meta["survey"] == "x"
    with pytest.raises(ValidationError, match=r"rows must lie in \[0, 4\)"):
        SourceView(batch, rows=[4])


def test_evaluate_options_are_toml_typed(tmp_path):
    from astro_cl.cli import main

    emb, cat = _catalogue()
    emb.write(tmp_path / "emb.ecsv")
    cat.write(tmp_path / "cat.ecsv")
    out = tmp_path / "results"
    assert main(["evaluate", str(tmp_path / "emb.ecsv"), "--catalogue", str(tmp_path / "cat.ecsv"),
                 "--out", str(out), "--no-progress", "--tasks", "property-correlation",
                 "--set", "property-correlation.projection=pca",
                 "--set", "property-correlation.n_bootstrap=3",
                 "--set", 'property-correlation.properties=["log_Mass", "RA"]',
                 "--set", "property-correlation.umap_params.n_neighbors=5"]) == 0
    params = json.loads((out / "run.json").read_text())["config"]["tasks"]["property-correlation"]
    assert params["n_bootstrap"] == 3 and params["projection"] == "pca"
    assert params["properties"] == ["log_Mass", "RA"]
    assert params["umap_params"] == {"n_neighbors": 5}


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch, fresh_registry):
    """The example plugin (tests/example_plugin) installed through its entry point."""
    info = tmp_path / "site" / "astro_cl_toy-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: astro-cl-toy\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{hookspecs.ENTRY_POINT_GROUP}]\n"
                                           "toy = astro_cl_toy\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    monkeypatch.delenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("astro_cl_toy"):
            del sys.modules[name]


def test_a_plugin_task_fills_the_results_folder_and_the_report(toy_plugin, tmp_path):
    """The toy plugin's task adds its column, table, figure and headline through the hooks."""
    emb, cat = _catalogue()
    results = run_tasks(emb, cat, tasks=["property-correlation", "toy-isolation"],
                        params={**_FAST, "toy-isolation": {"n_neighbors": 3}}, progress=False)
    assert results.info["tasks"]["toy-isolation"]["columns"] == ["toy_isolation"]
    folder = results.write(tmp_path / "results")
    back = TaskResults.read(folder)
    assert "toy_isolation" in back.galaxies.colnames
    np.testing.assert_allclose(back.galaxies["toy_isolation"], results.tasks["toy-isolation"]
                               .isolation_)
    listed = QTable.read(folder / "tables" / "toy-most-isolated.ecsv", format="ascii.ecsv")
    assert len(listed) == 5
    page = back.report(tmp_path / "report").read_text(encoding="utf-8")
    assert (tmp_path / "report" / "figures" / "toy_isolation.png").is_file()
    assert "How isolated the galaxies are in the embedding" in page
    assert "the most isolated galaxy (toy-isolation)" in page
    assert "isolation of each galaxy: distance to its neighbour number 3" in page
    assert "toy-most-isolated" in page


def test_a_report_without_the_plugin_installed_says_so(toy_plugin, tmp_path, monkeypatch):
    emb, cat = _catalogue()
    folder = run_tasks(emb, cat, tasks=["similarity-search", "toy-isolation"],
                       progress=False).write(tmp_path / "results")
    from astro_cl.plugins.registry import reset_registry

    monkeypatch.setenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_registry()
    back = TaskResults.read(folder)
    assert any("toy-isolation: its figures and headline are not drawn" in text
               for _, text in back.notes())
    figures, _ = back.figures()
    assert "toy isolation" not in figures
    assert "toy_isolation" in back.galaxies.colnames  # the data are still there


class _Twice(DownstreamTask):
    name = "twice"
    description = "Test task: a per-galaxy column that clashes."

    def __init__(self, *, column="projection_1"):
        self.column = column

    def fit(self, embeddings, catalogue=None):
        self.results_ = QTable({"n": [len(embeddings)]})
        return self

    def galaxy_columns(self):
        return QTable({self.column: np.zeros(len(self.results_["n"]))})


def test_hooks_that_break_the_contract_are_refused(monkeypatch):
    from astro_cl.plugins import registry

    emb, cat = _catalogue()
    monkeypatch.setattr(registry, "get_task", lambda name, **p: (
        _Twice(**p) if name == "twice" else registry.get_component_class("task", name)(**p)))
    with pytest.raises(ValidationError, match="galaxy_columns\\(\\) has 1 rows, the run 60"):
        run_tasks(emb, cat, tasks=["twice"], progress=False)


def test_the_study_layer_does_not_switch_on_task_names():
    """No built-in task's name appears in the code that runs tasks, draws and reports them."""
    from astro_cl.plugins.manager import build_plugin_manager
    from astro_cl.plugins.registry import Registry

    names = set(Registry(build_plugin_manager(autoload=False)).components("task"))
    allowed = {"DEFAULT_TASKS", "acceptance_values"}  # the defaults; the studies' own checks
    offenders = []
    for module in ("results.py", "report.py"):
        tree = ast.parse((PACKAGE / "studies" / module).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    getattr(t, "id", "") in allowed for t in node.targets):
                continue
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in allowed:
                continue
            offenders.extend((module, c.value) for c in ast.walk(node)
                             if isinstance(c, ast.Constant) and c.value in names)
    assert not offenders


def test_read_table_refuses_a_binary_file_in_one_line(tmp_path, capsys):
    """A damaged or foreign embeddings file is one clear error, not astropy's traceback."""
    from astro_cl.cli import main
    from astro_cl.exceptions import ValidationError
    from astro_cl.studies import read_table

    rng = np.random.default_rng(0)
    for name in ("emb.ecsv", "emb.fits"):
        (tmp_path / name).write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
        with pytest.raises(ValidationError, match=rf"{name}: not a readable table"):
            read_table(tmp_path / name)
    (tmp_path / "cat.ecsv").write_text("id\na\n")
    status = main(["evaluate", str(tmp_path / "emb.ecsv"), "--catalogue",
                   str(tmp_path / "cat.ecsv"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and "not a readable table" in err
