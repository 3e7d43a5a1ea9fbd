"""Training refuses nonsense early, survives a last batch of one, checks inputs, cleans up."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.exceptions import ValidationError  # noqa: E402
from astro_cl.models.regressor import CNNRegressor  # noqa: E402
from astro_cl.models.simclr import SimCLR  # noqa: E402
from astro_cl.training import TrainerConfig  # noqa: E402
from astro_cl.training.checkpoints import make_header  # noqa: E402
from astro_cl.training.data import InMemorySource  # noqa: E402
from astro_cl.training.trainer import Trainer  # noqa: E402
from astro_cl.utils import io as io_utils  # noqa: E402


def images(n=6, c=3, size=16, seed=0, masked=False):
    x = np.random.default_rng(seed).normal(size=(n, c, size, size)).astype(np.float32)
    return TensorBatch.from_arrays(x, mask=np.full(x.shape, masked))


def maps_batch(n=3, size=16, seed=0, masked_inputs=False, masked_targets=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    t = np.exp(rng.normal(size=(n, 1, size, size))).astype(np.float32)
    return TensorBatch.from_arrays(x, mask=np.full(x.shape, masked_inputs), targets=t,
                                   target_mask=np.full(t.shape, masked_targets))


class _Small:
    """A small model and the training settings ``fit`` gives it."""

    def __init__(self, model, trainer):
        self.model = model
        self.trainer = trainer

    def fit(self, X):
        return self.model.fit(X, trainer=self.trainer)


def _split(kw):
    """Model parameters and training settings of mixed keywords."""
    settings = set(TrainerConfig.settings())
    return ({k: v for k, v in kw.items() if k not in settings},
            {k: v for k, v in kw.items() if k in settings})


def small_simclr(**kw):
    params, settings = _split(kw)
    return _Small(SimCLR(**{"width": 1 / 16, "hidden": (16,), **params}),
                  {"epochs": 1, "batch_size": 3, "progress": False, **settings})


def small_unet(**kw):
    params, settings = _split(kw)
    return _Small(CNNRegressor(**{"width": 1 / 16, **params}),
                  {"epochs": 1, "batch_size": 2, "validation_fraction": 0.0, "progress": False,
                   **settings})


# -- item 6: values that make no sense ----------------------------------------------
@pytest.mark.parametrize(("params", "needle"), [
    ({"width": -1}, "width = -1: expected a number > 0"),
    ({"epochs": -1}, "epochs = -1: expected an integer >= 0"),
    ({"epochs": "ten"}, "epochs = 'ten'"),
    ({"hidden": 16}, "hidden = 16: expected a list of integers >= 1"),
    ({"optimizer": "rmsprop"}, "optimizer = 'rmsprop'"),
    ({"schedule": {"name": "warm"}}, "unknown schedule name 'warm'"),
    ({"temperature": 0}, "temperature = 0"),
    ({"backbone": "vit"}, "backbone = 'vit': expected one of 'conv', 'resnet'"),
])
def test_simclr_refuses_nonsense_when_fitting(params, needle):
    model = small_simclr(**params)  # construction only stores (scikit-learn's rule)
    # model parameters are named as the model's, training settings as the trainer's
    where = "^SimCLR.fit: trainer: " if _split(params)[1] else "^SimCLR: "
    with pytest.raises(ValidationError, match=where) as info:
        model.fit(images())
    assert needle in str(info.value)


def test_regressor_refuses_nonsense_when_fitting():
    with pytest.raises(ValidationError, match=r"CNNRegressor: channels = \[\]"):
        small_unet(channels=[]).fit(maps_batch())
    with pytest.raises(ValidationError, match="border = -2"):
        small_unet(border=-2).fit(maps_batch())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_validation_error():
    with pytest.raises(ValidationError, match="device = 'cuda': CUDA is not available"):
        small_simclr(device="cuda").fit(images())
    net = torch.nn.Linear(2, 1)
    trainer = Trainer(net, lambda m, b, g: m(b.data).sum(), device="cuda", progress=False)
    with pytest.raises(ValidationError, match="CUDA is not available"):
        trainer.fit(InMemorySource(images(c=2)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_loading_onto_cuda_without_cuda_is_not_called_a_broken_file(tmp_path):
    from astro_cl.training.checkpoints import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "m.pt", {"model_state": {}}, make_header("simclr", {}))
    with pytest.raises(ValidationError, match="cannot load onto device 'cuda': CUDA is not"):
        load_checkpoint(tmp_path / "m.pt", map_location="cuda")


def test_trainer_checks_its_parameters_before_training():
    trainer = Trainer(torch.nn.Linear(2, 1), lambda m, b, g: m(b.data).sum(), epochs=-2,
                      progress=False)
    with pytest.raises(ValidationError, match="Trainer: epochs = -2: expected an integer >= 0"):
        trainer.fit(InMemorySource(images(c=2)))


def test_every_input_pixel_masked_is_refused():
    with pytest.raises(ValidationError, match="every input pixel of the 6 training galaxies"):
        small_simclr().fit(images(masked=True))


def test_every_target_pixel_masked_is_refused():
    with pytest.raises(ValidationError, match="every target pixel"):
        small_unet().fit(maps_batch(masked_targets=True))
    with pytest.raises(ValidationError, match="every input pixel"):
        small_unet().fit(maps_batch(masked_inputs=True))


def test_a_few_masked_galaxies_are_fine():
    x = np.random.default_rng(0).normal(size=(40, 3, 16, 16)).astype(np.float32)
    mask = np.ones(x.shape, bool)
    mask[-1, :, 4:8, 4:8] = False  # only the last galaxy has data: read in a later chunk
    small_simclr(batch_size=20).fit(TensorBatch.from_arrays(x, mask=mask))


# -- item 7: a last batch of one galaxy and batch norm -------------------------------
def test_unet_last_batch_of_one_is_dropped_in_training():
    # 16 px: the U-Net's bottom level is 1x1, so batch norm sees one value per
    # channel for a batch of one galaxy
    batch = maps_batch(n=3, size=16)
    model = small_unet(epochs=2, batch_size=2).fit(batch)
    assert len(model.history_) == 2
    # evaluation mode takes a single galaxy
    assert model.transform(batch.index([0])).shape == (1, 1, 16, 16)


def test_single_galaxy_too_small_for_batch_norm_is_a_clear_error():
    with pytest.raises(ValidationError, match="too small for the network's batch norm"):
        small_unet(batch_size=2).fit(maps_batch(n=1, size=16))


def test_last_batch_of_one_kept_without_batch_norm():
    seen = []

    def loss(model, batch, generator):
        seen.append(len(batch))
        return model(batch.data.mean(dim=(2, 3))).pow(2).mean()

    Trainer(torch.nn.Linear(3, 1), loss, epochs=1, batch_size=2, progress=False,
            prefetch=False).fit(InMemorySource(images(n=5)))
    assert seen == [2, 2, 1]
    seen.clear()
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    Trainer(net, loss, epochs=1, batch_size=2, progress=False,
            prefetch=False).fit(InMemorySource(images(n=5)))
    assert seen == [2, 2]


# -- item 8: inputs the network cannot take --------------------------------------------
@pytest.fixture(scope="module")
def fitted_from_checkpoint(tmp_path_factory):
    """A SimCLR read back from the trainer's rolling checkpoint (no input contract)."""
    run = tmp_path_factory.mktemp("run")
    small_simclr(checkpoint_dir=str(run)).fit(images())
    return SimCLR.load(run / "last.pt")


def test_transform_wrong_channel_count(fitted_from_checkpoint):
    with pytest.raises(ValidationError, match=r"expects 3 input channels of at least 16x16 px; "
                                              r"the data have 4 channels of 16x16 px"):
        fitted_from_checkpoint.transform(images(n=2, c=4))


def test_transform_image_too_small(fitted_from_checkpoint):
    with pytest.raises(ValidationError, match="at least 16x16 px; the data have 3 channels of "
                                              "8x8 px"):
        fitted_from_checkpoint.transform(images(n=2, size=8))
    assert fitted_from_checkpoint.transform(images(n=2, size=16)).shape == (2, 64)


def test_regressor_transform_wrong_channel_count(tmp_path):
    small_unet(checkpoint_dir=str(tmp_path)).fit(maps_batch(n=4))
    model = CNNRegressor.load(tmp_path / "last.pt")
    with pytest.raises(ValidationError, match="expects 3 input channels"):
        model.transform(images(n=2, c=5))


# -- item 9: temporary files of killed writers --------------------------------------
def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_names_its_temp_file_with_the_pid(tmp_path):
    with io_utils.atomic_write(tmp_path / "history.csv") as fh:
        fh.write("x")
        names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1 and names[0].startswith(f".history.csv.{os.getpid()}.")


def test_stale_temp_files_removed_on_start(tmp_path):
    dead = _dead_pid()
    stale = [tmp_path / f".last.pt.{dead}.abc123.tmp", tmp_path / f".history.csv.{dead}.x.tmp"]
    old_style = tmp_path / ".last.pt.k2j3h4g5.tmp"  # no pid: an older astro_cl wrote it
    keep = [tmp_path / ".other.pt.1.x.tmp", tmp_path / ".last.pt.bak.x.tmp"]
    for p in [*stale, old_style, *keep]:
        p.write_bytes(b"partial")
    long_ago = time.time() - 3600
    os.utime(old_style, (long_ago, long_ago))
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            time.sleep(0.05)
            writer = tmp_path / f".last.pt.{live.pid}.w.tmp"  # a concurrent writer's
            writer.write_bytes(b"being written")
            net = torch.nn.Linear(3, 1)
            Trainer(net, lambda m, b, g: m(b.data.mean(dim=(2, 3))).pow(2).mean(), epochs=1,
                    batch_size=3, progress=False, checkpoint_dir=tmp_path,
                    header=make_header("test", {})).fit(InMemorySource(images()))
            assert writer.exists()
        finally:
            live.kill()
    for p in [*stale, old_style]:
        assert not p.exists(), p
    for p in keep:
        assert p.exists(), p
    assert (tmp_path / "last.pt").exists() and (tmp_path / "history.csv").exists()


@pytest.mark.skipif(os.name != "posix", reason="kill -9")
def test_writer_killed_mid_write_leaves_nothing_after_restart(tmp_path):
    code = ("import sys, time\n"
            "from astro_cl.utils.io import atomic_write\n"
            "with atomic_write(sys.argv[1]) as fh:\n"
            "    fh.write('half'); fh.flush(); print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "history.csv")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    left = list(tmp_path.glob(".history.csv.*.tmp"))
    assert len(left) == 1 and f".{proc.pid}." in left[0].name
    assert io_utils.remove_stale_temp_files(tmp_path, ["last.pt", "history.csv"]) == left
    assert not left[0].exists()
