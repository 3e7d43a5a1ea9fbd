"""Scale-out: the chunked, resumable store on threads, processes and Dask, and its users."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from astro_cl.preprocess import CubePCA, PreprocessedCache
from astro_cl.preprocess.store import (
    PreprocessedStore,
    StoreWarning,
    _save_state,
    fit_preprocessor,
    fit_sample_rows,
)
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

N = 24
SURVEY = {"n": N, "seed": 1, "size": 12}
PCA = {"n_components": 4, "fit_snr": 3.0, "max_spectra_per_galaxy": 40, "seed": 0}
REPO = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_digest(directory):
    """SHA-256 of every file's relative path and bytes under ``directory``."""
    h = hashlib.sha256()
    for f in sorted(Path(directory).rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(directory)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def survey():
    return ECALIFAMockSurvey(**SURVEY)


@pytest.fixture(scope="module")
def fitted(survey, tmp_path_factory):
    """CubePCA fitted once on a sample of 8 galaxies (saved, for subprocesses)."""
    pca = fit_preprocessor(survey, CubePCA(**PCA), fit_sample=8)
    where = tmp_path_factory.mktemp("pca")
    _save_state(pca, where)
    return pca, where


def fresh(fitted):
    """A fitted copy (builds must not share the instance)."""
    pca = CubePCA(**PCA)
    for name in CubePCA._state_arrays:
        setattr(pca, name, getattr(fitted[0], name))
    return pca


@pytest.fixture(scope="module")
def reference(survey, fitted, tmp_path_factory):
    """The store built in one thread: what every other run must write byte for byte."""
    src = PreprocessedStore(tmp_path_factory.mktemp("ref")).get_or_build(
        survey, preprocessor=fresh(fitted), progress=False)
    return src, tree_digest(src.directory)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def test_store_holds_what_the_cache_holds(survey, fitted, reference, tmp_path):
    src, _ = reference
    assert len(src) == N and src.ids == survey.ids and not src.failed
    assert src.summary.done == N and src.summary.skipped == 0
    cached = PreprocessedCache(tmp_path).get_or_build(survey, preprocessor=fresh(fitted),
                                                     progress=False)
    rows = [3, 0, 17, 17, 23]
    a, b = src.batch(rows), cached.batch(rows)
    assert a.ids == b.ids
    for name in ("data", "mask"):
        np.testing.assert_array_equal(getattr(a, name).numpy(), getattr(b, name).numpy())
    assert src.meta == {"survey": "ecalifa-mock", "kind": "cube", "preprocessor": "cube-pca"}
    # the same batch source protocol: lengths, slices, ids
    assert src.batch(slice(20, None)).ids == survey.ids[20:]
    assert src.index_of(["mock000005"]).tolist() == [5]


def test_executors_write_identical_bytes(survey, fitted, reference, client, tmp_path):
    """threads, processes and a 2-worker LocalCluster write the same store, byte for byte."""
    _, expected = reference
    for executor, kwargs in (("threads", {"workers": 2}), ("processes", {"workers": 2}),
                             ("dask", {"client": client})):
        src = PreprocessedStore(tmp_path / executor).get_or_build(
            survey, preprocessor=fresh(fitted), progress=False, executor=executor, **kwargs)
        assert src.summary.done == N, executor
        assert tree_digest(src.directory) == expected, executor
    # opened again: nothing to do, and the full check of every chunk passes
    again = PreprocessedStore(tmp_path / "dask").get_or_build(survey, preprocessor=fresh(fitted),
                                                             progress=False)
    assert again.summary.done == 0 and again.summary.skipped == N


KILLED = textwrap.dedent("""
    import sys, time
    from astro_cl.preprocess.store import PreprocessedStore, _load_state
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    read = ECALIFAMockSurvey._read_record
    def slow(self, index):  # time for the test to kill this process half-way
        time.sleep(0.15)
        return read(self, index)
    ECALIFAMockSurvey._read_record = slow
    survey = ECALIFAMockSurvey(**{survey!r})
    PreprocessedStore(sys.argv[1]).get_or_build(survey, preprocessor=_load_state(sys.argv[2]),
                                                progress=False)
""")


def test_killed_run_resumes_to_the_same_store(survey, fitted, reference, tmp_path):
    script = tmp_path / "build.py"
    script.write_text(KILLED.format(survey=SURVEY))
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, str(script), str(store), str(fitted[1])],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while len(list(store.glob("*.store/rows/*.json"))) < N // 2:
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    before = len(list(store.glob("*.store/rows/*.json")))
    assert N // 2 <= before < N
    src = PreprocessedStore(store).get_or_build(survey, preprocessor=fresh(fitted),
                                                progress=False)
    # only what was missing is done, and the result is the uninterrupted store
    assert (src.summary.skipped, src.summary.done) == (before, N - before)
    assert tree_digest(src.directory) == reference[1]


def _slow_reads(seconds):
    """Run on Dask workers: make every galaxy read take ``seconds`` longer."""
    import time as _time

    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey as Mock

    read = Mock._read_record

    def slow(self, index):
        _time.sleep(seconds)
        return read(self, index)

    Mock._read_record = slow


@pytest.mark.parametrize("executor", ["dask", "processes"])
def test_killed_worker_still_completes_the_store(executor, survey, fitted, reference, client,
                                                 tmp_path):
    """A worker process killed mid-run (SIGKILL): the store is complete all the same."""
    import multiprocessing

    import cloudpickle

    if executor == "dask":
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            client.run(_slow_reads, 0.3)
        finally:
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        kwargs = {"client": client}
    else:
        kwargs = {"workers": 2}
    store = tmp_path / "store"
    out = {}

    def build():
        try:
            out["src"] = PreprocessedStore(store).get_or_build(
                survey, preprocessor=fresh(fitted), progress=False, executor=executor, **kwargs)
        except BaseException as exc:  # reported below
            out["error"] = exc

    thread = threading.Thread(target=build)
    thread.start()
    deadline = time.monotonic() + 120
    while len(list(store.glob("*.store/rows/*.json"))) < 3 and thread.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert thread.is_alive(), "the build ended before a worker could be killed"
    if executor == "dask":
        # Dask's nanny starts a new worker, and the scheduler runs its task elsewhere
        victim = next(iter(client.run(os.getpid).values()))
    else:
        # a broken pool loses every task it held: they are run again in a new pool
        victim = next(p.pid for p in multiprocessing.active_children()
                      if not p.name.startswith("Dask"))
    os.kill(victim, signal.SIGKILL)
    thread.join(180)
    assert "error" not in out, out.get("error")
    src = out["src"]
    assert len(src) == N and src.summary.done + src.summary.skipped == N
    assert tree_digest(src.directory) == reference[1]
    if executor == "dask":
        client.wait_for_workers(2, timeout=120)  # the cluster whole again for the other tests


def test_corrupt_cube_is_recorded_not_fatal(tmp_path, fitted):
    files = tmp_path / "files"
    ECALIFAMockSurvey(n=4, seed=1, size=12).write(files, progress=False)
    bad = sorted(files.glob("*.drscube.fits*"))[1]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    survey = ECALIFAMockSurvey(path=files)
    bad_id = survey.ids[1]
    with pytest.raises(Exception, match=bad.name):
        PreprocessedStore(tmp_path / "raise").get_or_build(survey, preprocessor=fresh(fitted),
                                                           progress=False)
    with pytest.warns(StoreWarning, match="1 of 4 galaxies failed"):
        src = PreprocessedStore(tmp_path / "skip").get_or_build(
            survey, preprocessor=fresh(fitted), progress=False, on_error="skip")
    assert src.ids == [i for i in survey.ids if i != bad_id]
    assert list(src.failed) == [bad_id] and bad.name in src.failed[bad_id]
    assert src.summary.failed == src.failed and src.summary.done == 3
    record = json.loads((src.directory / "rows" / "00000001.json").read_text())
    assert record["status"] == "failed" and bad.name in record["error"]
    # reopened: the failure stays recorded and is not retried ...
    again = PreprocessedStore(tmp_path / "skip").get_or_build(
        survey, preprocessor=fresh(fitted), progress=False, on_error="skip")
    assert again.summary.done == 0 and list(again.failed) == [bad_id]
    # ... unless asked: once the file is good again, the galaxy is done
    ECALIFAMockSurvey(n=4, seed=1, size=12).write(tmp_path / "good", progress=False)
    bad.write_bytes((tmp_path / "good" / bad.name).read_bytes())
    fixed = PreprocessedStore(tmp_path / "skip", checksum="stat")
    assert fixed.get_or_build(survey, preprocessor=fresh(fitted), progress=False).failed == {}


def test_fit_sample_is_reproducible_and_the_fit_is_kept(survey, tmp_path, monkeypatch):
    a, b = fit_sample_rows(N, 8, seed=3), fit_sample_rows(N, 8, seed=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 8
    assert fit_sample_rows(N, 8, seed=4).tolist() != a.tolist()
    calls = []
    original = CubePCA._fit_records
    monkeypatch.setattr(CubePCA, "_fit_records",
                        lambda self, records: calls.append(len(records)) or original(self,
                                                                                     records))
    first = fit_preprocessor(survey, CubePCA(**PCA), directory=tmp_path, fit_sample=6)
    assert calls == [6]
    kept = fit_preprocessor(survey, CubePCA(**PCA), directory=tmp_path)  # reuse, any sample
    assert calls == [6] and kept.fingerprint() == first.fingerprint()
    fit_preprocessor(survey, CubePCA(**PCA), directory=tmp_path, fit_sample=7)  # another draw
    assert calls == [6, 7]


def test_cli_preprocess_then_train_reads_the_store(tmp_path, monkeypatch, capsys):
    from astro_cl.cli import main

    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text(textwrap.dedent("""
        [survey]
        name = "ecalifa-mock"
        n = 8
        size = 16
        seed = 1
        [preprocess]
        name = "cube-pca"
        n_components = 4
        fit_snr = 3.0
        max_spectra_per_galaxy = 40
        [model]
        name = "simclr"
        width = 0.25
        hidden = [16]
        embedding_dim = 8
        [training]
        epochs = 1
        batch_size = 8
        progress = false
        kind = "cube"
        checkpoint_dir = "run"
        output = "run/model.pt"
    """))
    assert main(["preprocess", "c.toml", "--workers", "2", "--no-progress"]) == 0
    assert "8 done now, 0 already done, 0 failed" in capsys.readouterr().out
    assert main(["preprocess", "c.toml", "--no-progress"]) == 0
    assert "0 done now, 8 already done" in capsys.readouterr().out
    entries = PreprocessedStore("run/cache").entries()
    assert len(entries) == 1
    stamp = (entries[0] / "complete.json").stat().st_mtime_ns
    assert main(["train", "c.toml"]) == 0
    # training found the store (and the kept fit): nothing was rebuilt
    assert PreprocessedStore("run/cache").entries() == entries
    assert (entries[0] / "complete.json").stat().st_mtime_ns == stamp
    # embedding in shards on two threads gives the table of the plain command
    assert main(["embed", "run/model.pt", "ecalifa-mock", "--set", "n=8", "--set", "size=16",
                 "--set", "seed=1", "--out", "plain"]) == 0
    assert main(["embed", "run/model.pt", "ecalifa-mock", "--set", "n=8", "--set", "size=16",
                 "--set", "seed=1", "--out", "sharded", "--executor", "threads",
                 "--workers", "2"]) == 0
    from astropy.table import QTable

    plain, sharded = QTable.read("plain.ecsv"), QTable.read("sharded.ecsv")
    assert list(sharded["id"]) == list(plain["id"])
    np.testing.assert_allclose(np.asarray(sharded["embedding"]), np.asarray(plain["embedding"]),
                               atol=1e-6)
    assert not Path("sharded.parts").exists()
    # the trunk's features, in shards and not: the same table, recorded as such
    for out, extra in (("feat", []), ("feat_sharded", ["--executor", "threads",
                                                        "--workers", "2"])):
        assert main(["embed", "run/model.pt", "ecalifa-mock", "--set", "n=8", "--set",
                     "size=16", "--set", "seed=1", "--readout", "features", "--out", out,
                     *extra]) == 0
    feat, feat_sharded = QTable.read("feat.ecsv"), QTable.read("feat_sharded.ecsv")
    assert feat_sharded.meta["readout"] == feat.meta["readout"] == "features"
    assert feat["embedding"].shape[1] != plain["embedding"].shape[1]
    np.testing.assert_allclose(np.asarray(feat_sharded["embedding"]),
                               np.asarray(feat["embedding"]), atol=1e-6)


TORCHRUN = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import numpy as np
    import astro_cl.preprocess.store as store
    from astro_cl.models.simclr import SimCLR
    from astro_cl.preprocess import CubePCA
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.training.distributed import destroy_distributed

    log = Path(sys.argv[2])
    rank = os.environ.get("RANK", "0")
    fit, row = CubePCA._fit_records, store._record_row
    def counted_fit(self, records):
        with open(log, "a") as fh:
            fh.write(f"fit {{rank}}\\n")
        return fit(self, records)
    def counted_row(*args):
        with open(log, "a") as fh:
            fh.write(f"row {{rank}}\\n")
        return row(*args)
    CubePCA._fit_records, store._record_row = counted_fit, counted_row
    survey = ECALIFAMockSurvey(n=8, seed=1, size=16)
    enc = SimCLR(width=0.25, hidden=(16,), embedding_dim=8, kind="cube")
    enc.fit(survey, preprocessor=CubePCA(**{pca!r}), cache_dir=sys.argv[1],
            trainer={{"epochs": 1, "batch_size": 4, "progress": False, "device": "cpu"}})
    np.save(f"{{sys.argv[1]}}/fingerprint-{{rank}}.npy", enc.preprocessor_.components_)
    destroy_distributed()
""")


def test_torchrun_builds_the_store_once(tmp_path):
    """Two ranks: one fit and one build (rank 0); rank 1 waits and reads the same store."""
    script = tmp_path / "train.py"
    script.write_text(TORCHRUN.format(pca=PCA))
    log = tmp_path / "log.txt"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script),
           str(tmp_path / "cache"), str(log)]
    subprocess.run(cmd, check=True, env=env, timeout=600, cwd=REPO)
    lines = log.read_text().split("\n")
    assert lines.count("fit 0") == 1 and lines.count("fit 1") == 0
    assert lines.count("row 0") == 8 and lines.count("row 1") == 0
    assert len(PreprocessedStore(tmp_path / "cache").entries()) == 1
    np.testing.assert_array_equal(np.load(tmp_path / "cache" / "fingerprint-0.npy"),
                                  np.load(tmp_path / "cache" / "fingerprint-1.npy"))


def test_predict_in_shards_on_dask_resumes(client, tmp_path):
    """Maps predicted in shards on the cluster equal predict_maps; a rerun redoes nothing."""
    import astro_cl
    from astro_cl.data.fits_maps import read_maps
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.preprocess import ImageScaler
    from astro_cl.scaling import predict_survey

    survey = astro_cl.get_survey("sdss-mock", n=6, size=32, seed=0)
    reg = CNNRegressor(width=0.25)
    reg.fit(survey, preprocessor=ImageScaler(), cache_dir=tmp_path / "cache",
            trainer={"epochs": 1, "batch_size": 6, "progress": False})
    reg.save(tmp_path / "unet.pt")
    kwargs = {"work_dir": tmp_path / "work", "executor": "dask", "client": client,
              "shard_size": 2, "progress": False}
    ids, summary = predict_survey(tmp_path / "unet.pt", survey, tmp_path / "maps", **kwargs)
    assert ids == survey.ids and summary.done == 6
    expected = reg.predict_maps(survey)
    for gid, maps in zip(ids, expected, strict=True):
        got = read_maps(tmp_path / "maps" / f"{gid}.maps.fits")
        assert got.keys() == maps.keys()
        for name, nd in maps.items():
            np.testing.assert_allclose(got[name].data, nd.data, rtol=1e-5)
            assert got[name].wcs is not None
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "maps").glob("*.fits")}
    ids, summary = predict_survey(tmp_path / "unet.pt", survey, tmp_path / "maps", **kwargs)
    assert summary.done == 0 and summary.skipped == 6
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "maps").glob("*.fits")} == stamps
