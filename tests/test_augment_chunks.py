"""Chunked execution of `Compose` and the block-parallel normal draws."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.augment import _random  # noqa: E402
from astro_cl.augment.compose import Compose  # noqa: E402
from astro_cl.augment.geometric import RandomRot90, RandomTranslation  # noqa: E402
from astro_cl.augment.masking import StarMask  # noqa: E402
from astro_cl.augment.photometric import GaussianBlur, MultiplicativeNoise  # noqa: E402
from astro_cl.augment.rebin import Rebin  # noqa: E402
from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.exceptions import ValidationError  # noqa: E402


def _batch(n=6, c=5, h=20, w=18, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.lognormal(size=(n, c, h, w)).astype(np.float32)
    mask = np.zeros((n, 1, h, w), bool)
    mask[:, :, :2] = True
    return TensorBatch.from_arrays(np.where(mask, 0, data), mask,
                                   uncertainty=0.1 * data + 0.01)


def _chain(chunk_size):
    return Compose(steps=[(MultiplicativeNoise(sn=(2, 5)), 0.5), (Rebin(factor=(1, 3)), 0.5),
                          (RandomRot90(), 1.0), (RandomTranslation(max_shift=3), 1.0),
                          (GaussianBlur(sigma=(0.5, 1.0)), 0.5), (StarMask(), 0.5)],
                   chunk_size=chunk_size)


@pytest.mark.parametrize("chunk_size", [1, 2, 4, None, "auto"])
def test_chunked_chain_is_seeded_and_keeps_shapes(chunk_size):
    batch = _batch()
    a = _chain(chunk_size)(batch, seed=3)
    b = _chain(chunk_size)(batch, seed=3)
    for name in ("data", "mask", "uncertainty"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == getattr(batch, name).shape
        assert x.dtype == getattr(batch, name).dtype
        assert torch.equal(x, y)
    assert a.ids == batch.ids
    assert not torch.equal(a.data, _chain(chunk_size)(batch, seed=4).data)


def test_chunks_equal_whole_batch_for_a_pixel_exact_chain():
    # RandomRot90 draws one number per galaxy: one chunk of 2 after another draws
    # the same stream as the whole batch at once
    batch = _batch()
    whole = Compose(steps=[RandomRot90()], chunk_size=None)(batch, seed=1)
    chunked = Compose(steps=[RandomRot90()], chunk_size=6)(batch, seed=1)
    assert torch.equal(whole.data, chunked.data)


def test_chain_never_writes_into_the_callers_batch():
    batch = _batch()
    before = {n: getattr(batch, n).clone() for n in ("data", "mask", "uncertainty")}
    for chunk_size in (None, 2):
        _chain(chunk_size)(batch, seed=0)
        Compose(steps=[(MultiplicativeNoise(), 0.5), (StarMask(), 0.5)],
                chunk_size=chunk_size)(batch, seed=0)
    for name, value in before.items():
        assert torch.equal(getattr(batch, name), value), name


def test_auto_chunk_length_follows_the_data_size():
    chain = _chain("auto")
    small = _batch(n=4)
    assert chain._chunk_length(small) >= len(small)
    big = TensorBatch.from_arrays(np.zeros((3, 30, 192, 184), np.float32))
    assert chain._chunk_length(big) == Compose.CHUNK_BYTES // (30 * 192 * 184 * 4)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "big", True])
def test_bad_chunk_size_is_named(bad):
    with pytest.raises(ValidationError, match="chunk_size"):
        _chain(bad)(_batch(), seed=0)


def test_chunk_threads_do_not_change_the_views():
    batch = _batch(n=7)
    views = []
    for workers in (1, 2, 3, "auto"):
        chain = _chain(2)
        chain.workers = workers
        views.append(chain(batch, seed=5))
    for other in views[1:]:
        for name in ("data", "mask", "uncertainty"):
            assert torch.equal(getattr(views[0], name), getattr(other, name)), name
        assert other.ids == batch.ids


def test_chunk_threads_keep_the_grad_mode():
    batch = _batch(n=4)
    batch = batch.replace(data=batch.data.clone().requires_grad_(True))
    chain = Compose(steps=[GaussianBlur(sigma=(0.5, 1.0))], chunk_size=1, workers=2)
    with torch.no_grad():
        assert not chain(batch, seed=0).data.requires_grad
    out = chain(batch, seed=0)
    out.data.sum().backward()
    assert batch.data.grad is not None and torch.isfinite(batch.data.grad).all()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "many", True])
def test_bad_workers_are_named(bad):
    with pytest.raises(ValidationError, match="workers"):
        Compose(steps=[RandomRot90()], workers=bad)(_batch(), seed=0)


def test_block_normal_draws_are_seeded_and_standard(monkeypatch):
    monkeypatch.setattr(_random, "NORMAL_BLOCK", 1000)
    like = torch.empty(2, 5, 40, 60)  # 24 blocks
    a = _random.randn_like(like, torch.Generator().manual_seed(0))
    b = _random.randn_like(like, torch.Generator().manual_seed(0))
    c = _random.randn_like(like, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert abs(float(a.mean())) < 0.05
    assert abs(float(a.std()) - 1.0) < 0.05
    # blocks are independent streams, not copies of one another
    blocks = a.reshape(-1)[:24000].view(24, 1000)
    corr = np.corrcoef(blocks.numpy())
    assert np.abs(corr[np.triu_indices(24, 1)]).max() < 0.2
    cl = _random.randn_like(like, torch.Generator().manual_seed(0),
                               torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("block", [700, 1 << 20])  # blocks spanning images; one serial draw
def test_normal_draws_take_a_per_image_std(monkeypatch, block):
    monkeypatch.setattr(_random, "NORMAL_BLOCK", block)
    like = torch.empty(3, 4, 30, 25)  # 3000 per image: blocks of 700 straddle images
    std = torch.tensor([0.5, 2.0, 0.1])
    for fmt in (torch.contiguous_format, torch.channels_last):
        a = _random.randn_like(like, torch.Generator().manual_seed(0), fmt, std=std)
        b = _random.randn_like(like, torch.Generator().manual_seed(0), fmt, std=std)
        assert torch.equal(a, b)
        assert a.is_contiguous(memory_format=fmt)
        got = a.flatten(1).std(dim=1)
        np.testing.assert_allclose(got.numpy(), std.numpy(), rtol=0.06)


@pytest.mark.parametrize("channels_last", [False, True])
def test_in_place_steps_of_a_chain_equal_the_steps_one_by_one(channels_last):
    # Blur and star masks overwrite the chain's own intermediates in place, but
    # never the caller's batch: the chain must equal the steps called one by one
    # (which always return new tensors), and leave its input untouched.
    batch = _batch(n=4, c=5)
    data = batch.data + 1.0  # non-zero under the mask: a fill would show
    if channels_last:
        data = data.contiguous(memory_format=torch.channels_last)
    batch = batch.replace(data=data)
    before = {k: v.clone() for k, v in batch.tensors().items()}
    noise, blur, stars = MultiplicativeNoise(sn=(2, 5)), GaussianBlur(sigma=1.0), StarMask()
    # noise first (new tensors), or blur / star masks straight on the input
    for steps in ([noise, blur, stars, blur], [blur, stars], [stars, blur]):
        chained = Compose(steps=[(s, 1.0) for s in steps])(batch, seed=5)
        gen = torch.Generator().manual_seed(5)
        manual = batch
        for step in steps:
            manual = step(manual, generator=gen)
        for name in ("data", "mask", "uncertainty"):
            torch.testing.assert_close(getattr(chained, name), getattr(manual, name),
                                       rtol=0, atol=0)
        for name, value in before.items():
            assert torch.equal(getattr(batch, name), value), name
