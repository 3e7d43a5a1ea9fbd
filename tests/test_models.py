import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData
from astropy.wcs import WCS

torch = pytest.importorskip("torch")

from astro_cl.augment.base import Augmenter  # noqa: E402
from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.data.record import GalaxyRecord  # noqa: E402
from astro_cl.exceptions import ValidationError  # noqa: E402
from astro_cl.models.backbones import ConvBackbone, ResNetBackbone, UNet  # noqa: E402
from astro_cl.models.regressor import CNNRegressor  # noqa: E402
from astro_cl.models.simclr import SimCLR  # noqa: E402
from astro_cl.surveys.memory import InMemorySurvey  # noqa: E402


class NoiseFlip(Augmenter):
    """Tiny test augmenter: random flips and multiplicative noise (targets flipped alike)."""

    name = "test-noise-flip"

    def __init__(self, *, sigma=0.1):
        self.sigma = sigma

    def transform(self, batch, generator):
        flip = torch.rand(len(batch), generator=generator) < 0.5
        def f(t):
            return None if t is None else torch.where(flip.view(-1, 1, 1, 1), t.flip(-1), t)
        data = f(batch.data)
        noise = torch.randn(data.shape, generator=generator) * self.sigma
        return batch.replace(data=data * (1 + noise), mask=f(batch.mask),
                             targets=f(batch.targets), target_mask=f(batch.target_mask))


def _blobs(n=16, c=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = rng.uniform(1.5, 5, n)
    amp = rng.uniform(0.5, 2, (n, c))
    img = amp[:, :, None, None] * np.exp(-(xx**2 + yy**2) / (2 * r[:, None, None, None] ** 2))
    return (img + 0.01 * rng.normal(size=img.shape)).astype(np.float32), r


@pytest.mark.parametrize("cls", [ConvBackbone, ResNetBackbone])
@pytest.mark.parametrize("shape", [(30, 32, 29), (5, 17, 16), (3, 16, 16)])
def test_backbone_shapes(cls, shape):
    net = cls(shape[0], width=1 / 16, hidden=(32, 16), out_features=64).eval()
    out = net(torch.randn(2, *shape))
    assert out.shape == (2, 64)


@pytest.mark.parametrize("cls", [ConvBackbone, ResNetBackbone])
@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_masked_pooling_ignores_masked_pixels(cls, pooling):
    torch.manual_seed(0)
    net = cls(4, width=1 / 16, hidden=(16,), pooling=pooling).eval()
    x = torch.randn(3, 4, 32, 32)
    mask = torch.zeros(3, 1, 32, 32, dtype=torch.bool)
    mask[:, :, :, 16:] = True
    y = x.clone()
    y[:, :, :, 16:] = 1e3 * torch.randn(3, 4, 32, 16)
    a, b = net(x, mask), net(y, mask)
    torch.testing.assert_close(a, b)
    # without the mask the garbage does change the output
    assert not torch.allclose(net(x), net(y))


def _study_blocks_reference(net, x, mask):
    """The study's block order, written out: Conv -> ReLU -> MaxPool(2) -> BatchNorm."""
    import torch.nn.functional as F

    x = torch.where(mask, 0.0, x)
    valid = (~mask.all(dim=1, keepdim=True)).to(x.dtype)
    for block in net.blocks:
        x = F.conv2d(x, block.conv.weight, block.conv.bias, padding=block.conv.padding)
        x = F.max_pool2d(F.relu(x), 2)
        valid = F.max_pool2d(valid, 2)
        x = block.bn(x) * valid
    return net.pool(x, valid)


# 72x72 px puts the first block above the size where it runs in NCHW
@pytest.mark.parametrize("size", [24, 72])
def test_conv_backbone_matches_the_study_block_order(size):
    torch.manual_seed(0)
    net = ConvBackbone(6, width=1 / 16, hidden=(16,)).train()
    ref = ConvBackbone(6, width=1 / 16, hidden=(16,)).train()
    ref.load_state_dict(net.state_dict())
    x = torch.randn(4, 6, size, size)
    mask = torch.rand(4, 1, size, size) < 0.2
    got = net.features(x, mask)
    want = _study_blocks_reference(ref, x, mask)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    (got.square().sum()).backward()
    (want.square().sum()).backward()
    for (name, p), q in zip(net.blocks.named_parameters(), ref.blocks.parameters(),
                             strict=True):
        # float rounding differs between the layouts: compare to the largest gradient
        scale = float(q.grad.abs().max())
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-4 * scale, msg=name)


def test_fully_masked_galaxy_gives_finite_output():
    net = ConvBackbone(2, width=1 / 16, hidden=(8,)).eval()
    out = net(torch.randn(2, 2, 16, 16), torch.ones(2, 1, 16, 16, dtype=torch.bool))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("hw", [(16, 16), (17, 23), (31, 9), (256 // 8, 40)])
def test_unet_odd_sizes(hw):
    net = UNet(5, 7, width=1 / 16).eval()
    out = net(torch.randn(2, 5, *hw))
    assert out.shape == (2, 7, *hw)


def test_unet_default_widths():
    net = UNet(5, 7)
    assert net.down[0][0].out_channels == 64 and net.bottom[0].out_channels == 1024


def test_simclr_loss_falls_and_outputs():
    data, _ = _blobs(16, 3, 16)
    batch = TensorBatch.from_arrays(data, ids=[f"g{i}" for i in range(16)])
    losses = []
    enc = SimCLR(width=1 / 16, hidden=(32, 16), embedding_dim=8, augmenter=NoiseFlip(),
                 dropout=0.0)
    enc.fit(batch, trainer={"epochs": 6, "lr": 3e-3, "patience": None, "progress": False,
                            "seed": 1},
            callbacks=[lambda tr, ev, info: losses.append(info["loss"])
                       if ev == "step_end" else None])
    assert losses[-1] < losses[0]
    emb = enc.transform(batch)
    assert emb.shape == (16, 8) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    table = enc.embed(batch, n_views=3, seed=0)
    assert list(table["id"]) == batch.ids
    assert table["embedding"].shape == (16, 8)
    np.testing.assert_allclose(np.linalg.norm(table["embedding"], axis=1), 1, rtol=1e-5)
    assert table.meta["model"] == "simclr" and "astro_cl_version" in table.meta
    # deterministic with the same seed
    again = enc.embed(batch, n_views=3, seed=0)
    np.testing.assert_array_equal(table["embedding"], again["embedding"])
    # the trunk's pooled features: as wide as the last convolution, unit vectors
    import torch

    feats = enc.embed(batch, readout="features")
    with torch.no_grad():
        expected = enc.module_.eval().backbone.features(torch.as_tensor(data))
    assert feats.meta["readout"] == "features" and table.meta["readout"] == "embedding"
    np.testing.assert_allclose(np.asarray(feats["embedding"]),
                               torch.nn.functional.normalize(expected, dim=1).numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValidationError, match="readout: expected one of 'embedding', "
                                              "'features', got 'head'"):
        enc.embed(batch, readout="head")


def test_simclr_check_encoder():
    testing = pytest.importorskip("astro_cl.testing")
    data, _ = _blobs(8, 2, 16)
    batch = TensorBatch.from_arrays(data)
    testing.check_encoder(SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4,
                                 augmenter=NoiseFlip()), batch, expected_rows=8,
                          fit_params={"trainer": {"epochs": 1, "progress": False}})


def _regression_survey(n=12, size=20, seed=0):
    data, r = _blobs(n, 5, size, seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    recs = []
    for i in range(n):
        mass = 1e8 * data[i, 2].clip(0) ** 1.5
        mass[np.hypot(xx, yy) > 2.5 * r[i]] = 0.0  # empty outskirts
        recs.append(GalaxyRecord(
            id=f"g{i}",
            images=NDData(data[i], unit=u.nanomaggy, wcs=wcs,
                          meta={"bands": ("u", "g", "r", "i", "z")}),
            maps={"stellar_mass": NDData(mass, unit=u.Msun / u.kpc**2),
                  "age_lw": NDData(np.full((size, size), 3.0 + r[i], np.float32), unit=u.Gyr)}))
    return InMemorySurvey(records=recs)


def test_cnn_regressor_fit_predict_maps():
    survey = _regression_survey()
    losses = []
    reg = CNNRegressor(width=1 / 16, border=2, predict_uncertainty=True,
                       augmenter=NoiseFlip(sigma=0.01))
    reg.fit(survey, trainer={"lr": 3e-3, "epochs": 4, "batch_size": 4, "validation_fraction": 0.0,
                             "progress": False, "schedule": "constant"},
            callbacks=[lambda tr, ev, info: losses.append(info["loss"])
                       if ev == "step_end" else None])
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    maps = reg.predict_maps(survey)
    assert len(maps) == len(survey)
    m = maps[0]["stellar_mass"]
    assert m.unit == u.Msun / u.kpc**2 and maps[0]["age_lw"].unit == u.Gyr
    assert m.data.shape == (20, 20)
    assert m.wcs is not None and m.wcs.wcs.crval[0] == pytest.approx(150.0)
    assert m.uncertainty is not None and np.all(m.uncertainty.array > 0)
    assert reg.transform(survey).shape == (12, 2, 20, 20)


def test_cnn_regressor_needs_targets():
    data, _ = _blobs(4, 5, 16)
    from astro_cl.exceptions import ValidationError

    with pytest.raises(ValidationError, match="no targets"):
        CNNRegressor(width=1 / 16).fit(TensorBatch.from_arrays(data),
                                       trainer={"epochs": 1, "progress": False})


def test_models_module_is_torch_free():
    import subprocess

    code = ("import sys, astro_cl.models, astro_cl.models.simclr, astro_cl.models.regressor; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
