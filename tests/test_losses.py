import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.models.losses import gaussian_nll, log10_targets, masked_mse, nt_xent  # noqa: E402


def _hand_cross(z1, z2, t):
    """NT-Xent with cross-view negatives, by explicit sums over Python floats."""
    n1 = [v / np.linalg.norm(v) for v in z1]
    n2 = [v / np.linalg.norm(v) for v in z2]
    n = len(n1)
    total = 0.0
    for a, b in ((n1, n2), (n2, n1)):
        for i in range(n):
            sims = [float(np.dot(a[i], b[j])) / t for j in range(n)]
            total += -sims[i] + math.log(sum(math.exp(s) for s in sims))
    return total / (2 * n)


def test_nt_xent_cross_matches_hand_computation():
    z1 = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = np.array([[2.0, 0.5], [0.1, 1.0], [-1.0, 1.0]])
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), 0.5).item()
    assert got == pytest.approx(_hand_cross(z1, z2, 0.5), rel=1e-6)


def test_nt_xent_two_orthogonal_pairs_closed_form():
    # Perfectly aligned pairs, orthogonal across galaxies:
    # loss = -1/t + log(e^{1/t} + e^0)
    e = torch.eye(2)
    t = 0.5
    expected = -1 / t + math.log(math.exp(1 / t) + 1.0)
    assert nt_xent(e, e, t).item() == pytest.approx(expected, rel=1e-6)
    # SimCLR ("all") adds the same-view negative (similarity 0 as well)
    expected_all = -1 / t + math.log(math.exp(1 / t) + 2.0)
    assert nt_xent(e, e, t, negatives="all").item() == pytest.approx(expected_all, rel=1e-6)


def test_nt_xent_symmetric_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    a = nt_xent(z1, z2)
    assert nt_xent(z2, z1).item() == pytest.approx(a.item(), rel=1e-6)
    assert nt_xent(3 * z1, z2).item() == pytest.approx(a.item(), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)


def test_log10_targets_weights_and_border():
    t = torch.ones(1, 2, 10, 10) * 100.0
    t[0, 0, 5, 5] = 0.0  # empty
    mask = torch.zeros(1, 2, 10, 10, dtype=torch.bool)
    mask[0, 1, 6, 6] = True
    logt, w = log10_targets(t, mask, empty_weight=0.01, border=2)
    assert torch.all(w[..., :2, :] == 0) and torch.all(w[..., -2:, :] == 0)
    assert w[0, 0, 5, 5].item() == pytest.approx(0.01)
    assert w[0, 1, 6, 6].item() == 0.0
    assert w[0, 0, 4, 4].item() == 1.0
    assert logt[0, 0, 4, 4].item() == pytest.approx(2.0)
    assert logt[0, 0, 5, 5].item() == pytest.approx(1.0)  # floor: 1 dex below the minimum
    assert torch.isfinite(logt).all()


def test_masked_mse_and_gaussian_nll():
    pred = torch.tensor([1.0, 2.0, 3.0])
    tgt = torch.tensor([1.0, 0.0, 0.0])
    w = torch.tensor([1.0, 1.0, 0.0])
    assert masked_mse(pred, tgt, w).item() == pytest.approx(2.0)
    nll = gaussian_nll(pred, torch.zeros(3), tgt, w).item()
    assert nll == pytest.approx(0.5 * 2.0 + 0.5 * math.log(2 * math.pi))
