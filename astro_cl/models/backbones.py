"""Torch networks: encoders with masked global pooling, and the U-Net.

`ConvBackbone` is the eCALIFA study's encoder: four blocks
``Conv(k) -> ReLU -> MaxPool(2) -> BatchNorm`` with 64/128/256/512 channels and
kernels 5/3/3/3, a global pooling and a dense head 512 -> 128 -> 64 with batch
norm and dropout. `ResNetBackbone` swaps the four blocks for residual stages.

Masked pixels (astropy convention: True = bad) carry no signal: they are set
to zero at the input, the validity mask is max-pooled alongside the features
(a cell is valid when any pixel under it is), features of invalid cells are
zeroed after every block, and the global pooling only looks at valid cells.

Speed: the encoders' activations and convolution weights use the
channels-last (NHWC) memory format (faster batch norm and pooling on CPU for
the small feature maps of the encoders), except that the convolutional
encoder's blocks run in NCHW on maps larger than 64x64 px, where oneDNN's
NCHW convolutions are faster (the first two blocks at the study's 192x184);
such inputs stay in NCHW from the start. Each block applies its ReLU after
the max-pooling, which gives exactly the study's Conv -> ReLU -> MaxPool
result with a quarter of the ReLU work.
The U-Net keeps NCHW, which measured as fast or faster for it on CPU and lets
the trainer use the fused Adam kernel. Inputs may come in either format;
loading weights saved in one format into a module using the other works
(copies keep the module's layout).
"""

import torch
import torch.nn.functional as F
from torch import nn

from astro_cl.utils.tensors import fill_pixels

__all__ = ["UNET_UPSAMPLING", "ContrastiveNet", "ConvBackbone", "DenseHead", "MaskedGlobalPool",
           "ResNetBackbone", "UNet", "build_backbone", "icnr_", "scale_width"]


def scale_width(channels, width):
    """Return ``channels`` scaled by a width multiplier (at least 1).

    Parameters
    ----------
    channels : int
    width : float

    Returns
    -------
    scaled : int
    """
    return max(1, round(int(channels) * float(width)))


#: Memory format of the encoders' activations and weights (see the module docstring).
_MEMORY_FORMAT = torch.channels_last
#: Conv blocks of the encoders whose input maps have more pixels than this run in NCHW.
_NCHW_MIN_PIXELS = 64 * 64
#: Memory format of the U-Net's activations and weights.
_UNET_MEMORY_FORMAT = torch.contiguous_format


def _prepare(x, mask, *, need_valid=True, memory_format=None):
    """Zero masked inputs and return ``(x, valid)`` with ``valid`` of shape (B, 1, H, W).

    ``x`` comes back in ``memory_format`` (default `_MEMORY_FORMAT`); ``valid``
    is None when ``need_valid`` is False.
    """
    if mask is not None:
        mask = mask.to(torch.bool)
        x = fill_pixels(x, mask)
    x = x.contiguous(memory_format=memory_format or _MEMORY_FORMAT)
    if not need_valid:
        return x, None
    if mask is None:
        return x, x.new_ones((x.shape[0], 1, *x.shape[2:]))
    valid = (~mask.all(dim=1, keepdim=True)).to(x.dtype)
    return x, valid


class MaskedGlobalPool(nn.Module):
    """Global max or mean pooling over valid cells only.

    Parameters
    ----------
    mode : {"max", "mean"}
        ``"max"`` as the eCALIFA study.
    """

    def __init__(self, mode="max"):
        super().__init__()
        if mode not in ("max", "mean"):
            msg = f"pooling: expected 'max' or 'mean', got {mode!r}"
            raise ValueError(msg)
        self.mode = mode

    def forward(self, feat, valid):
        """Pool ``(B, C, h, w)`` features where ``valid`` ``(B, 1, h, w)`` is non-zero.

        Parameters
        ----------
        feat : `torch.Tensor`
        valid : `torch.Tensor`

        Returns
        -------
        pooled : `torch.Tensor`
            ``(B, C)``; zeros for a galaxy without any valid cell.
        """
        good = valid > 0
        any_good = good.flatten(1).any(dim=1, keepdim=True)
        if self.mode == "max":
            low = torch.finfo(feat.dtype).min
            pooled = fill_pixels(feat, ~good, low).amax(dim=(2, 3))
        else:
            w = good.to(feat.dtype)
            pooled = (feat * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp_min(1.0)
        return torch.where(any_good, pooled, torch.zeros_like(pooled))


class DenseHead(nn.Module):
    """Dense layers ``Linear -> BN -> ReLU -> Dropout`` ending in ``Linear -> BN``.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Hidden widths (the study: 512, 128).
    out_features : int
        Output (embedding) size (the study: 64).
    dropout : float
        Dropout probability after each hidden layer.
    """

    def __init__(self, in_features, hidden=(512, 128), out_features=64, dropout=0.1):
        super().__init__()
        layers = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            width = h
        layers += [nn.Linear(width, out_features), nn.BatchNorm1d(out_features)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        """Apply the head to ``(B, in_features)``.

        Parameters
        ----------
        x : `torch.Tensor`

        Returns
        -------
        y : `torch.Tensor`
        """
        return self.layers(x)


def _block_memory_format(x):
    """Memory format in which a conv block runs fastest on CPU for input ``x``.

    oneDNN's channels-last convolutions win on the small maps of the deeper
    blocks, but lose on large maps with few channels, such as the first two
    blocks at the study's 30x192x184 input (figures in
    ``benchmarks/README.md``).
    """
    if x.device.type == "cpu" and x.shape[-2] * x.shape[-1] > _NCHW_MIN_PIXELS:
        return torch.contiguous_format
    return _MEMORY_FORMAT


class _ConvBlock(nn.Module):
    def __init__(self, cin, cout, kernel):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, valid):
        fmt = _block_memory_format(x)
        # the weight follows the input's layout (a copy of a few kB when they differ;
        # oneDNN would otherwise pick channels-last from the weight)
        x = F.conv2d(x.contiguous(memory_format=fmt),
                     self.conv.weight.contiguous(memory_format=fmt), self.conv.bias,
                     padding=self.conv.padding)
        # ReLU after the pooling: max and ReLU commute exactly (values and
        # gradients), and the ReLU then runs on a quarter of the pixels
        x = F.relu(F.max_pool2d(x, 2), inplace=True)
        valid = F.max_pool2d(valid, 2)
        return self.bn(x) * valid, valid


class _BackboneBase(nn.Module):
    def _head_forward(self, feat, valid):
        return self.head(self.pool(feat, valid))

    def _input_memory_format(self, x):
        return _MEMORY_FORMAT

    def features(self, x, mask=None):
        """Return the pooled features ``(B, C_last)`` before the dense head.

        Parameters
        ----------
        x : `torch.Tensor`
            ``(B, C, H, W)``.
        mask : `torch.Tensor` of bool, optional
            True where bad, broadcastable to ``x`` along channels.

        Returns
        -------
        features : `torch.Tensor`
        """
        feat, valid = self._trunk(*_prepare(x, mask,
                                           memory_format=self._input_memory_format(x)))
        return self.pool(feat, valid)

    def forward(self, x, mask=None):
        """Return the ``(B, out_features)`` output of the backbone.

        Parameters
        ----------
        x : `torch.Tensor`
            ``(B, C, H, W)`` input.
        mask : `torch.Tensor` of bool, optional
            True where bad.

        Returns
        -------
        out : `torch.Tensor`
        """
        return self.head(self.features(x, mask))


class ConvBackbone(_BackboneBase):
    """The eCALIFA study's convolutional encoder with masked global pooling.

    Parameters
    ----------
    in_channels : int
        Input channels (30 PCA channels, 5 ugriz bands, ...).
    channels : sequence of int, optional
        Channels of the conv blocks (before the width multiplier).
    kernels : sequence of int, optional
        Kernel sizes of the conv blocks.
    hidden : sequence of int, optional
        Hidden widths of the dense head (before the width multiplier).
    out_features : int, optional
        Output size (64 in the study; not scaled).
    dropout : float, optional
        Dropout of the dense head.
    pooling : {"max", "mean"}, optional
        Global pooling (the study: max).
    width : float, optional
        Width multiplier of every hidden layer.
    """

    def __init__(self, in_channels, *, channels=(64, 128, 256, 512), kernels=(5, 3, 3, 3),
                 hidden=(512, 128), out_features=64, dropout=0.1, pooling="max", width=1.0):
        super().__init__()
        if len(channels) != len(kernels):
            msg = f"channels {channels} and kernels {kernels} differ in length"
            raise ValueError(msg)
        chans = [scale_width(c, width) for c in channels]
        cin = int(in_channels)
        blocks = []
        for c, k in zip(chans, kernels, strict=True):
            blocks.append(_ConvBlock(cin, c, int(k)))
            cin = c
        self.blocks = nn.ModuleList(blocks)
        self.pool = MaskedGlobalPool(pooling)
        self.head = DenseHead(cin, [scale_width(h, width) for h in hidden], out_features,
                              dropout)
        self.out_features = int(out_features)
        self.in_channels = int(in_channels)
        # each block halves the map (floor): smaller inputs vanish before the last one
        self.min_input_size = 2 ** len(blocks)
        self.to(memory_format=_MEMORY_FORMAT)

    def _input_memory_format(self, x):
        # the layout the first block runs in: no round trip through channels-last
        return _block_memory_format(x)

    def _trunk(self, x, valid):
        for block in self.blocks:
            x, valid = block(x, valid)
        return x, valid


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(cout))
        self.stride = stride

    def forward(self, x, valid):
        if self.stride != 1:
            valid = F.max_pool2d(valid, self.stride, ceil_mode=True)
        y = F.relu(self.bn1(self.conv1(x))) * valid
        y = self.bn2(self.conv2(y))
        s = x if self.short is None else self.short(x)
        return F.relu(y + s) * valid, valid


class ResNetBackbone(_BackboneBase):
    """A residual backbone (basic blocks) with the same masked pooling and dense head.

    Parameters
    ----------
    in_channels : int
        Input channels.
    channels : sequence of int, optional
        Channels of the stages (before the width multiplier); each stage
        halves the resolution.
    blocks : int or sequence of int, optional
        Basic blocks per stage.
    hidden, out_features, dropout, pooling, width
        As for `ConvBackbone`.
    """

    def __init__(self, in_channels, *, channels=(64, 128, 256, 512), blocks=2,
                 hidden=(512, 128), out_features=64, dropout=0.1, pooling="max", width=1.0):
        super().__init__()
        chans = [scale_width(c, width) for c in channels]
        nblocks = [int(blocks)] * len(chans) if isinstance(blocks, int) else list(blocks)
        self.stem = nn.Sequential(nn.Conv2d(int(in_channels), chans[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True))
        layers, cin = [], chans[0]
        for c, n in zip(chans, nblocks, strict=True):
            for i in range(n):
                layers.append(_BasicBlock(cin, c, 2 if i == 0 else 1))
                cin = c
        self.layers = nn.ModuleList(layers)
        self.pool = MaskedGlobalPool(pooling)
        self.head = DenseHead(cin, [scale_width(h, width) for h in hidden], out_features,
                              dropout)
        self.out_features = int(out_features)
        self.in_channels = int(in_channels)
        self.min_input_size = 1  # strided, padded convolutions: any size reaches 1x1
        self.to(memory_format=_MEMORY_FORMAT)

    def _trunk(self, x, valid):
        x = self.stem(x) * valid
        for layer in self.layers:
            x, valid = layer(x, valid)
        return x, valid


def build_backbone(name, in_channels, **kwargs):
    """Build a backbone by name.

    Parameters
    ----------
    name : {"conv", "resnet"}
        ``"conv"`` is the eCALIFA study's network.
    in_channels : int
        Input channels.
    **kwargs
        Passed to `ConvBackbone` or `ResNetBackbone`.

    Returns
    -------
    backbone : `torch.nn.Module`
    """
    classes = {"conv": ConvBackbone, "resnet": ResNetBackbone}
    if name not in classes:
        msg = f"backbone: expected one of {sorted(classes)}, got {name!r}"
        raise ValueError(msg)
    return classes[name](in_channels, **kwargs)


class ContrastiveNet(nn.Module):
    """A backbone plus an optional projection head, for contrastive training.

    Parameters
    ----------
    backbone : `torch.nn.Module`
        Maps ``(x, mask)`` to ``(B, D)`` embeddings.
    projection : sequence of int, optional
        Widths of an MLP projection head applied during training only
        (``Linear -> ReLU`` between layers); None or empty: the loss acts on
        the embedding itself, as in the eCALIFA study.
    """

    def __init__(self, backbone, projection=None):
        super().__init__()
        self.backbone = backbone
        layers, width = [], backbone.out_features
        for i, h in enumerate(projection or ()):
            if i:
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.Linear(width, int(h)))
            width = int(h)
        self.projection = nn.Sequential(*layers) if layers else None

    @property
    def in_channels(self):
        """int: input channels of the backbone."""
        return int(self.backbone.in_channels)

    @property
    def min_input_size(self):
        """int: smallest height and width (px) the backbone can take."""
        return int(getattr(self.backbone, "min_input_size", 1))

    def forward(self, x, mask=None, *, project=True, readout="embedding"):
        """Return projections (``project=True``), embeddings or pooled trunk features.

        Parameters
        ----------
        x : `torch.Tensor`
        mask : `torch.Tensor`, optional
        project : bool, optional
        readout : {"embedding", "features"}, optional
            With ``project=False``: the backbone's output (after its dense
            head), or the pooled features of its trunk (before the head).

        Returns
        -------
        out : `torch.Tensor`
        """
        if not project and readout == "features":
            return self.backbone.features(x, mask)
        h = self.backbone(x, mask)
        if project and self.projection is not None:
            return self.projection(h)
        return h


def _double_conv(cin, cout, batch_norm):
    layers = []
    for c_in in (cin, cout):
        layers.append(nn.Conv2d(c_in, cout, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


#: Upsampling layers of the U-Net decoder (`UNet` ``upsample``).
UNET_UPSAMPLING = ("bilinear", "subpixel", "resize", "transpose")


def icnr_(weight, scale=2, init=None):
    """Fill a sub-pixel convolution weight in place with ICNR (Aitken et al. 2017).

    A convolution producing ``C * scale**2`` channels followed by
    `~torch.nn.PixelShuffle` gives every output pixel of a ``scale x scale``
    cell its own kernel. Initialised independently, the kernels differ and the
    upsampled map starts with a periodic pattern of period ``scale`` (the
    checkerboard). ICNR draws ``C`` kernels and gives each of them to all
    ``scale**2`` sub-pixels, so that the layer starts as a convolution followed
    by nearest-neighbour upsampling: no checkerboard at initialisation.

    Parameters
    ----------
    weight : `torch.Tensor`
        ``(C * scale**2, C_in, k, k)`` convolution weight (modified in place).
    scale : int, optional
        Upsampling factor of the pixel shuffle.
    init : callable, optional
        Initialiser of the ``(C, C_in, k, k)`` sub-kernel (default: PyTorch's
        default of `~torch.nn.Conv2d`, Kaiming uniform with ``a = sqrt(5)``).

    Returns
    -------
    weight : `torch.Tensor`
    """
    import math

    n_out = weight.shape[0]
    sub = scale * scale
    if n_out % sub:
        msg = (f"icnr_: the weight's {n_out} output channels are not a multiple of "
               f"scale**2 = {sub}")
        raise ValueError(msg)
    kernel = weight.new_empty((n_out // sub, *weight.shape[1:]))
    if init is None:
        nn.init.kaiming_uniform_(kernel, a=math.sqrt(5))
    else:
        init(kernel)
    with torch.no_grad():
        # PixelShuffle reads output channel c * scale**2 + s for sub-pixel s of channel c
        weight.copy_(kernel.repeat_interleave(sub, dim=0))
    return weight


class _SubPixelUp(nn.Module):
    """x2 upsampling by a 1x1 convolution to 4x the channels and a pixel shuffle (ICNR).

    With a 1x1 kernel this is the same map as a 2x2, stride-2 transposed
    convolution (same parameters, same FLOPs); only the ICNR initialisation
    differs, and weights of such a transposed convolution load into it exactly
    (`_load_from_state_dict`), so U-Nets saved with transposed convolutions
    still load and predict the same.
    """

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 1)
        icnr_(self.conv.weight, 2)
        with torch.no_grad():
            self.conv.bias.copy_(self.conv.bias[::4].repeat_interleave(4))
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight = state_dict.get(prefix + "weight")
        if weight is not None and weight.ndim == 4 and prefix + "conv.weight" not in state_dict:
            # a ConvTranspose2d(cin, cout, 2, stride=2): out[o, 2h+i, 2w+j] = sum_c
            # in[c, h, w] T[c, o, i, j]; the pixel shuffle reads channel o*4 + 2i + j
            cin, cout = weight.shape[:2]
            state_dict[prefix + "conv.weight"] = (
                state_dict.pop(prefix + "weight").permute(1, 2, 3, 0).reshape(4 * cout, cin, 1, 1))
            bias = state_dict.pop(prefix + "bias", None)
            if bias is not None:
                state_dict[prefix + "conv.bias"] = bias.repeat_interleave(4)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class _ResizeUp(nn.Module):
    """x2 nearest-neighbour upsampling then a 3x3 convolution (Odena et al. 2016)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _BilinearUp(nn.Module):
    """x2 bilinear upsampling of a 1x1 convolution (a resize-convolution with a 1x1 kernel).

    The 1x1 convolution runs before the upsampling, on a quarter of the
    pixels: both are linear, the one across channels and the other across
    pixels, so the order does not change the result.
    """

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear",
                             align_corners=False)


def _upsampler(mode, cin, cout):
    if mode == "subpixel":
        return _SubPixelUp(cin, cout)
    if mode == "resize":
        return _ResizeUp(cin, cout)
    if mode == "bilinear":
        return _BilinearUp(cin, cout)
    if mode == "transpose":
        return nn.ConvTranspose2d(cin, cout, 2, stride=2)
    msg = f"UNet upsample: expected one of {UNET_UPSAMPLING}, got {mode!r}"
    raise ValueError(msg)


class UNet(nn.Module):
    """The PICASSSO U-Net: images to property maps.

    Four levels of two 3x3 convolutions (64/128/256/512 channels times
    ``width``) with 2x2 max-pooling down, a bottom level (1024), x2
    upsampling with skip connections, and a 1x1 output convolution.
    Inputs of any size are zero-padded to a multiple of ``2**levels`` and the
    output is cropped back, so the output has the input's height and width.

    Parameters
    ----------
    in_channels : int
        Input bands (5 for ugriz).
    out_channels : int
        Output maps.
    channels : sequence of int, optional
        Channels per level (before ``width``).
    bottom : int, optional
        Channels of the bottom level (before ``width``).
    width : float, optional
        Width multiplier.
    batch_norm : bool, optional
        Batch norm after each convolution.
    upsample : {"bilinear", "subpixel", "resize", "transpose"}, optional
        The decoder's x2 upsampling (`UNET_UPSAMPLING`). ``"bilinear"``
        (default): bilinear upsampling of a 1x1 convolution, a
        resize-convolution (Odena et al. 2016) whose interpolation has no
        response at the Nyquist frequency, so it cannot make a checkerboard.
        ``"subpixel"``: a 1x1 convolution to four times the channels and a
        pixel shuffle, initialised with ICNR (`icnr_`; Aitken et al. 2017): no
        checkerboard at initialisation, PICASSSO's parameters and FLOPs.
        ``"resize"``: nearest-neighbour upsampling then a 3x3 convolution
        (Odena et al. 2016), about a third more FLOPs for the whole network.
        ``"transpose"``: PICASSSO's 2x2, stride-2 transposed convolution,
        whose sub-pixel kernels are independent and leave a checkerboard in
        the predicted maps.

    Notes
    -----
    At the demo's shape (5 x 64 x 64 ugriz images, batches of 16, width
    0.1875) a training step costs, relative to ``"transpose"``: 1.05
    (``"subpixel"``), 1.07 (``"bilinear"``), 1.30 (``"resize"``); the
    residual maps of the trained networks have 4-10 times less power at the
    Nyquist frequency than with ``"transpose"``. ``"subpixel"`` failed on
    the largest edge-on galaxies in 3 of 4 trainings, ``"bilinear"`` did not
    (``benchmarks/bench_unet_decoder.py``).

    Weights saved with another decoder load: those of transposed
    convolutions load into ``"subpixel"`` exactly (same map), and into
    ``"bilinear"`` or ``"resize"`` by switching the decoder back to
    transposed convolutions (``upsample`` then says ``"transpose"``), so
    U-Nets saved before the decoder became an option predict as they did.
    """

    def __init__(self, in_channels, out_channels, *, channels=(64, 128, 256, 512), bottom=1024,
                 width=1.0, batch_norm=True, upsample="bilinear"):
        super().__init__()
        chans = [scale_width(c, width) for c in channels]
        cb = scale_width(bottom, width)
        self.levels = len(chans)
        self.upsample = upsample
        self.down = nn.ModuleList()
        cin = int(in_channels)
        for c in chans:
            self.down.append(_double_conv(cin, c, batch_norm))
            cin = c
        self.bottom = _double_conv(cin, cb, batch_norm)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        cin = cb
        for c in reversed(chans):
            self.up.append(_upsampler(upsample, cin, c))
            self.up_conv.append(_double_conv(2 * c, c, batch_norm))
            cin = c
        self.out = nn.Conv2d(cin, int(out_channels), 1)
        self.in_channels = int(in_channels)
        self.min_input_size = 1  # inputs are padded to a multiple of 2**levels
        self.to(memory_format=_UNET_MEMORY_FORMAT)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(f"{prefix}up.0.weight")
        if (self.upsample in ("bilinear", "resize") and saved is not None and saved.ndim == 4
                and saved.shape[-2:] == (2, 2)):
            # weights of transposed convolutions (a U-Net saved before the decoder was an
            # option): the decoder becomes theirs before the children load, so that the
            # model predicts as it did; the parent loads first, then each child
            ref = self.out.weight
            for i, up in enumerate(self.up):
                self.up[i] = nn.ConvTranspose2d(up.conv.in_channels, up.conv.out_channels, 2,
                                                stride=2).to(device=ref.device, dtype=ref.dtype)
            self.upsample = "transpose"
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x, mask=None):
        """Map ``(B, C_in, H, W)`` images to ``(B, C_out, H, W)`` maps.

        Parameters
        ----------
        x : `torch.Tensor`
        mask : `torch.Tensor` of bool, optional
            True where bad; masked inputs are set to zero.

        Returns
        -------
        out : `torch.Tensor`
        """
        x, _ = _prepare(x, mask, need_valid=False, memory_format=_UNET_MEMORY_FORMAT)
        h, w = x.shape[-2:]
        m = 2 ** self.levels
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)).contiguous(
                memory_format=_UNET_MEMORY_FORMAT)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips), strict=True):
            x = conv(torch.cat([up(x), skip], dim=1))
        x = self.out(x)
        return x[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
