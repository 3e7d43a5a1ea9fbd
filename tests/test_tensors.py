"""fill_pixels: masked_fill with a per-pixel mask, by whole pixels."""

import pytest
import torch

from astro_cl.utils.tensors import fill_pixels


def _case(fmt, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, c, 7, 6, generator=g).contiguous(memory_format=fmt)
    pixels = torch.rand(3, 1, 7, 6, generator=g) < 0.3
    return x, pixels


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("inplace", [False, True])
def test_matches_masked_fill(fmt, inplace):
    x, pixels = _case(fmt)
    x[0, 2, 0, 0] = float("nan")
    pixels[0, 0, 0, 0] = True
    expected = x.masked_fill(pixels, -2.5)
    original = x.clone()
    out = fill_pixels(x, pixels, -2.5, inplace=inplace)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=fmt)
    assert (out is x) == inplace
    if not inplace:
        torch.testing.assert_close(x, original, equal_nan=True)


def test_other_mask_shapes_and_empty_mask():
    x, _ = _case(torch.channels_last)
    per_channel = torch.rand(x.shape) < 0.5
    torch.testing.assert_close(fill_pixels(x, per_channel), x.masked_fill(per_channel, 0.0))
    none = torch.zeros(3, 1, 7, 6, dtype=torch.bool)
    out = fill_pixels(x, none)
    torch.testing.assert_close(out, x)
    assert out is not x


def test_gradient_matches_masked_fill():
    x, pixels = _case(torch.channels_last)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    w = torch.randn(x.shape)
    (fill_pixels(a * 2, pixels, 1.0) * w).sum().backward()
    ((b * 2).masked_fill(pixels, 1.0) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
