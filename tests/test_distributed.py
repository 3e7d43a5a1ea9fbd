"""Two CPU processes (gloo, loopback) must train to the same weights as one process."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.training.distributed import shard_indices  # noqa: E402

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from astro_cl.data.batch import TensorBatch
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.training.distributed import destroy_distributed

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 16, 16)).astype(np.float32)
    t = np.exp(rng.normal(size=(16, 2, 16, 16))).astype(np.float32)
    t[:, :, :3] = 0.0  # empty pixels
    batch = TensorBatch.from_arrays(x, targets=t, target_mask=np.zeros(t.shape, bool))
    # gathered embeddings (contrastive losses) + global batch norm: gradient of a
    # loss on the gathered batch, averaged over ranks as DDP does
    from astro_cl.models.backbones import ConvBackbone
    from astro_cl.training.distributed import (all_gather_with_grad, convert_batchnorm,
                                               init_distributed, shard_indices)
    info = init_distributed("cpu")
    torch.manual_seed(0)
    net = convert_batchnorm(ConvBackbone(3, width=1 / 16, hidden=(16,), out_features=8,
                                         dropout=0.0))
    idx = shard_indices(torch.arange(16), info.rank, info.world_size)
    z = all_gather_with_grad(net(torch.from_numpy(x)[idx]))
    (z.pow(2).sum(dim=1) * torch.arange(1.0, 17.0)[torch.cat(
        [shard_indices(torch.arange(16), r, info.world_size) for r in range(info.world_size)])]
     ).mean().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    if info.distributed:
        torch.distributed.all_reduce(grad)
        grad /= info.world_size
    reg = CNNRegressor(width=1 / 16, border=1).fit(batch, trainer={
        "epochs": 2, "batch_size": 8, "lr": 1e-2, "validation_fraction": 0.25,
        "progress": False, "seed": 5, "device": "cpu"})
    # SimCLR end to end: NT-Xent on embeddings gathered over the ranks, global batch
    # norm. The views must not depend on the sharding (the trainer seeds each rank's
    # augmentations differently), so this test-only augmenter is deterministic: the
    # first view of every pair is the mirror image, the second a blurred copy. SGD
    # because Adam divides the tiny gradients of this tiny net by their own
    # magnitude, which turns float rounding into visible weight changes.
    from astro_cl.augment.base import Augmenter
    from astro_cl.augment.photometric import GaussianBlur

    class FixedViews(Augmenter):
        # SimCLR augments the batch repeated twice in one call: mirror the first
        # copy, blur the second (deterministic, whatever the sharding)
        def transform(self, batch, generator):
            half = len(batch) // 2
            blurred = GaussianBlur(sigma=1.0)(batch.chunk(half, len(batch)), generator=generator)
            return batch.replace(data=torch.cat([batch.data[:half].flip(-1), blurred.data]),
                                 mask=torch.cat([batch.mask[:half].flip(-1), blurred.mask]))

    from astro_cl.models.simclr import SimCLR
    views = FixedViews()
    sim = SimCLR(width=1 / 16, hidden=(256,), embedding_dim=8, dropout=0.0, augmenter=views)
    sim.fit(batch, trainer={"optimizer": "sgd", "lr": 0.005, "schedule": None, "epochs": 2,
                            "batch_size": 8, "validation_fraction": 0.25, "patience": None,
                            "progress": False, "seed": 5, "device": "cpu"})
    # one gradient of the SimCLR loss at the initial weights, averaged as DDP does
    sim0 = SimCLR(**sim.get_params()).fit(batch, trainer=sim.trainer_.set_params(epochs=0))
    net0 = convert_batchnorm(sim0.module_).train()
    loss0 = sim0.build_loss(sim0.info_)
    prepared = loss0.prepare(batch.index(idx), torch.Generator().manual_seed(0))
    loss0.compute(net0, prepared).backward()
    sim_grad = torch.cat([p.grad.reshape(-1) for p in net0.parameters()])
    if info.distributed:
        torch.distributed.all_reduce(sim_grad)
        sim_grad /= info.world_size
    import torch.distributed as dist
    if not dist.is_initialized() or dist.get_rank() == 0:
        torch.save({"grad": grad, "reg": reg.module_.state_dict(),
                    "reg_hist": [h["val_loss"] for h in reg.history_],
                    "sim": sim.module_.state_dict(), "sim_grad": sim_grad,
                    "sim_hist": [[h["train_loss"], h["val_loss"]] for h in sim.history_]},
                   out)
    destroy_distributed()
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_indices_pads_like_distributed_sampler():
    idx = torch.arange(5)
    shards = [shard_indices(idx, r, 2) for r in range(2)]
    assert [s.tolist() for s in shards] == [[0, 2, 4], [1, 3, 0]]
    assert shard_indices(idx, 0, 1).tolist() == [0, 1, 2, 3, 4]


def test_distributed_batchnorm_is_plain_batchnorm_in_one_process():
    from astro_cl.training.distributed import convert_batchnorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    x = torch.randn(4, 2, 5, 5)
    ref = net(x)
    conv = convert_batchnorm(net)
    torch.testing.assert_close(conv(x), ref)


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = tmp_path / "one.pt"
    subprocess.run([sys.executable, str(script), str(one)], check=True, env=env, timeout=300)
    two = tmp_path / "two.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), str(two)]
    subprocess.run(cmd, check=True, env=env, timeout=300)
    a = torch.load(one, weights_only=True)
    b = torch.load(two, weights_only=True)
    torch.testing.assert_close(b["grad"], a["grad"], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(b["sim_grad"], a["sim_grad"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(a["reg_hist"], b["reg_hist"], rtol=1e-4)
    np.testing.assert_allclose(a["sim_hist"], b["sim_hist"], rtol=1e-4)
    assert a["sim_hist"][1][1] < a["sim_hist"][0][1]  # it learned (validation loss fell)
    for key in ("reg", "sim"):
        for name, value in a[key].items():
            if value.is_floating_point():
                torch.testing.assert_close(b[key][name], value, rtol=1e-3, atol=2e-3,
                                           msg=f"{key}.{name}")
