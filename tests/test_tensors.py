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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("c", [1, 3, 9])
def test_zero_fill_matches_masked_fill_bit_for_bit(dtype, fmt, c):
    """Zeroing (the fast paths) writes +0.0 over anything, NaN and -inf included."""
    x, pixels = _case(fmt, c=c)
    x = x.to(dtype)
    x[0, :, 0, 0] = float("nan")
    x[1, :, 0, 0] = -float("inf")
    x[2, :, 0, 0] = -0.0
    pixels[:, :, 0, 0] = True
    for inplace in (False, True):
        y = x.clone()
        out = fill_pixels(y, pixels, inplace=inplace)
        expected = x.masked_fill(pixels, 0.0)
        assert torch.equal(out, expected)
        assert not bool(torch.signbit(out[pixels.expand_as(out)]).any())  # +0.0, not -0.0
        assert (out is y) == inplace
        assert out.is_contiguous(memory_format=fmt)
        if not inplace:
            assert torch.equal(y.isnan(), x.isnan())  # the input is left alone
    # a negative zero is written as such (the plain path)
    out = fill_pixels(x, pixels, -0.0)
    assert bool(torch.signbit(out[pixels.expand_as(out)]).all())


def test_zero_fill_keeps_the_gradient():
    x, pixels = _case(torch.contiguous_format, c=3)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    w = torch.randn(x.shape)
    (fill_pixels(a * 2, pixels) * w).sum().backward()
    ((b * 2).masked_fill(pixels, 0.0) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
