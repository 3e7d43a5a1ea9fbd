"""Resolved embeddings: pixel correspondence of views, the dense encoder, region search."""

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData
from astropy.wcs import WCS

torch = pytest.importorskip("torch")

from astro_cl.augment.base import Augmenter, make_generator  # noqa: E402
from astro_cl.augment.compose import Compose  # noqa: E402
from astro_cl.augment.correspondence import augment_with_positions  # noqa: E402
from astro_cl.augment.geometric import (  # noqa: E402
    RandomFlip,
    RandomRot90,
    RandomRotation,
    RandomTranslation,
)
from astro_cl.augment.rebin import Rebin  # noqa: E402
from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.data.record import GalaxyRecord  # noqa: E402
from astro_cl.exceptions import ValidationError  # noqa: E402
from astro_cl.models.dense import DenseContrastive  # noqa: E402
from astro_cl.surveys.memory import InMemorySurvey  # noqa: E402
from astro_cl.tasks.region_search import RegionSearch, region_precision, truth_regimes  # noqa: E402
from astro_cl.tasks.similarity import faiss_available  # noqa: E402

TRAIN = {"epochs": 1, "batch_size": 8, "progress": False, "lr": 3e-3}


def _batch(n=4, c=3, size=12, seed=0):
    rng = np.random.default_rng(seed)
    return TensorBatch.from_arrays(rng.normal(size=(n, c, size, size)).astype(np.float32),
                                   ids=[f"g{i}" for i in range(n)])


def _at(data, pos):
    """Input values at the (rounded) positions: ``data`` (B, C, H, W), ``pos`` (B, 2, H, W)."""
    b, c, h, w = data.shape
    x = pos[:, 0].round().long().clamp(0, w - 1)
    y = pos[:, 1].round().long().clamp(0, h - 1)
    flat = (y * w + x).view(b, 1, -1).expand(b, c, -1)
    return torch.gather(data.reshape(b, c, -1), 2, flat).view(b, c, h, w)


# -- correspondence ----------------------------------------------------------------
def test_positions_follow_a_quarter_turn():
    batch = _batch(2, size=9)
    views, pos = augment_with_positions(RandomRot90(k=1), batch, make_generator(0))
    n = 9
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")  # row, column
    # torch.rot90(k=1): out[i, j] = in[j, n - 1 - i]
    torch.testing.assert_close(pos[:, 0], (n - 1 - i).float().expand(2, n, n))
    torch.testing.assert_close(pos[:, 1], j.float().expand(2, n, n))
    torch.testing.assert_close(views.data, _at(batch.data, pos))
    assert views.targets is None and views.target_mask is None


def test_positions_follow_flips_and_shifts_of_the_pixels():
    batch = _batch(8, size=10)
    chain = Compose(steps=[RandomFlip(), RandomTranslation(max_shift=3)], fuse=False)
    views, pos = augment_with_positions(chain, batch, make_generator(3))
    inside = torch.isfinite(pos).all(dim=1)
    assert 0 < int(inside.sum()) < inside.numel()  # some pixels were shifted in from outside
    # where a pixel came from inside the frame it carries that input pixel's value ...
    moved = _at(batch.data, torch.nan_to_num(pos))
    assert torch.equal(views.data.permute(1, 0, 2, 3)[:, inside],
                       moved.permute(1, 0, 2, 3)[:, inside])
    # ... and pixels from outside are exactly the masked ones
    assert torch.equal(~inside, views.mask.any(dim=1))
    # flips and integer shifts: positions are whole pixels
    assert torch.equal(pos[inside.unsqueeze(1).expand_as(pos)].round(),
                       pos[inside.unsqueeze(1).expand_as(pos)])


@pytest.mark.parametrize("fuse", [True, False])
def test_positions_follow_an_arbitrary_rotation(fuse):
    n, angle = 16, 30.0
    batch = _batch(2, size=n)
    chain = Compose(steps=[RandomRotation(angle=(angle, angle), flip=False, mode="bicubic"),
                           RandomRot90(k=0)], fuse=fuse)
    _, pos = augment_with_positions(chain, batch, make_generator(0))
    c = (n - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64),
                            torch.arange(n, dtype=torch.float64), indexing="ij")
    phi = np.deg2rad(angle)
    # output -> input: the inverse rotation about the centre
    x_src = c + np.cos(phi) * (xx - c) + np.sin(phi) * (yy - c)
    y_src = c - np.sin(phi) * (xx - c) + np.cos(phi) * (yy - c)
    well_inside = (x_src > 0.5) & (x_src < n - 1.5) & (y_src > 0.5) & (y_src < n - 1.5)
    outside = (x_src < -1) | (x_src > n) | (y_src < -1) | (y_src > n)
    for b in range(2):
        got = pos[b]
        assert torch.isfinite(got[:, well_inside]).all()
        np.testing.assert_allclose(got[0][well_inside].numpy(), x_src[well_inside].numpy(),
                                   atol=1e-3)
        np.testing.assert_allclose(got[1][well_inside].numpy(), y_src[well_inside].numpy(),
                                   atol=1e-3)
        assert torch.isnan(got[0][outside]).all()


def test_positions_through_a_rebinning_are_block_centres():
    batch = _batch(1, size=8)
    _, pos = augment_with_positions(Rebin(factor=2), batch, make_generator(0))
    # 8 px -> 4 blocks of 2, centred in the 8 px frame (rows/columns 2-5)
    inner = pos[0, :, 2:6, 2:6]
    centres = torch.tensor([0.5, 2.5, 4.5, 6.5])
    torch.testing.assert_close(inner[0], centres.view(1, 4).expand(4, 4))
    torch.testing.assert_close(inner[1], centres.view(4, 1).expand(4, 4))
    assert torch.isnan(pos[0, 0, :2]).all() and torch.isnan(pos[0, 0, :, 6:]).all()


def test_own_targets_are_kept_beside_the_positions():
    batch = _batch(3, size=8)
    targets = torch.arange(3 * 8 * 8, dtype=torch.float32).view(3, 1, 8, 8)
    batch = batch.replace(targets=targets, target_mask=torch.zeros(3, 1, 8, 8, dtype=torch.bool))
    views, pos = augment_with_positions(RandomRot90(k=2), batch, make_generator(0))
    assert views.targets.shape == (3, 1, 8, 8) and views.target_mask.shape == (3, 1, 8, 8)
    torch.testing.assert_close(views.targets, torch.rot90(targets, 2, dims=(-2, -1)))
    assert pos.shape == (3, 2, 8, 8)


class _DropTargets(Augmenter):
    name = "test-drop-targets"

    def transform(self, batch, generator):
        return batch.replace(targets=None, target_mask=None)


def test_an_augmenter_that_drops_the_targets_is_refused():
    with pytest.raises(ValidationError, match="must move 'targets'"):
        augment_with_positions(_DropTargets(), _batch(), make_generator(0))


# -- the dense encoder -----------------------------------------------------------------
def _two_region_images(n=8, size=16, seed=0):
    """Galaxies with two kinds of regions (a disc and a clump of another colour)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        cx, cy = rng.uniform(4, size - 4, 2)
        disc = np.exp(-((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / 30)
        clump = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4)
        out[i] = (np.array([1.0, 0.5, 0.2])[:, None, None] * disc
                  + np.array([0.1, 0.3, 1.5])[:, None, None] * clump)
    return out + 0.02 * rng.normal(size=out.shape).astype(np.float32)


def _geometric():
    return Compose(steps=[RandomRot90(), RandomFlip(), RandomTranslation(max_shift=2)])


def _small(**kw):
    params = {"width": 1 / 8, "channels": (32, 64), "bottom": 64, "embedding_dim": 8,
              "projection_head": (16,), "n_pixels": 32, "augmenter": _geometric()}
    params.update(kw)
    return DenseContrastive(**params)


def test_dense_loss_is_finite_and_falls():
    data = _two_region_images()
    batch = TensorBatch.from_arrays(data, ids=[f"g{i}" for i in range(len(data))])
    losses = []
    _small().fit(batch, trainer={"epochs": 12, "batch_size": 8, "progress": False,
                                 "lr": 3e-3, "seed": 0},
                 callbacks=[lambda tr, ev, info: losses.append(info["loss"])
                            if ev == "step_end" else None])
    assert len(losses) == 12 and np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.95 * np.mean(losses[:3])


def _loss_of(model, loss, batch, seed=0):
    torch.manual_seed(0)
    return float(loss(model, batch, make_generator(seed)).detach())


def test_dense_loss_ignores_masked_pixels():
    enc = _small(augmenter=Compose(steps=[
        RandomRotation(angle=(1, 359), flip=True, mode="bilinear"),
        RandomTranslation(max_shift=2)]))
    data = _two_region_images(4)
    mask = np.zeros((4, 1, 16, 16), bool)
    mask[:, :, 3:7, 2:9] = True
    batch = TensorBatch.from_arrays(data, mask)
    info = {"in_channels": 3}
    torch.manual_seed(1)
    model = enc.build_module(info).train()
    loss = enc.build_loss(info)
    base = _loss_of(model, loss, batch)
    assert np.isfinite(base)
    garbage = data.copy()
    garbage[:, :, 3:7, 2:9] = 1e4 * np.random.default_rng(5).normal(size=(4, 3, 4, 7))
    assert _loss_of(model, loss, TensorBatch.from_arrays(garbage, mask)) == pytest.approx(
        base, rel=1e-6)
    # the same change on unmasked pixels does change it
    changed = data.copy()
    changed[:, :, 9:13, 2:9] = garbage[:, :, 3:7, 2:9]
    assert _loss_of(model, loss, TensorBatch.from_arrays(changed, mask)) != pytest.approx(
        base, rel=1e-3)


def test_matches_avoid_masked_and_lost_pixels():
    from astro_cl.models.dense_net import match_views

    batch = _batch(4, size=12)
    _, pos = augment_with_positions(RandomTranslation(max_shift=3), batch, make_generator(2))
    ident = augment_with_positions(None, batch, make_generator(0))[1]
    valid1 = torch.ones(4, 12, 12, dtype=torch.bool)
    valid1[:, :, :5] = False
    valid2 = torch.ones(4, 12, 12, dtype=torch.bool)
    valid2[:, 8:] = False
    idx1, idx2, galaxy, src = match_views(ident, pos, valid1, valid2, n_pixels=200,
                                          match_radius=0.5, generator=make_generator(1))
    assert len(idx1) > 10
    assert valid1.reshape(-1)[idx1].all() and valid2.reshape(-1)[idx2].all()
    # each pair shows the same input pixel, in the same galaxy
    flat1 = ident.permute(0, 2, 3, 1).reshape(-1, 2)
    flat2 = pos.permute(0, 2, 3, 1).reshape(-1, 2)
    torch.testing.assert_close(flat1[idx1], flat2[idx2])
    torch.testing.assert_close(src, flat1[idx1])
    assert torch.equal(idx1 // 144, galaxy) and torch.equal(idx2 // 144, galaxy)


def _wcs(size):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [size / 2, size / 2]
    w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    w.array_shape = (size, size)
    return w


def _survey(n=6, size=16):
    data = _two_region_images(n, size)
    recs = []
    for i in range(n):
        mask = np.zeros((3, size, size), bool)
        mask[:, :2, :] = True  # a masked strip, as outside an IFU field
        recs.append(GalaxyRecord(
            id=f"g{i}", images=NDData(data[i], mask=mask, unit=u.nanomaggy, wcs=_wcs(size),
                                      meta={"bands": ("a", "b", "c")}),
            maps={"clumpy": NDData(data[i, 2] > data[i, 0], unit=u.dimensionless_unscaled)}))
    return InMemorySurvey(records=recs), data


@pytest.fixture(scope="module")
def fitted():
    survey, data = _survey()
    enc = _small().fit(survey, trainer={**TRAIN, "epochs": 3})
    return enc, survey, data


def test_embedding_cubes_have_shape_wcs_and_mask(fitted):
    enc, survey, _ = fitted
    cubes = enc.embed_maps(survey)
    assert len(cubes) == len(survey)
    cube = cubes[1]
    assert cube.data.shape == (8, 16, 16) and cube.data.dtype == np.float32
    assert cube.meta["id"] == "g1" and cube.meta["model"] == "dense-contrastive"
    np.testing.assert_allclose(np.linalg.norm(cube.data, axis=0), 1.0, rtol=1e-5)
    assert cube.mask.shape == (16, 16) and cube.mask[:2].all() and not cube.mask[2:].any()
    assert cube.wcs.wcs.crval[0] == pytest.approx(150.0)
    assert cube.wcs.pixel_to_world(3, 4).separation(
        survey[1].images.wcs.pixel_to_world(3, 4)).arcsec < 1e-6
    assert enc.transform(survey).shape == (6, 8, 16, 16)
    table = enc.embed(survey)
    assert table["embedding"].shape == (6, 8)
    with pytest.raises(ValidationError, match="wcs has 2 entries"):
        enc.embed_maps(survey, wcs=[None, None])


def test_save_and_load_model_round_trip(fitted, tmp_path):
    import astro_cl

    enc, survey, _ = fitted
    path = tmp_path / "dense.pt"
    enc.save(path)
    loaded = astro_cl.load_model(path)
    assert isinstance(loaded, DenseContrastive)
    assert loaded.get_params()["n_pixels"] == enc.n_pixels
    np.testing.assert_allclose(loaded.transform(survey), enc.transform(survey), atol=1e-5)


BACKENDS = [("numpy", 10**9)]
if faiss_available():
    BACKENDS += [("faiss", 10**9), ("faiss", 1)]  # exact, and HNSW from one spaxel on


@pytest.mark.parametrize(("backend", "exact_below"), BACKENDS)
def test_region_search_finds_the_query_first(fitted, backend, exact_below):
    enc, survey, _ = fitted
    cubes = enc.embed_maps(survey)
    search = RegionSearch(backend=backend, exact_below=exact_below, n_neighbors=5).fit(cubes)
    assert search.index_kind_ == ("hnsw" if exact_below == 1 else "exact")
    assert int(search.result()["n_spaxels"][0]) == 6 * 14 * 16  # masked rows left out
    hits = search.query("g2", 7, 9)
    assert list(hits.colnames) == ["rank", "galaxy", "x", "y", "ra", "dec", "similarity"]
    assert len(hits) == 5
    assert (hits["galaxy"][0], hits["x"][0], hits["y"][0]) == ("g2", 7, 9)
    assert hits["similarity"][0] == pytest.approx(1.0, abs=1e-5)
    assert len({(g, x, y) for g, x, y in zip(hits["galaxy"], hits["x"], hits["y"],
                                              strict=True)}) == 5
    assert np.all(np.diff(hits["similarity"]) <= 1e-6)
    sky = cubes[2].wcs.pixel_to_world(7, 9)
    assert hits["ra"][0].to_value(u.deg) == pytest.approx(sky.ra.deg)
    by_sky = search.query("g2", coord=sky)
    assert list(by_sky["galaxy"]) == list(hits["galaxy"])
    others = search.query("g2", 7, 9, exclude_galaxy=True)
    assert len(others) == 5 and "g2" not in set(others["galaxy"])
    with pytest.raises(ValidationError, match="masked"):
        search.query("g2", 7, 0)
    fig = search.plot_hits(hits)
    assert len(fig.axes) >= 6


def test_numpy_and_faiss_give_the_same_hits(fitted):
    if not faiss_available():
        pytest.skip("faiss is not installed")
    enc, survey, _ = fitted
    cubes = enc.embed_maps(survey)
    a = RegionSearch(backend="numpy").fit(cubes).query("g0", 5, 5, k=8)
    b = RegionSearch(backend="faiss").fit(cubes).query("g0", 5, 5, k=8)
    np.testing.assert_allclose(a["similarity"], b["similarity"], atol=1e-5)


def test_region_precision_against_chance():
    # regime A spaxels point one way, the others another: a perfect search
    rng = np.random.default_rng(0)
    cubes, labels = [], {}
    for g in range(5):
        lab = np.zeros((6, 6), bool)
        lab[:, : 1 + g] = True
        vec = np.where(lab, 1.0, 0.0)[None] * np.array([1, 0, 0])[:, None, None] \
            + np.where(lab, 0.0, 1.0)[None] * np.array([0, 1, 0])[:, None, None]
        vec = vec + 0.01 * rng.normal(size=vec.shape)
        cubes.append(NDData(vec.astype(np.float32), meta={"id": f"g{g}"}))
        labels[f"g{g}"] = {"A": lab, "B": ~lab}
    search = RegionSearch(backend="numpy").fit(cubes)
    table = region_precision(search, labels, k=5, n_queries=20)
    row = table[list(table["regime"]).index("A")]
    assert row["chance"] == pytest.approx(sum(6 * (1 + g) for g in range(5)) / 180)
    assert row["precision"] == pytest.approx(1.0)
    assert row["lift"] == pytest.approx(1 / row["chance"])
    # with random embeddings, precision is about chance
    noise = [NDData(rng.normal(size=(3, 6, 6)).astype(np.float32), meta={"id": f"g{g}"})
             for g in range(5)]
    table = region_precision(RegionSearch(backend="numpy").fit(noise), labels, k=5,
                             n_queries=60)
    row = table[list(table["regime"]).index("A")]
    assert abs(row["precision"] - row["chance"]) < 0.2


def test_truth_regimes_thresholds():
    maps = {"g0": {"ew_ha": NDData(np.array([[-10.0, -4.0], [-1.0, np.nan]]), unit=u.AA),
                   "age_mw": NDData(np.array([[2.0, 6.0], [9.5, 12.0]]), unit=u.Gyr)}}
    lab = truth_regimes(maps)["g0"]
    assert lab["star-forming"].tolist() == [[True, False], [False, False]]
    assert lab["retired"].tolist() == [[False, False], [True, False]]
    assert lab["old"].tolist() == [[False, False], [True, True]]
    assert lab["young"].tolist() == [[True, False], [False, False]]
    with pytest.raises(ValidationError, match="needs the truth map 'nii_ha'"):
        truth_regimes(maps, {"agn": ("nii_ha", ">", 0.0)})


def test_modules_do_not_import_torch():
    code = ("import sys, astro_cl.models.dense, astro_cl.tasks.region_search; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
