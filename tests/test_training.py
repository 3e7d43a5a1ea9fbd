import csv
import pickle
import signal
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.exceptions import CheckpointError  # noqa: E402
from astro_cl.models.regressor import CNNRegressor  # noqa: E402
from astro_cl.models.simclr import SimCLR  # noqa: E402
from astro_cl.training.checkpoints import (  # noqa: E402
    load_checkpoint,
    make_header,
    save_checkpoint,
)
from astro_cl.training.data import InMemorySource, as_batch_source  # noqa: E402
from astro_cl.training.trainer import NonFiniteLossError, Trainer, lr_factor  # noqa: E402


def _source(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 8, 8)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) * 2 + 1).astype(np.float32)
    return InMemorySource(TensorBatch.from_arrays(x, targets=np.broadcast_to(
        y[:, None, None, None], (n, 1, 8, 8)).copy()))


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.drop = torch.nn.Dropout(0.3)  # exercises the global RNG state
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(self.drop(self.conv(x).mean(dim=(2, 3))))


def _loss(model, batch, generator):
    noise = torch.randn(batch.data.shape, generator=generator) * 0.1  # augmentation
    pred = model(batch.data + noise)[:, 0]
    return ((pred - batch.targets[:, 0, 0, 0]) ** 2).mean()


def _trainer(tmp_path, epochs, **kw):
    torch.manual_seed(0)
    kw = {"batch_size": 5, "lr": 1e-2, "seed": 3, "validation_fraction": 0.25,
          "schedule": {"name": "step", "step_size": 2, "gamma": 0.75}, "progress": False,
          "checkpoint_dir": tmp_path, "header": make_header("test-net", {"a": 1}), **kw}
    return Trainer(_Net(), _loss, epochs=epochs, **kw)


def _params(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lr_factor_schedules():
    assert lr_factor({"name": "step", "step_size": 2, "gamma": 0.75}, 5) == pytest.approx(0.75**2)
    spec = {"name": "multistep", "milestones": [8, 10], "gamma": 0.1}
    assert [lr_factor(spec, e) for e in (7, 8, 10)] == pytest.approx([1, 0.1, 0.01])
    with pytest.raises(ValueError, match="unknown"):
        lr_factor({"name": "nope"}, 0)


def test_optimiser_choices(tmp_path):
    params = list(_Net().parameters())
    sgd = _trainer(tmp_path, 1, optimizer="sgd", betas=(0.8, 0.999))._make_optimizer(params)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8
    assert sgd.defaults["nesterov"]
    adamw = _trainer(tmp_path, 1, optimizer="AdamW")._make_optimizer(params)
    assert isinstance(adamw, torch.optim.AdamW)
    with pytest.raises(ValueError, match="'adam', 'adamw' or 'sgd'"):
        _trainer(tmp_path, 1, optimizer="lbfgs")._make_optimizer(params)


def test_resume_is_bit_for_bit(tmp_path):
    src = _source()
    full = _trainer(tmp_path / "a", 5)
    hist_full = full.fit(src)
    first = _trainer(tmp_path / "b", 2)
    first.fit(src)
    second = _trainer(tmp_path / "b", 5)
    hist_resumed = second.fit(src, resume=True)
    assert [h["train_loss"] for h in hist_full] == [h["train_loss"] for h in hist_resumed]
    assert [h["val_loss"] for h in hist_full] == [h["val_loss"] for h in hist_resumed]
    _assert_same(_params(full.module), _params(second.module))
    with open(tmp_path / "b" / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and float(rows[4]["lr"]) == pytest.approx(1e-2 * 0.75**2)


@pytest.fixture
def default_sigint():
    """Ctrl-C raises KeyboardInterrupt, even when the test runner was started with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_and_resume(tmp_path, default_sigint):
    src = _source()
    full = _trainer(tmp_path / "a", 3)
    full.fit(src)

    def interrupt(trainer, event, info):
        if event == "step_end" and info["epoch"] == 1 and info["step"] == 1:
            signal.raise_signal(signal.SIGINT)

    run = _trainer(tmp_path / "b", 3, callbacks=[interrupt])
    with pytest.raises(KeyboardInterrupt):
        run.fit(src)
    ckpt = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 2)
    resumed = _trainer(tmp_path / "b", 3)
    hist = resumed.fit(src, resume=True)
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in full.history]
    _assert_same(_params(full.module), _params(resumed.module))
    # the SIGINT handler was restored
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    src = _source()
    calls = {"n": 0}

    def bad_loss(model, batch, generator):
        calls["n"] += 1
        loss = _loss(model, batch, generator)
        return loss * float("nan") if calls["n"] > 5 else loss  # epoch 1 has 4 steps

    tr = _trainer(tmp_path, 3, validation_fraction=0.0)
    tr.loss_fn = bad_loss
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 2, step 2.*last good checkpoint"):
        tr.fit(_source(20))
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model_state"].values()
               if v.is_floating_point())
    for v in tr.module.state_dict().values():
        assert torch.isfinite(v.float()).all()
    del src


def test_early_stopping(tmp_path):
    tr = _trainer(tmp_path, 50, lr=0.0, patience=2)  # lr 0: never improves after epoch 1
    hist = tr.fit(_source())
    assert len(hist) == 3 and tr.stopped_early_


def test_patience_zero_never_stops_early(tmp_path):
    """0 is how a TOML configuration turns early stopping off (TOML has no null)."""
    tr = _trainer(tmp_path, 5, lr=0.0, patience=0)
    hist = tr.fit(_source())
    assert len(hist) == 5 and not tr.stopped_early_


class _Evil:
    def __reduce__(self):
        return (print, ("executed!",))


def test_checkpoint_loading_never_unpickles_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"header": make_header("simclr", {}), "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="only tensors and plain types"):
        load_checkpoint(path)
    path2 = tmp_path / "pickle.pt"
    path2.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path2)


def test_wrong_model_and_version(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model_state": {}}, make_header("cnn-regressor", {}))
    with pytest.raises(CheckpointError, match=r"'cnn-regressor'.*into model 'simclr'"):
        load_checkpoint(path, model_name="simclr")
    with pytest.raises(CheckpointError, match="cnn-regressor"):
        SimCLR.load(path)
    header = make_header("simclr", {})
    header["astro_cl_version"] = "99.1.0"
    save_checkpoint(path, {"model_state": {}}, header)
    with pytest.raises(CheckpointError, match=r"astro_cl 99\.1\.0"):
        load_checkpoint(path, model_name="simclr")


def test_encoder_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5, 16, 16)).astype(np.float32)
    t = np.exp(rng.normal(size=(6, 2, 16, 16))).astype(np.float32)
    batch = TensorBatch.from_arrays(x, targets=t, target_mask=np.zeros(t.shape, bool),
                                    meta={"target_names": ["a", "b"], "target_units": ["Gyr", ""]})
    reg = CNNRegressor(width=1 / 16).fit(batch, trainer={
        "epochs": 1, "batch_size": 3, "validation_fraction": 0.0, "progress": False,
        "checkpoint_dir": tmp_path / "run"})
    reg.save(tmp_path / "m.pt")
    back = CNNRegressor.load(tmp_path / "m.pt")
    np.testing.assert_array_equal(reg.transform(batch), back.transform(batch))
    assert back.info_["target_names"] == ["a", "b"]
    # the training settings travel with the model; the rest are the model's defaults
    assert back.trainer_.batch_size == 3 and back.trainer_.lr == 1e-5
    assert back.trainer_.checkpoint_dir == str(tmp_path / "run")
    # the trainer's rolling checkpoint is loadable as a model too
    again = CNNRegressor.load(tmp_path / "run" / "last.pt")
    assert again.transform(batch).shape == (6, 2, 16, 16)


def test_as_batch_source_rejects_junk():
    from astro_cl.exceptions import ValidationError

    with pytest.raises(ValidationError, match="batch source"):
        as_batch_source([1, 2, 3])


def test_cli_train_predict_embed(tmp_path, monkeypatch):
    pytest.importorskip("astro_cl.surveys.sdss_mock")
    from astro_cl.cli import main
    from astro_cl.data.fits_maps import read_maps

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(
        '[survey]\nname = "sdss-mock"\nn = 4\nsize = 32\n'
        '[model]\nname = "cnn-regressor"\nwidth = 0.0625\ntarget_names = ["stellar_mass"]\n'
        '[optimizer]\nname = "adamw"\nlr = 1e-3\n'
        '[training]\nepochs = 1\nbatch_size = 2\nvalidation_fraction = 0.0\nprogress = false\n'
        'checkpoint_dir = "run"\noutput = "run/model.pt"\n')
    assert main(["train", "c.toml", "--set", "training.epochs=2"]) == 0
    assert main(["predict", "run/model.pt", "sdss-mock", "--set", "n=2",
                 "--set", "size=32", "--out", "maps"]) == 0
    files = sorted((tmp_path / "maps").glob("*.maps.fits"))
    assert len(files) == 2
    m = read_maps(files[0])["stellar_mass"]
    assert m.unit.is_equivalent("solMass / kpc2") and m.wcs is not None
    # a regressor checkpoint is refused by the embedding command's model (no embed method)
    with pytest.raises(CheckpointError):
        SimCLR.load("run/model.pt")
    assert main(["train", "c.toml", "--set", "model.nonsense=1"]) == 2


class _SplitLoss:
    """A loss with the prepare/compute protocol (data work runs in the prefetch thread)."""

    def __init__(self):
        self.prepared = 0

    def __call__(self, model, batch, generator):
        return self.compute(model, self.prepare(batch, generator))

    def prepare(self, batch, generator):
        self.prepared += 1
        noise = torch.randn(batch.data.shape, generator=generator) * 0.1
        return batch.data + noise, batch.targets[:, 0, 0, 0]

    def compute(self, model, prepared):
        x, y = prepared
        return ((model(x)[:, 0] - y) ** 2).mean()


def test_prefetch_gives_identical_results(tmp_path):
    src = _source()
    runs = []
    for prefetch in (True, False):
        torch.manual_seed(0)
        loss = _SplitLoss()
        tr = Trainer(_Net(), loss, epochs=3, batch_size=5, lr=1e-2, seed=3, progress=False,
                     prefetch=prefetch, validation_fraction=0.25)
        runs.append((tr.fit(src), _params(tr.module), loss.prepared))
    (h1, p1, n1), (h2, p2, n2) = runs
    assert [h["train_loss"] for h in h1] == [h["train_loss"] for h in h2]
    _assert_same(p1, p2)
    # each training step (4) and validation step (1: batches of 4x the training size) once
    assert n1 == n2 == 3 * (4 + 1)
    # the split loss gives the same result as calling it whole (the plain protocol)
    torch.manual_seed(0)
    whole = Trainer(_Net(), lambda m, b, g: _SplitLoss()(m, b, g), epochs=3, batch_size=5,
                    lr=1e-2, seed=3, progress=False, validation_fraction=0.25)
    assert [h["train_loss"] for h in whole.fit(src)] == [h["train_loss"] for h in h1]


class _ThreadRecordingLoss(_SplitLoss):
    """A split loss that records the intra-op thread count its prepare step sees."""

    def __init__(self):
        super().__init__()
        self.threads = []

    def prepare(self, batch, generator):
        self.threads.append((threading.current_thread() is threading.main_thread(),
                             torch.get_num_threads()))
        return super().prepare(batch, generator)


def test_prefetch_threads_set_in_the_prefetch_thread_only():
    src = _source()
    before = torch.get_num_threads()
    results = {}
    for threads in (None, 1):
        torch.manual_seed(0)
        loss = _ThreadRecordingLoss()
        tr = Trainer(_Net(), loss, epochs=2, batch_size=5, lr=1e-2, seed=3, progress=False,
                     num_threads=2, prefetch_threads=threads)
        results[threads] = ([h["train_loss"] for h in tr.fit(src)], loss.threads)
    assert results[None][0] == results[1][0]  # this prepare has no parallel reduction
    in_main = {n for main, n in results[1][1] if main}
    in_prefetch = {n for main, n in results[1][1] if not main}
    assert in_main == {2} and in_prefetch == {1}
    assert {n for _, n in results[None][1]} == {2}
    assert torch.get_num_threads() == before


def test_history_times_the_validation_pass(tmp_path, monkeypatch):
    """``val_seconds`` brackets the validation pass, and nothing else of the epoch.

    The clock and the validation pass are recorded in the order they run: the
    test checks which code the two clock readings enclose, not any duration
    (speed belongs in ``benchmarks/bench_validation.py``).
    """
    import csv

    from astro_cl.training import trainer as trainer_module

    events = []
    real_clock, real_validate = trainer_module.time.perf_counter, Trainer._validate

    def clock():
        events.append("clock")
        return real_clock()

    def validate(self, run):
        events.append("validate")
        return real_validate(self, run)

    monkeypatch.setattr(trainer_module.time, "perf_counter", clock)
    monkeypatch.setattr(Trainer, "_validate", validate)
    src = _source()
    for fraction in (0.25, 0.0):
        events.clear()
        tr = Trainer(_Net(), _SplitLoss(), epochs=2, batch_size=5, lr=1e-2, seed=3,
                     progress=False, validation_fraction=fraction,
                     checkpoint_dir=tmp_path / str(fraction))
        history = tr.fit(src)
        passes = [i for i, e in enumerate(events) if e == "validate"]
        assert len(passes) == 2
        if fraction > 0:  # each epoch's validation pass sits between two clock readings
            assert all(events[i - 1] == "clock" and events[i + 1] == "clock" for i in passes)
        with open(tmp_path / str(fraction) / "history.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        recorded = [h["val_seconds"] for h in history] + [float(r["val_seconds"]) for r in rows]
        assert all(np.isfinite(v) and v >= 0 for v in recorded)
        if fraction == 0.0:  # no validation set: nothing is timed, the column says 0
            assert not any(recorded)
