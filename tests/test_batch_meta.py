"""Per-galaxy metadata (``PER_IMAGE_META``) through indexing, chunking, repeats and chains."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from astro_cl.augment.compose import Compose  # noqa: E402
from astro_cl.augment.photometric import PSFDegradation  # noqa: E402
from astro_cl.data.batch import PER_IMAGE_META, TensorBatch, per_image_meta  # noqa: E402
from astro_cl.exceptions import ValidationError  # noqa: E402


def _batch(n=5, c=3, size=12, **meta):
    data = np.arange(n * c * size * size, dtype=np.float32).reshape(n, c, size, size) + 1
    return TensorBatch.from_arrays(data, np.zeros((n, 1, size, size), bool),
                                   ids=[f"g{i}" for i in range(n)], meta=meta)


def test_index_chunk_and_repeat_select_per_galaxy_values():
    psf = [1.0, 1.1, 1.2, 1.3, 1.4]
    batch = _batch(psf_fwhm=psf, redshift=0.02, bands="ugriz")
    assert batch.index([4, 0]).meta == {"psf_fwhm": [1.4, 1.0], "redshift": 0.02,
                                        "bands": "ugriz"}
    assert batch.chunk(1, 3).meta["psf_fwhm"] == [1.1, 1.2]
    twice = batch.repeat(2)
    assert len(twice) == 10
    assert twice.ids == batch.ids * 2
    assert twice.meta["psf_fwhm"] == psf * 2
    assert twice.meta["redshift"] == 0.02
    assert torch.equal(twice.data[5:], batch.data)
    assert batch.repeat(1) is batch


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_repeat_rejects_bad_counts(n):
    with pytest.raises(ValidationError, match="repeat"):
        _batch().repeat(n)


def test_per_galaxy_value_of_wrong_length_is_an_error():
    with pytest.raises(ValidationError, match="meta.*5 entries"):
        _batch(psf_fwhm=[1.0, 2.0]).index([0])
    assert per_image_meta(1.5, 5) is None
    assert set(PER_IMAGE_META) == {"psf_fwhm", "redshift"}


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_step_with_probability_keeps_every_galaxys_psf(chunk_size):
    # PSFDegradation updates meta["psf_fwhm"] of the galaxies it touches; with
    # p < 1 and in chunks, the others must keep their own value
    psf = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    batch = _batch(n=6, psf_fwhm=psf)
    chain = Compose(steps=[(PSFDegradation(target_fwhm=(4.0, 5.0)), 0.5)],
                    chunk_size=chunk_size)
    out = chain(batch, seed=1)
    new = np.asarray(out.meta["psf_fwhm"])
    assert new.shape == (6,)
    changed = ~torch.isclose(out.data, batch.data).all(dim=(1, 2, 3)).numpy()
    assert 0 < changed.sum() < 6, "the seed should pick some galaxies and not others"
    assert np.all((new[changed] >= 4.0) & (new[changed] <= 5.0))
    np.testing.assert_array_equal(new[~changed], np.asarray(psf)[~changed])
    # a second degradation starts from the updated FWHM: no error, no change
    # for galaxies already worse than its target
    again = Compose(steps=[(PSFDegradation(target_fwhm=1.0), 1.0)], chunk_size=chunk_size)
    assert torch.equal(again(out, seed=2).data, out.data)


def test_two_views_are_independent_and_seeded():
    from astro_cl.augment.geometric import RandomRotation

    batch = _batch(n=4)
    chain = Compose(steps=[(RandomRotation(angle=(10.0, 350.0)), 1.0)])
    v1, v2 = chain.two_views(batch, seed=0)
    w1, w2 = chain.two_views(batch, seed=0)
    assert v1.data.shape == v2.data.shape == batch.data.shape
    assert v1.ids == v2.ids == batch.ids
    assert torch.equal(v1.data, w1.data) and torch.equal(v2.data, w2.data)
    for i in range(4):
        assert not torch.allclose(v1.data[i], v2.data[i])
