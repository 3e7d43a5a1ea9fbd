"""The U-Net decoder's upsampling: resize-convolutions, sub-pixel convolution with ICNR."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.models.backbones import UNET_UPSAMPLING, UNet, icnr_  # noqa: E402


def _nyquist_fraction(maps, border=4):
    """Fraction of each map's (non-constant) power on the Nyquist row and column.

    The outer ``border`` pixels are left out: the zero padding of the convolutions
    makes a frame there whatever the upsampling.
    """
    maps = maps[..., border:-border, border:-border]
    r = maps - maps.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(r)) ** 2
    ny, nx = r.shape[-2:]
    nyq = (power[..., ny // 2, :].sum(-1) + power[..., :, nx // 2].sum(-1)
           - power[..., ny // 2, nx // 2])
    return nyq / (power.sum(axis=(-2, -1)) - power[..., 0, 0])


def _smooth_images(n=4, size=32):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(xx, yy)[None, None] * np.linspace(0.6, 1.4, n)[:, None, None, None]
    return torch.from_numpy(np.exp(-r / 5).repeat(5, axis=1).astype(np.float32))


def test_default_decoder_is_bilinear_and_every_mode_keeps_the_shape():
    assert UNet(5, 3).upsample == "bilinear"
    x = torch.randn(2, 5, 23, 17)
    for mode in UNET_UPSAMPLING:
        assert UNet(5, 3, width=1 / 16, upsample=mode).eval()(x).shape == (2, 3, 23, 17)
    with pytest.raises(ValueError, match="UNet upsample: expected one of"):
        UNet(5, 3, upsample="nearest")


@pytest.mark.parametrize("mode", ["subpixel", "bilinear", "resize"])
def test_a_unet_saved_with_transposed_convolutions_predicts_the_same_after_loading(mode):
    """Into "subpixel" the weights convert exactly; the others switch back to them."""
    torch.manual_seed(0)
    old = UNet(5, 4, width=1 / 8, upsample="transpose").eval()
    with torch.no_grad():
        for p in old.parameters():
            p.normal_(0, 0.2)
    new = UNet(5, 4, width=1 / 8, upsample=mode).eval()
    new.load_state_dict(old.state_dict())
    assert new.upsample == ("subpixel" if mode == "subpixel" else "transpose")
    x = torch.randn(3, 5, 32, 32)
    torch.testing.assert_close(new(x), old(x), rtol=1e-5, atol=1e-6)


def test_icnr_starts_without_a_checkerboard():
    """ICNR: every sub-pixel of a 2x2 cell starts equal; the untrained U-Net's maps are
    smooth, unlike those of the transposed convolutions' independent sub-pixel kernels."""
    torch.manual_seed(1)
    up = UNet(5, 3, width=1 / 8, upsample="subpixel").up[0]
    y = up(torch.randn(2, up.conv.in_channels, 4, 4))
    for i, j in ((0, 1), (1, 0), (1, 1)):
        torch.testing.assert_close(y[..., i::2, j::2], y[..., ::2, ::2])
    x = _smooth_images()
    fractions = {}
    for mode in UNET_UPSAMPLING:
        torch.manual_seed(0)
        with torch.no_grad():
            out = UNet(5, 3, width=1 / 4, upsample=mode).eval()(x).numpy()
        fractions[mode] = float(np.median(_nyquist_fraction(out)))
    # seed 0: transpose 0.0149, the others 0.0003 or less (seeds 0-3: 0.0046-0.0201 for
    # the transposed convolutions, at most 0.0013 for the others)
    for mode in ("bilinear", "subpixel", "resize"):
        assert fractions[mode] < 0.2 * fractions["transpose"], fractions


def test_icnr_refuses_a_weight_that_is_not_a_pixel_shuffle_input():
    with pytest.raises(ValueError, match="6 output channels are not a multiple of scale"):
        icnr_(torch.empty(6, 3, 1, 1), 2)
