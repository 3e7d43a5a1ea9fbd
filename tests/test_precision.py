"""bf16 where it pays: the detection, the switch, fp32 master weights and an fp32 loss."""

import numpy as np
import pytest

from astro_cl.exceptions import ValidationError
from astro_cl.training import precision

torch = pytest.importorskip("torch")

from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.training.data import InMemorySource  # noqa: E402
from astro_cl.training.trainer import Trainer  # noqa: E402

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n"
ZEN3 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the detection at a cpuinfo file with the given text."""
    def use(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(precision, "CPUINFO", str(path))
    return use


@pytest.mark.parametrize(("text", "flags", "native", "auto"), [
    (SAPPHIRE_RAPIDS, ("amx_bf16",), True, "bf16"),
    # native, but without AMX bf16 did not pay reliably (see astro_cl.training.precision)
    (ZEN4, ("avx512_bf16",), True, "fp32"),
    (ZEN3, (), False, "fp32"),
    ("", (), False, "fp32"),  # no flags line (not x86 Linux)
])
def test_cpu_detection_reads_the_flags(cpuinfo, text, flags, native, auto):
    cpuinfo(text)
    assert precision.cpu_bf16_flags() == flags
    assert precision.bf16_native("cpu") is native
    assert precision.resolve_precision("auto", "cpu") == auto
    # an explicit choice is kept whatever the CPU
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_missing_cpuinfo_means_no_native_bf16(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "CPUINFO", str(tmp_path / "absent"))
    assert precision.cpu_flags() == frozenset()
    assert precision.resolve_precision("auto", "cpu") == "fp32"


def test_other_devices_and_bad_values():
    assert precision.bf16_native("mps") is False
    if not torch.cuda.is_available():
        assert precision.bf16_native("cuda:0") is False
    with pytest.raises(ValidationError, match="precision = 'fp16': expected one of 'fp32'"):
        precision.resolve_precision("fp16", "cpu")


class _Probe(torch.nn.Module):
    """Records the autocast state and dtypes its forward pass sees."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.seen = []

    def forward(self, data, mask=None):
        out = self.linear(data.mean(dim=(2, 3)))
        self.seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out


def _train(precision_setting, losses):
    def loss(model, batch, generator):
        out = model(batch.data)
        losses.append((out.dtype, torch.is_autocast_enabled("cpu")))
        return out.pow(2).mean()

    data = np.random.default_rng(0).normal(size=(8, 3, 4, 4)).astype(np.float32)
    net = _Probe()
    trainer = Trainer(net, loss, epochs=1, batch_size=4, progress=False, device="cpu",
                      precision=precision_setting, prefetch=False)
    trainer.fit(InMemorySource(TensorBatch.from_arrays(data)))
    return trainer, net


@pytest.mark.parametrize(("setting", "cpu", "expected"), [
    ("bf16", ZEN3, "bf16"), ("fp32", SAPPHIRE_RAPIDS, "fp32"),
    ("auto", SAPPHIRE_RAPIDS, "bf16"), ("auto", ZEN4, "fp32"),
])
def test_the_trainer_switch(cpuinfo, setting, cpu, expected):
    cpuinfo(cpu)
    losses = []
    trainer, net = _train(setting, losses)
    assert trainer.precision_ == expected
    bf16 = expected == "bf16"
    # the network runs under autocast (bfloat16 matrix products) only in bf16 ...
    assert net.seen == [(bf16, torch.bfloat16 if bf16 else torch.float32)] * 2
    # ... the loss always sees float32 outputs, outside autocast ...
    assert losses == [(torch.float32, False)] * 2
    # ... and the weights (and the optimiser's updates) stay float32
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_trained_model_infers_in_its_precision(cpuinfo):
    from astro_cl.models.simclr import SimCLR

    cpuinfo(SAPPHIRE_RAPIDS)
    data = np.random.default_rng(1).normal(size=(6, 2, 16, 16)).astype(np.float32)
    batch = TensorBatch.from_arrays(data)
    model = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4, dropout=0.0).fit(
        batch, trainer={"epochs": 1, "progress": False, "precision": "auto"})
    forward = model.network()
    assert forward is not model.module_  # bf16 here: wrapped in autocast
    with torch.no_grad():
        assert forward(batch.data, batch.mask).dtype == torch.float32
    emb_bf16 = model.transform(batch)
    model.trainer_.precision = "fp32"
    assert model.network() is model.module_
    emb_fp32 = model.transform(batch)
    # the same network: bf16 inference rounds, but agrees with fp32 closely
    cosine = np.sum(emb_bf16 * emb_fp32, axis=1)
    assert not np.array_equal(emb_bf16, emb_fp32) and cosine.min() > 0.99
