"""The U-Net loss's integral term: per-galaxy sums of surface-density maps in dex."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.exceptions import ValidationError  # noqa: E402
from astro_cl.models.regressor import (  # noqa: E402
    CNNRegressor,
    _is_surface_density,
    _RegressionLoss,
)


@pytest.mark.parametrize(("unit", "expected"), [
    ("solMass / kpc2", True), ("solMass / (yr kpc2)", True), ("solMass / pc2", True),
    ("Gyr", False), ("dex", False), ("", False), ("Angstrom", False), ("mag / arcsec2", False),
])
def test_surface_density_units(unit, expected):
    assert _is_surface_density(unit) is expected


class _Constant(torch.nn.Module):
    """A "network" whose output is a fixed map (standardised log10 values)."""

    def __init__(self, out):
        super().__init__()
        self.out = torch.nn.Parameter(out.clone())

    def forward(self, data, mask=None):
        return self.out.expand(data.shape[0], *self.out.shape[1:])


def _loss(weight, summable=(True, False), border=0):
    # two maps: a surface density (log10 regressed) and an intensive map in dex
    return _RegressionLoss(None, [0.0, -1.0], 1e-3, border, False,
                           ([False, True], [0.0, 0.0], [1.0, 1.0]),
                           integral_weight=weight, summable=list(summable))


def _value(loss):
    return float(loss.detach())


def _prepared(log_mass, dex_map):
    logt = torch.stack([log_mass, dex_map])[None]
    w = torch.ones_like(logt)
    return torch.zeros(1, 1, *log_mass.shape), None, logt, w


def test_integral_term_is_the_squared_dex_error_of_the_sum():
    rng = np.random.default_rng(0)
    log_mass = torch.as_tensor(rng.uniform(6, 9, (8, 8)), dtype=torch.float32)
    dex_map = torch.as_tensor(rng.normal(0, 0.2, (8, 8)), dtype=torch.float32)
    prepared = _prepared(log_mass, dex_map)
    exact = _Constant(prepared[2])
    assert _value(_loss(1.0).compute(exact, prepared)) == pytest.approx(0.0, abs=1e-6)
    # every pixel 0.1 dex low: per-pixel error 0.01 on one map of two (mean 0.005);
    # the sum is 0.1 dex low too: integral term 0.01 (only the summable map counts)
    low = _Constant(prepared[2] - torch.tensor([0.1, 0.0]).view(1, 2, 1, 1))
    per_pixel = _value(_loss(0.0).compute(low, prepared))
    assert per_pixel == pytest.approx(0.005, rel=1e-4)
    assert _value(_loss(2.0).compute(low, prepared)) == pytest.approx(per_pixel + 2 * 0.01,
                                                                      rel=1e-4)
    # an intensive map off by 0.1 dex changes only the per-pixel part
    off = _Constant(prepared[2] - torch.tensor([0.0, 0.1]).view(1, 2, 1, 1))
    assert _value(_loss(2.0).compute(off, prepared)) == pytest.approx(0.005, rel=1e-4)


def test_integral_term_skips_masked_and_border_pixels():
    log_mass = torch.full((8, 8), 8.0)
    prepared = _prepared(log_mass, torch.zeros(8, 8))
    wrong_edge = prepared[2].clone()
    wrong_edge[:, 0, 0, :] += 3.0  # a wildly wrong first row
    model = _Constant(wrong_edge)
    data, mask, logt, w = prepared
    w = w.clone()
    w[:, :, 0, :] = 0.0  # the row is masked (or cropped)
    assert _value(_loss(1.0).compute(model, (data, mask, logt, w))) == pytest.approx(0.0,
                                                                                   abs=1e-6)


def test_integral_gradient_raises_an_unresolved_peak():
    # the truth has a cusp the prediction smooths away. At the mean log10 the
    # per-pixel term's gradients sum to zero over the map (the total stays where
    # it is, 1.6 dex short); the integral term raises the whole map
    log_mass = torch.full((5, 5), 7.0)
    log_mass[2, 2] = 9.0
    prepared = _prepared(log_mass, torch.zeros(5, 5))
    flat = prepared[2].clone()
    flat[:, 0] = float(log_mass.mean())
    model = _Constant(flat)
    _loss(0.0).compute(model, prepared).backward()
    assert float(model.out.grad[0, 0].sum()) == pytest.approx(0.0, abs=1e-6)
    model.out.grad = None
    _loss(1.0).compute(model, prepared).backward()
    assert float(model.out.grad[0, 0].sum()) < -0.1  # descending the loss raises the map


def test_integral_weight_is_validated():
    with pytest.raises(ValidationError, match="integral_weight"):
        CNNRegressor(integral_weight=-1.0)._validate_params()


def _maps_batch(n=12, size=16, seed=0):
    """Images whose total flux sets a galaxy's mass map (a Gaussian in Msun / kpc2)."""
    import astropy.units as u

    from astro_cl.data.batch import TensorBatch

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    amp = 10 ** rng.uniform(7, 9, n)
    prof = np.exp(-(xx**2 + yy**2) / 8.0)
    mass = amp[:, None, None, None] * prof
    images = np.log10(mass).repeat(3, axis=1) - 8 + 0.01 * rng.normal(size=(n, 3, size, size))
    return TensorBatch(data=torch.as_tensor(images, dtype=torch.float32),
                       mask=torch.zeros(n, 1, size, size, dtype=torch.bool),
                       targets=torch.as_tensor(mass, dtype=torch.float32),
                       ids=[f"g{i}" for i in range(n)],
                       meta={"target_names": ("stellar_mass",),
                             "target_units": (str(u.Msun / u.kpc**2),)})


def test_calibration_removes_the_training_bias_of_summed_maps(tmp_path):
    import astro_cl

    batch = _maps_batch()
    trainer = {"epochs": 2, "batch_size": 6, "lr": 1e-3, "progress": False, "seed": 0}
    raw = CNNRegressor(width=1 / 16, channels=(16, 32), bottom=32, border=0,
                       calibrate_integrals=False).fit(batch, trainer=trainer)
    fixed = CNNRegressor(width=1 / 16, channels=(16, 32), bottom=32, border=0).fit(
        batch, trainer=trainer)
    assert raw.info_["log10_offset"] == [0.0]
    offset = fixed.info_["log10_offset"][0]

    def mean_delta(model):
        pred = np.stack([m["stellar_mass"].data for m in model.predict_maps(batch)])
        true = batch.targets.numpy()[:, 0]
        return float(np.mean(np.log10(true.sum(axis=(1, 2)) / pred.sum(axis=(1, 2)))))

    # two epochs leave a large bias; the calibrated model has none on its training set
    assert abs(mean_delta(raw)) > 0.05
    assert offset == pytest.approx(mean_delta(raw), abs=1e-3)
    assert abs(mean_delta(fixed)) < 1e-3
    # the offset is saved with the model
    fixed.save(tmp_path / "unet.pt")
    loaded = astro_cl.load_model(tmp_path / "unet.pt")
    assert loaded.info_["log10_offset"] == fixed.info_["log10_offset"]
