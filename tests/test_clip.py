"""Cube <-> image alignment: the CLIP loss, paired surveys and mocks, the two-tower encoder."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData

torch = pytest.importorskip("torch")

from astro_cl.data.batch import TensorBatch  # noqa: E402
from astro_cl.data.record import GalaxyRecord  # noqa: E402
from astro_cl.exceptions import SurveyError, ValidationError  # noqa: E402
from astro_cl.models.clip import CLIPEncoder, PairedSource  # noqa: E402
from astro_cl.models.losses import clip_loss, nt_xent  # noqa: E402
from astro_cl.surveys.memory import InMemorySurvey  # noqa: E402
from astro_cl.surveys.paired import PairedSurvey, SurveySubset  # noqa: E402
from astro_cl.tasks.alignment import retrieval_accuracy  # noqa: E402
from astro_cl.training.data import InMemorySource  # noqa: E402

TINY = {"width": 0.0625, "hidden": (16,), "embedding_dim": 8, "projection_dim": 4,
        "dropout": 0.0}


# -- the loss ----------------------------------------------------------------------------
def test_clip_loss_is_symmetric_in_the_modalities():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    for scale in (1.0, torch.tensor(14.3)):
        torch.testing.assert_close(clip_loss(a, b, scale), clip_loss(b, a, scale))
    # not trivially symmetric: each direction alone differs between a->b and b->a
    logits = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
    labels = torch.arange(7)
    rows = torch.nn.functional.cross_entropy(logits, labels)
    cols = torch.nn.functional.cross_entropy(logits.T, labels)
    assert not torch.allclose(rows, cols)
    torch.testing.assert_close(clip_loss(a, b, 1.0), 0.5 * (rows + cols))


def test_clip_loss_matches_nt_xent_at_a_fixed_temperature_and_keeps_the_scale_gradient():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    torch.testing.assert_close(clip_loss(a, b, 1 / 0.2), nt_xent(a, b, 0.2, negatives="cross"))
    log_scale = torch.tensor(1.0, requires_grad=True)
    clip_loss(a, b, log_scale.exp()).backward()
    assert log_scale.grad is not None and log_scale.grad != 0


@pytest.mark.parametrize(("a", "b", "scale"), [
    (torch.zeros(3, 2), torch.zeros(4, 2), 1.0),
    (torch.zeros(3), torch.zeros(3), 1.0),
    (torch.zeros(3, 2), torch.zeros(3, 2), 0.0),
])
def test_clip_loss_refuses_bad_inputs(a, b, scale):
    with pytest.raises(ValueError, match="clip_loss"):
        clip_loss(a, b, scale)


def _paired_tensors(n=24, size=16, seed=0):
    """Images (5 bands) and 'cubes' (6 channels) of the same random blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = rng.uniform(1.5, 5, n)
    colour = rng.uniform(0.2, 2, (n, 3))
    prof = np.exp(-(xx**2 + yy**2) / (2 * r[:, None, None] ** 2))[:, None]
    image = colour[:, [0, 1, 2, 1, 0]][..., None, None] * prof
    cube = np.concatenate([colour[:, :, None, None] * prof, prof**2, prof, -prof], axis=1)
    image += 0.02 * rng.normal(size=image.shape)
    cube += 0.02 * rng.normal(size=cube.shape)
    ids = [f"g{i}" for i in range(n)]

    def batch(x, order):
        x = torch.from_numpy(x[order].astype(np.float32))
        return TensorBatch(data=x, mask=torch.zeros(x.shape[0], 1, *x.shape[2:], dtype=bool),
                           ids=[ids[i] for i in order], meta={"survey": "test"})

    # the cube source lists the galaxies in another order: pairing goes by id
    return InMemorySource(batch(image, np.arange(n))), \
        InMemorySource(batch(cube, rng.permutation(n))), ids


def test_two_tower_training_lowers_the_loss_and_pairs_by_id():
    image, cube, ids = _paired_tensors()
    source = PairedSource(image, cube)
    first = source.batch(np.arange(4))
    assert first.image.ids == first.cube.ids == ids[:4]
    model = CLIPEncoder(**TINY).fit(source, trainer={"epochs": 8, "batch_size": 12,
                                                     "lr": 3e-3, "progress": False})
    losses = [row["train_loss"] for row in model.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    assert model.logit_scale() != pytest.approx(1 / 0.07)  # the temperature was learnt


def test_fixed_temperature_stays_fixed():
    image, cube, _ = _paired_tensors(n=12)
    model = CLIPEncoder(learn_temperature=False, temperature=0.1, **TINY).fit(
        PairedSource(image, cube), trainer={"epochs": 2, "batch_size": 6, "progress": False})
    assert model.logit_scale() == pytest.approx(10.0)


def test_paired_source_names_a_missing_id_and_takes_no_preprocessor():
    from astro_cl.preprocess.images import ImageScaler

    image, cube, _ = _paired_tensors(n=6)
    with pytest.raises(KeyError, match="'nope'"):
        PairedSource(image, cube, ids=["g0", "nope"])
    with pytest.raises(ValidationError, match="image_preprocessor given with a PairedSource"):
        CLIPEncoder(**TINY).fit(PairedSource(image, cube), image_preprocessor=ImageScaler())
    with pytest.raises(ValidationError, match="expected a PairedSurvey"):
        CLIPEncoder(**TINY).fit(image)


def test_embed_shapes_and_retrieval_of_both_modalities():
    image, cube, ids = _paired_tensors(n=16)
    model = CLIPEncoder(**TINY).fit(PairedSource(image, cube),
                                    trainer={"epochs": 1, "batch_size": 8, "progress": False})
    zi = model.embed(image, modality="image")
    zc = model.embed(cube, modality="cube")
    assert zi["embedding"].shape == (16, 4) and zc["embedding"].shape == (16, 4)
    assert model.embed(cube, modality="cube", projected=False)["embedding"].shape == (16, 8)
    np.testing.assert_allclose(np.linalg.norm(zi["embedding"], axis=1), 1.0, rtol=1e-5)
    assert zi.meta["modality"] == "image" and list(zi["id"]) == ids
    # the cube tower refuses images (other channel count), and unknown modalities
    with pytest.raises(ValidationError, match=r"\(cube\): the model expects 6 input channels"):
        model.embed(image, modality="cube")
    with pytest.raises(ValidationError, match="modality"):
        model.embed(image, modality="spectrum")
    # retrieval matches by id, whatever the row order of the gallery
    res = retrieval_accuracy(zi, zc, k=(1, 16))
    assert res["top16"] == 1.0 and res["chance_top1"] == pytest.approx(1 / 16)


def test_retrieval_accuracy_counts_ranks():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = np.array([[1.0, 0.1], [1.0, 0.0], [1.0, 1.0]])  # query 1's partner ranks last
    res = retrieval_accuracy(q, g, k=(1, 2))
    assert res["ranks"].tolist() == [2, 3, 1]
    assert res["top1"] == pytest.approx(1 / 3) and res["top2"] == pytest.approx(2 / 3)
    with pytest.raises(ValidationError, match="same galaxies"):
        from astropy.table import QTable

        retrieval_accuracy(QTable({"id": ["a", "b"], "embedding": q[:2]}),
                           QTable({"id": ["a", "c"], "embedding": g[:2]}))


# -- pairing surveys ---------------------------------------------------------------------------
def _record(gid, survey):
    img = NDData(np.full((2, 4, 4), float(len(gid))), unit=u.nJy, meta={"bands": ("g", "r")})
    return GalaxyRecord(id=gid, survey=survey, images=img)


def _survey(ids, name):
    return InMemorySurvey(records=[_record(i, name) for i in ids])


def test_paired_survey_matches_records_by_id():
    a = _survey(["x", "y", "z"], "one")
    b = _survey(["z", "x", "y"], "two")
    paired = PairedSurvey(a, b)
    assert paired.ids == ["x", "y", "z"] and len(paired) == 3
    for first, second in paired:
        assert first.id == second.id
        assert (first.survey, second.survey) == ("one", "two")
    assert paired["y"][1].id == "y" and paired[2][0].id == "z"
    left, right = paired.surveys()
    assert left.ids == right.ids == ["x", "y", "z"]


def test_paired_survey_names_the_ids_missing_on_either_side():
    a = _survey(["x", "y", "only_a"], "one")
    b = _survey(["y", "x", "only_b1", "only_b2"], "two")
    with pytest.raises(SurveyError) as err:
        len(PairedSurvey(a, b))
    text = str(err.value)
    assert "'only_a'" in text and "'only_b1'" in text and "'only_b2'" in text
    assert "'in-memory' (first)" in text and "(second)" in text
    assert "on_missing='drop'" in text
    dropped = PairedSurvey(a, b, on_missing="drop")
    assert dropped.ids == ["x", "y"]
    assert dropped.missing_ == {"first": ["only_a"], "second": ["only_b1", "only_b2"]}
    wanted = r"missing from the second survey \('in-memory'\): \['only_a'\]"
    with pytest.raises(SurveyError, match=wanted):
        len(PairedSurvey(a, b, ids=["x", "only_a"]))
    with pytest.raises(SurveyError, match="no galaxy id is common"):
        len(PairedSurvey(_survey(["p"], "one"), _survey(["q"], "two"), on_missing="drop"))
    with pytest.raises(ValidationError, match="must be a Survey"):
        PairedSurvey(a, [_record("x", "two")])


def test_paired_subsets_and_split():
    paired = PairedSurvey(_survey([f"g{i}" for i in range(8)], "one"),
                          _survey([f"g{i}" for i in reversed(range(8))], "two"))
    train, test = paired.train_test_split(0.25, seed=0)
    assert len(train) == 6 and len(test) == 2 and not set(train.ids) & set(test.ids)
    sub = paired.subset(["g3", "g1"])
    assert [p[1].id for p in sub] == ["g3", "g1"]
    with pytest.raises(SurveyError, match="'g9'"):
        paired.subset(["g1", "g9"])
    with pytest.raises(SurveyError, match="'nope'"):
        _ = SurveySubset(survey=paired.first, galaxy_ids=["g1", "nope"]).catalogue
    with pytest.raises(ValidationError, match="default kind 'cube'"):
        paired.side("cube")


# -- paired mocks, and the encoder on them ---------------------------------------------------------
def test_paired_mocks_render_one_population_with_both_renderers():
    from astro_cl.surveys.mock import paired_mocks

    native = paired_mocks(n=2, seed=3, cube_size=16, image_size=20)
    images, cubes = native.first.catalogue, native.second.catalogue
    assert native.ids == ["mock000000", "mock000001"]
    for col in ("z", "Re_kpc", "type", "RA", "inclination", "log_Mass_total"):
        assert np.array_equal(np.asarray(images[col]), np.asarray(cubes[col])), col
    image, cube = native[1]
    assert image.images.data.shape == (5, 20, 20) and cube.cube.flux.shape[1:] == (16, 16)
    # the stand-alone mocks of the same seed draw other galaxies
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    alone = SDSSMockSurvey(n=2, seed=3, size=20).catalogue
    assert not np.array_equal(np.asarray(alone["z"]), np.asarray(images["z"]))
    # one grid: one galaxy state, so identical truth maps in both records
    shared = paired_mocks(n=1, seed=3, cube_size=16, grid="shared")
    image, cube = shared[0]
    assert image.images.data.shape == (5, 16, 16)
    assert set(image.maps) == set(cube.maps)
    for name in image.maps:
        np.testing.assert_array_equal(image.maps[name].data, cube.maps[name].data, err_msg=name)
    with pytest.raises(ValidationError, match="grid"):
        paired_mocks(n=1, grid="other")


@pytest.fixture(scope="module")
def fitted_on_mocks():
    from astro_cl.preprocess.cube_pca import CubePCA
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.surveys.mock import paired_mocks

    paired = paired_mocks(n=9, seed=0, cube_size=16, image_size=16, star_rate=0.0)
    train, test = paired.train_test_split(4, seed=0)
    model = CLIPEncoder(**TINY).fit(
        train, image_preprocessor=ImageScaler(),
        cube_preprocessor=CubePCA(n_components=3, fit_snr=5.0, standardize=True,
                                  max_spectra_per_galaxy=30),
        trainer={"epochs": 1, "batch_size": 4, "progress": False})
    return model, test


def test_encoder_on_paired_mocks_embeds_both_modalities_and_round_trips(fitted_on_mocks,
                                                                          tmp_path):
    import astro_cl

    model, test = fitted_on_mocks
    assert model.info_["image_channels"] == 5 and model.info_["cube_channels"] == 4
    assert model.contracts_["cube"].kind == "cube" and model.contracts_["image"].bands
    zi = model.embed(test, modality="image")
    zc = model.embed(test.side("cube"), modality="cube")
    assert zi["embedding"].shape == zc["embedding"].shape == (4, 4)
    assert list(zi["id"]) == list(zc["id"]) == test.ids
    path = tmp_path / "clip.pt"
    model.save(path)
    loaded = astro_cl.load_model(path)
    assert isinstance(loaded, CLIPEncoder)
    assert type(loaded.preprocessors_["cube"]).__name__ == "CubePCA"
    for m, table in (("image", zi), ("cube", zc)):
        again = loaded.embed(test, modality=m)
        np.testing.assert_allclose(again["embedding"], table["embedding"], atol=1e-6)
    # raw images given to the cube side break the cube contract, before any network runs
    with pytest.raises(ValidationError):
        loaded.embed(test.side("images"), modality="cube")


def test_evaluate_alignment_scores_retrieval_and_probes(fitted_on_mocks):
    from astropy.table import QTable

    from astro_cl.tasks.alignment import DEFAULT_PROPERTIES, evaluate_alignment

    model, test = fitted_on_mocks
    rng = np.random.default_rng(0)
    baseline = QTable({"id": test.ids[::-1], "embedding": rng.normal(size=(4, 3))})
    result = evaluate_alignment(model, test, baseline=baseline, k=(1, 3), cv=2, min_samples=4,
                                n_bootstrap=5)
    assert list(result.retrieval["direction"]) == ["image->cube", "cube->image"]
    assert np.all(result.retrieval["chance_top1"] == 0.25)
    assert np.all(result.retrieval["chance_top3"] == 0.75)
    assert np.all((result.retrieval["top1"] >= 0) & (result.retrieval["top1"] <= 1))
    assert sorted(set(result.regression["embedding"])) == ["baseline-image", "clip-cube",
                                                            "clip-image"]
    assert set(result.regression["property"]) == set(DEFAULT_PROPERTIES)
    assert "retrieval of 4 held-out galaxies" in result.summary()
    with pytest.raises(ValidationError, match="no column"):
        evaluate_alignment(model, test, properties=("not_a_column",))


def test_paired_mocks_written_in_the_real_formats_pair_through_the_real_readers(tmp_path):
    from astro_cl.surveys.ecalifa import ECALIFASurvey
    from astro_cl.surveys.mock import paired_mocks
    from astro_cl.surveys.sdss import SDSSSurvey

    mocks = paired_mocks(n=2, seed=5, cube_size=16, image_size=16, star_rate=0.0)
    mocks.first.write(tmp_path / "sdss", progress=False)
    mocks.second.write(tmp_path / "ecalifa", progress=False)
    real = PairedSurvey(SDSSSurvey(path=tmp_path / "sdss"),
                        ECALIFASurvey(path=tmp_path / "ecalifa"))
    assert real.ids == mocks.ids
    image, cube = real[mocks.ids[1]]
    assert image.id == cube.id == mocks.ids[1]
    assert real.side("images").default_kind == "images" and real.side("cube").name == "subset"
    np.testing.assert_allclose(image.images.data, mocks[1][0].images.data, rtol=1e-6)


def test_cli_embed_picks_the_tower_from_the_survey(fitted_on_mocks, tmp_path, capsys):
    """`astro-cl embed` of a CLIP model: cubes go through the cube tower, images through the
    image tower; options the model does not take are refused, not ignored."""
    from astropy.table import QTable

    from astro_cl.cli import main

    model, _ = fitted_on_mocks
    path = tmp_path / "clip.pt"
    model.save(path)
    assert main(["embed", str(path), "ecalifa-mock", "--set", "n=3", "--set", "size=16",
                 "--out", str(tmp_path / "cubes")]) == 0
    cubes = QTable.read(tmp_path / "cubes.ecsv")
    assert cubes.meta["modality"] == "cube" and len(cubes) == 3
    assert main(["embed", str(path), "sdss-mock", "--set", "n=2", "--set", "size=16",
                 "--modality", "image", "--out", str(tmp_path / "images")]) == 0
    assert QTable.read(tmp_path / "images.ecsv").meta["modality"] == "image"
    capsys.readouterr()
    assert main(["embed", str(path), "ecalifa-mock", "--set", "n=3", "--set", "size=16",
                 "--n-views", "3", "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert "--n-views 3: the 'clip' model's embed takes no n_views" in err
