"""Caches read while another process rebuilds them, plugins that exit, foreign checkpoints."""

import os
import pickle
import sys
import textwrap
import types
import warnings
import zipfile

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData

from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import AstroCLError, CheckpointError, PluginWarning
from astro_cl.plugins import hookspecs
from astro_cl.preprocess import PreprocessedCache
from astro_cl.surveys.memory import InMemorySurvey

torch = pytest.importorskip("torch")


# -- item 10: a cache entry replaced between our rebuild and our read ------------------
@pytest.fixture
def survey():
    rng = np.random.default_rng(0)
    return InMemorySurvey(records=[
        GalaxyRecord(id=f"g{i}", images=NDData(rng.normal(size=(2, 8, 8)), unit=u.nJy,
                                               meta={"bands": ("g", "r")}))
        for i in range(3)])


def test_entry_swapped_after_rebuild_is_read_again(tmp_path, survey, monkeypatch):
    """Another process moves the entry aside (to swap in its own build) right after ours."""
    import astro_cl.preprocess.cache as cache_module

    cache = PreprocessedCache(tmp_path / "cache")
    build = PreprocessedCache._build
    aside = tmp_path / "aside"
    calls = {"build": 0}

    def racing_build(self, entry, *args, **kwargs):
        build(self, entry, *args, **kwargs)
        calls["build"] += 1
        if calls["build"] == 1:
            os.replace(entry, aside)  # the other process's swap has begun
            calls["entry"] = entry

    def pause(seconds):  # ... and completes while this one waits
        if aside.exists():
            os.replace(aside, calls["entry"])

    monkeypatch.setattr(PreprocessedCache, "_build", racing_build)
    monkeypatch.setattr(cache_module, "time", types.SimpleNamespace(sleep=pause), raising=False)
    source = cache.get_or_build(survey, progress=False)
    assert len(source) == 3 and source.ids == ["g0", "g1", "g2"]
    assert calls["build"] == 1  # read again, not rebuilt


def test_entry_that_never_settles_raises_an_astro_cl_error(tmp_path, survey, monkeypatch):
    build = PreprocessedCache._build

    def always_swapped(self, entry, *args, **kwargs):
        build(self, entry, *args, **kwargs)
        (entry / "meta.json").write_text("{")  # replaced by a half-written entry

    monkeypatch.setattr(PreprocessedCache, "_build", always_swapped)
    monkeypatch.setattr("astro_cl.preprocess.cache._RETRY_PAUSE", 0.0, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "corrupt; rebuilding" on the second try
        with pytest.raises(AstroCLError, match="still unreadable after 4 rebuilds") as info:
            PreprocessedCache(tmp_path / "cache").get_or_build(survey, progress=False)
    assert type(info.value).__name__ == "CacheError"  # public, not the module's private one


_STRESS = """
import sys, time, warnings
import numpy as np, astropy.units as u
from astropy.nddata import NDData
from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import AstroCLError
from astro_cl.preprocess import PreprocessedCache
from astro_cl.surveys.memory import InMemorySurvey
warnings.simplefilter("ignore")
role, directory, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
rng = np.random.default_rng(0)
survey = InMemorySurvey(records=[GalaxyRecord(id=f"g{i}", images=NDData(
    rng.normal(size=(2, 8, 8)), unit=u.nJy, meta={"bands": ("g", "r")})) for i in range(3)])
cache = PreprocessedCache(directory)
reads = foreign = 0
start = time.time()
while time.time() - start < seconds:
    if role == "damage":  # every read of this process finds the entry corrupt and rebuilds it
        for entry in cache.entries():
            try:
                (entry / "meta.json").write_text("{")
            except OSError:
                pass
    try:
        assert len(cache.get_or_build(survey, progress=False)) == 3
    except AstroCLError:
        pass  # allowed: a clear error
    except Exception as exc:
        foreign += 1
        print(type(exc).__name__, exc, file=sys.stderr)
    reads += 1
print(reads, foreign)
"""


@pytest.mark.slow
def test_concurrent_rebuilds_raise_nothing_but_astro_cl_errors(tmp_path):
    import subprocess

    procs = [subprocess.Popen([sys.executable, "-c", _STRESS, role, str(tmp_path / "c"), "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for role in ("damage", "read")]
    results = [p.communicate(timeout=120) for p in procs]
    for (out, err), proc in zip(results, procs, strict=True):
        assert proc.returncode == 0, err
        reads, foreign = map(int, out.split())
        assert reads > 10 and foreign == 0, err


# -- item 11: a plugin that calls sys.exit() ----------------------------------------
def install_fake_distribution(site, dist, entry_points, version="0.1.0"):
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{hookspecs.ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_registry):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    before = set(sys.modules)
    yield site
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.mark.parametrize(("source", "needle"), [
    ("import sys\nsys.exit(3)\n", "it called sys.exit(3)"),
    ("""
        import sys
        from astro_cl import hookimpl

        @hookimpl
        def astro_cl_register_surveys(register):
            sys.exit("no licence")
    """, "SystemExit: no licence"),
])
def test_plugin_calling_sys_exit_is_skipped(site, capsys, source, needle):
    from astro_cl.cli import main
    from astro_cl.plugins.registry import available_components

    (site / "plug_exit.py").write_text(textwrap.dedent(source))
    install_fake_distribution(site, "plug-exit", {"exits": "plug_exit"})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        names = available_components("survey")
        status = main(["plugins"])
    found = [str(w.message) for w in record if issubclass(w.category, PluginWarning)]
    assert found and all("plug-exit" in m and needle in m for m in found), found
    assert "in-memory" in names
    assert status == 0
    assert "in-memory" in capsys.readouterr().out


# -- item 12: files that are not astro_cl checkpoints ----------------------------------
class _Evil:
    def __reduce__(self):
        return (eval, ("print('executed!')",))


def _load_message(path):
    from astro_cl.training.checkpoints import load_checkpoint

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert info.value.__cause__ is None  # torch's advice is not chained in either
    for advice in ("weights_only", "trust", "add_safe_globals"):
        assert advice not in message, message
    assert "not a valid astro_cl checkpoint" in message
    return message


def test_torch_archive_with_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model_state": {}, "x": _Evil()}, path)
    assert "a torch archive whose pickle references builtins.eval" in _load_message(path)


def test_plain_pickle_with_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"a": _Evil()}))
    assert "a pickle referencing builtins.eval" in _load_message(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("weights/readme.txt", "hello")
    assert "a zip archive without data.pkl (weights/readme.txt)" in _load_message(path)


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "an empty file"),
    (b"GIF89a\x01\x00junk", "not a zip archive or a pickle: starts with bytes b'GIF89a"),
])
def test_other_files(tmp_path, content, needle):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert needle in _load_message(path)


def test_torch_file_without_header(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    assert "a dict with keys ['conv.weight']" in _load_message(path)


def test_cli_reports_a_foreign_checkpoint_in_one_line(tmp_path, capsys):
    from astro_cl.cli import main

    path = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, path)
    assert main(["embed", str(path), "sdss-mock", "--set", "n=2",
                 "--out", str(tmp_path / "e.ecsv")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "builtins.eval" in err and "weights_only" not in err
