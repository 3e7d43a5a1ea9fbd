import numpy as np
import pytest
import torch

from astro_cl.augment import (
    CropResize,
    RandomFlip,
    RandomRot90,
    RandomRotation,
    RandomTranslation,
    Rebin,
    build_augmenter,
    ecalifa_views,
    picasso_augmentations,
)
from astro_cl.augment.config import augmenter_spec
from astro_cl.data.batch import TensorBatch
from astro_cl.exceptions import UnknownComponentError, ValidationError
from astro_cl.testing import check_augmenter


def galaxy_batch(b=4, c=3, h=32, w=30, seed=0, stars=False):
    """Compact Gaussian 'galaxies' well inside the frame, with a masked patch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = (h - 1) / 2 + rng.uniform(-2, 2, b), (w - 1) / 2 + rng.uniform(-2, 2, b)
    prof = np.exp(-0.5 * (((yy - cy[:, None, None]) / 3.0) ** 2
                          + ((xx - cx[:, None, None]) / 2.0) ** 2))
    data = (prof[:, None] * rng.uniform(1, 5, (b, c, 1, 1))).astype(np.float32)
    mask = np.zeros((b, 1, h, w), bool)
    mask[:, :, 0:3, 0:3] = True
    extra = {}
    if stars:
        sm = np.zeros((b, 1, h, w), bool)
        sm[:, :, 4:7, 20:23] = True
        extra["star_mask"] = sm
    return TensorBatch.from_arrays(np.where(mask, 0, data), mask, uncertainty=0.05 + 0.1 * data,
                                   **extra)


GEOMETRIC = [RandomRotation(), RandomRotation(mode="bilinear", flip=False), RandomFlip(),
             RandomRot90(), RandomRot90(transpose=True), RandomTranslation(max_shift=4),
             CropResize(), CropResize(preserve="flux"), Rebin()]


@pytest.mark.parametrize("aug", GEOMETRIC, ids=lambda a: a.name)
def test_conformance_default_batch(aug):
    if aug.name in ("random-rotation", "random-translation"):
        pytest.skip("loses flux at the frame edges of the full-frame default batch")
    check_augmenter(aug)


@pytest.mark.parametrize("aug", GEOMETRIC, ids=lambda a: a.name)
def test_conformance_galaxy_batch(aug):
    check_augmenter(aug, galaxy_batch(stars=True))


def test_rotation_conserves_flux_of_compact_source():
    b = galaxy_batch(b=8, h=48, w=48)
    out = RandomRotation()(b, seed=2)
    np.testing.assert_allclose(out.data.sum((2, 3)), b.data.sum((2, 3)), rtol=0.02)
    # positions: the centroid stays at the centre (rotation about the centre)
    yy = torch.arange(48.0).view(1, 1, 48, 1)
    cy_in = (b.data * yy).sum((2, 3)) / b.data.sum((2, 3))
    cy_out = (out.data * yy).sum((2, 3)) / out.data.sum((2, 3))
    assert torch.all((cy_out - 23.5).abs() <= (cy_in - 23.5).abs().max() * 1.5 + 0.5)


def test_rotation_by_90_matches_rot90():
    b = galaxy_batch(b=2, h=24, w=24)
    out = RandomRotation(angle=90.0, flip=False, mode="bilinear")(b, seed=0)
    # counter-clockwise as displayed with origin="lower" (row 0 at the bottom)
    ref = torch.rot90(b.data, -1, dims=(-2, -1))
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    torch.testing.assert_close(out.data[inner], ref[inner], atol=1e-4, rtol=1e-4)
    # the masked corner moved with its pixels
    assert torch.equal(out.mask[:, :, 1:-1, 1:-1],
                       torch.rot90(b.mask, -1, dims=(-2, -1))[:, :, 1:-1, 1:-1])


def test_rotation_masks_outside_frame():
    b = galaxy_batch(b=1, h=32, w=32)
    out = RandomRotation(angle=45.0, flip=False)(b, seed=0)
    assert out.mask[0, 0, 31, 31] and out.mask[0, 0, 0, 31]  # corners come from outside
    assert (out.data[out.mask.expand_as(out.data)] == 0).all()


def test_translation_is_exact_shift():
    b = galaxy_batch(b=6)
    out = RandomTranslation(max_shift=5)(b, seed=3)
    for i in range(6):
        d = out.data[i, 0]
        # recover the shift from the peak position and compare pixel values
        p_in = np.unravel_index(int(b.data[i, 0].argmax()), d.shape)
        p_out = np.unravel_index(int(d.argmax()), d.shape)
        dy, dx = p_out[0] - p_in[0], p_out[1] - p_in[1]
        assert abs(dy) <= 5 and abs(dx) <= 5
        shifted = torch.roll(b.data[i, 0], (dy, dx), dims=(0, 1))
        inner = (slice(6, -6), slice(6, -6))
        torch.testing.assert_close(d[inner], shifted[inner])


def test_rot90_non_square_keeps_shape():
    b = galaxy_batch(h=20, w=16)
    out = RandomRot90(k=1)(b)
    assert out.data.shape == b.data.shape
    # the pad columns/rows are masked
    assert out.mask[:, 0, :2, :].all()


def test_crop_resize_zooms():
    b = galaxy_batch(b=4, h=32, w=32)
    out = CropResize(scale=(0.25, 0.25), ratio=(1, 1))(b, seed=0)
    # a 2x zoom: the galaxy covers more pixels at the same surface brightness
    assert (out.data > 0.5).sum() > (b.data > 0.5).sum()
    flux = CropResize(scale=(0.25, 0.25), ratio=(1, 1), preserve="flux")(b, seed=0)
    torch.testing.assert_close(flux.data, out.data * 0.25)


def test_invalid_parameters():
    b = galaxy_batch()
    with pytest.raises(ValidationError, match="mode"):
        RandomRotation(mode="lanczos")(b)
    with pytest.raises(ValidationError, match="angle"):
        RandomRotation(angle=(10, 5))(b)
    with pytest.raises(ValidationError, match="max_shift"):
        RandomTranslation(max_shift=-1)(b)
    with pytest.raises(ValidationError, match="scale"):
        CropResize(scale=(0, 2))(b)


def test_build_augmenter_from_list_and_toml(tmp_path):
    spec = [{"name": "random-rotation", "angle": [10, 20]},
            {"name": "gaussian-blur", "p": 0.5, "sigma": 1.0}]
    chain = build_augmenter(spec)
    assert [(type(a).__name__, p) for a, p in chain.steps] == [("RandomRotation", 1.0),
                                                              ("GaussianBlur", 0.5)]
    toml = tmp_path / "aug.toml"
    toml.write_text('[[augment.steps]]\nname = "random-flip"\n\n'
                    '[[augment.steps]]\nname = "rebin"\np = 0.3\nfactor = [1, 3]\n')
    chain2 = build_augmenter(toml)
    assert chain2.steps[1][0].factor == [1, 3] and chain2.steps[1][1] == 0.3
    # a spec round-trips
    again = build_augmenter(augmenter_spec(chain))
    assert augmenter_spec(again) == augmenter_spec(chain)
    out = chain2(galaxy_batch(), seed=1)
    assert out.data.shape == (4, 3, 32, 30)
    with pytest.raises(ValidationError, match="unknown parameters"):
        build_augmenter([{"name": "rebin", "factr": 2}])
    with pytest.raises(ValidationError, match="p must be"):
        build_augmenter([{"name": "rebin", "p": 2}])
    with pytest.raises(UnknownComponentError):
        build_augmenter([{"name": "no-such-augmenter"}])
    (tmp_path / "bad.toml").write_text("[[augment.steps]\n")
    with pytest.raises(ValidationError, match="TOML"):
        build_augmenter(tmp_path / "bad.toml")


def test_presets():
    b = galaxy_batch(b=6, c=30, h=48, w=46, stars=True)
    v1, v2 = ecalifa_views().two_views(b, seed=0)
    assert v1.data.shape == b.data.shape and not torch.equal(v1.data, v2.data)
    w1, w2 = ecalifa_views().two_views(b, seed=0)
    assert torch.equal(v1.data, w1.data) and torch.equal(v2.mask, w2.mask)
    p = picasso_augmentations()
    sq = galaxy_batch(h=16, w=16)
    sq = sq.replace(targets=sq.data.clone())
    out = p(sq, seed=0)
    # images and targets get the same symmetry
    torch.testing.assert_close(out.data, out.targets)
