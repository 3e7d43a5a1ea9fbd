"""Cubes keep their spectral axis: batch meta, cube-space augmenters, per-view
preprocessing and CubePCA's wavelength-coverage check."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import StdDevUncertainty
from specutils import Spectrum

torch = pytest.importorskip("torch")

from astro_cl.augment import (  # noqa: E402
    Augmenter,
    Compose,
    PreprocessedViews,
    RandomFlip,
    RandomRotation,
    VelocityShift,
)
from astro_cl.data.batch import TensorBatch, cube_meta, without_cube_meta  # noqa: E402
from astro_cl.data.record import GalaxyRecord, ObservingMeta  # noqa: E402
from astro_cl.exceptions import SurveyError, ValidationError  # noqa: E402
from astro_cl.preprocess import CubePCA  # noqa: E402
from astro_cl.preprocess.cube_pca import WavelengthCoverageWarning  # noqa: E402
from astro_cl.surveys.memory import InMemorySurvey  # noqa: E402

FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 Angstrom)")
CALIFA = (3650.0, 7500.0)
#: MUSE's nominal range: at z = 0.02 its rest frame starts at 4657 A, so it
#: covers 70% of CubePCA's default 3739-6803 A.
MUSE = (4750.0, 9350.0)


def cube_record(gid, *, z=0.02, size=16, n_wave=700, seed=0, young=0.5, wave_range=CALIFA,
                with_z=True):
    """A small cube: an exponential disc of a two-template spectrum plus noise."""
    rng = np.random.default_rng(seed)
    wave = np.linspace(*wave_range, n_wave)
    rest = wave / (1 + z)
    old = (rest / 5500.0) ** 2 * (1 - 0.3 * np.exp(-0.5 * ((rest - 3950) / 30) ** 2))
    yng = (rest / 5500.0) ** -1.5 + 2.0 * np.exp(-0.5 * ((rest - 6563) / 4) ** 2)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    frac = np.clip(young + 0.05 * r, 0, 1)
    flux = 50.0 * np.exp(-r / 2.5)[None] * ((1 - frac)[None] * old[:, None, None]
                                            + frac[None] * yng[:, None, None])
    err = np.full(flux.shape, 0.3)
    flux = flux + err * rng.standard_normal(flux.shape)
    cube = Spectrum(flux=flux * FLUX_UNIT, spectral_axis=wave * u.AA, spectral_axis_index=0,
                    uncertainty=StdDevUncertainty(err), mask=np.zeros(flux.shape, bool))
    return GalaxyRecord(id=gid, cube=cube,
                        observing=ObservingMeta(redshift=z if with_z else None))


@pytest.fixture(scope="module")
def survey():
    recs = [cube_record(f"g{i}", z=0.01 + 0.005 * i, seed=i, young=0.1 + 0.2 * i)
            for i in range(4)]
    return InMemorySurvey(records=recs, default_kind="cube")


@pytest.fixture(scope="module")
def pca(survey):
    return CubePCA(n_components=3, fit_snr=10.0, seed=0).fit(survey)


class Collapse(Augmenter):
    """A stand-in preprocessor: the channel mean, one channel out."""

    name = "collapse"
    changes_channels = True

    def transform(self, batch, generator):
        return batch.replace(data=batch.data.mean(1, keepdim=True), mask=batch.mask[:, :1],
                             uncertainty=None, meta=without_cube_meta(batch.meta))

    def output_channels(self, in_channels):
        return 1


class ImageOnly(Augmenter):
    """An augmenter that declares it needs preprocessed images."""

    name = "image-only"
    space = "image"

    def transform(self, batch, generator):
        return batch


# -- (a) cube batches carry their spectral axis ----------------------------------------------
def test_cube_batch_carries_wavelengths_rest_frame_unit_and_redshifts(survey):
    batch = survey.to_tensors()
    wave = survey[0].cube.spectral_axis.to_value(u.AA)
    np.testing.assert_allclose(batch.meta["wavelength"], wave)
    np.testing.assert_allclose(batch.wavelength, wave)
    assert batch.meta["rest_frame"] is False
    assert u.Unit(batch.meta["flux_unit"]) == FLUX_UNIT
    assert batch.meta["redshift"] == pytest.approx([0.01, 0.015, 0.02, 0.025])
    # they follow the galaxies through selection and repetition
    picked = batch.index([3, 1]).repeat(2)
    assert picked.meta["redshift"] == pytest.approx([0.025, 0.015] * 2)
    np.testing.assert_array_equal(picked.meta["wavelength"], batch.meta["wavelength"])


def test_velocity_shift_runs_on_a_survey_cube_batch_without_configuration():
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    batch = ECALIFAMockSurvey(n=2, size=8, seed=0).to_tensors()
    assert batch.data.shape[1] == 1877 and batch.meta["wavelength"].shape == (1877,)
    out = Compose(steps=[VelocityShift(velocity=300.0)], chunk_size=1)(batch, seed=0)
    assert out.data.shape == batch.data.shape
    assert out.meta["wavelength"] is batch.meta["wavelength"]
    # a 300 km/s shift reads 1 A bluer: the first channel is outside, the rest moved
    assert out.mask[:, 0].all() and not torch.equal(out.data[:, 1:], batch.data[:, 1:])


def test_stale_or_missing_spectral_axis_is_refused():
    data = np.ones((2, 3, 4, 4), np.float32)
    with pytest.raises(ValidationError, match=r"meta\['wavelength'\].*one wavelength per"):
        TensorBatch.from_arrays(data, meta={"wavelength": [4000.0, 5000.0]})
    with pytest.raises(ValidationError, match="rest_frame"):
        TensorBatch.from_arrays(data, meta={"wavelength": [4e3, 5e3, 6e3], "rest_frame": 1})
    with pytest.raises(ValidationError, match=r"cube_steps"):
        VelocityShift()(TensorBatch.from_arrays(data), seed=0)


def test_cube_meta_needs_one_grid_and_keeps_only_known_redshifts():
    a = cube_record("a", size=8, n_wave=50)
    b = cube_record("b", size=8, n_wave=50, wave_range=(3651.0, 7500.0))
    with pytest.raises(SurveyError, match="'b' has another wavelength grid"):
        cube_meta([a, b])
    no_z = cube_record("c", size=8, n_wave=50, with_z=False)
    meta = cube_meta([a, no_z])
    assert "redshift" not in meta and meta["wavelength"].shape == (50,)
    assert cube_meta([a, a])["redshift"] == [0.02, 0.02]


# -- (b) augmenters declare their space; Compose checks the order ---------------------------
def test_augmenters_declare_their_space():
    assert VelocityShift.space == "cube" and RandomRotation.space == "any"
    assert not VelocityShift.changes_channels and Collapse.changes_channels
    chain = Compose(steps=[VelocityShift(), Collapse(), RandomFlip()])
    assert chain.space == "cube" and chain.changes_channels
    assert chain.output_channels(1877) == 1
    assert Compose(steps=[RandomFlip()]).space == "any"


def test_compose_refuses_cube_steps_after_a_channel_change():
    batch = TensorBatch.from_arrays(np.ones((2, 3, 4, 4), np.float32),
                                    meta={"wavelength": [4e3, 5e3, 6e3]})
    ok = Compose(steps=[VelocityShift(velocity=100.0), Collapse(), RandomFlip()])
    assert ok(batch, seed=0).data.shape == (2, 1, 4, 4)
    with pytest.raises(ValidationError, match=r"step 1 \('velocity-shift'\) works in cube space"
                                              r".*after step 0 \('collapse'\)"):
        Compose(steps=[Collapse(), VelocityShift()])(batch, seed=0)
    with pytest.raises(ValidationError, match=r"step 0 \('image-only'\) works in image space"):
        Compose(steps=[ImageOnly(), Collapse()])(batch, seed=0)
    # nested chains count as the steps they hold
    with pytest.raises(ValidationError, match="cube space"):
        Compose(steps=[Compose(steps=[Collapse()]), Compose(steps=[VelocityShift()])])(batch)


# -- (c) per-view preprocessing ---------------------------------------------------------------
def test_preprocessed_views_without_augmentation_equal_the_cached_preprocessing(survey, pca):
    cubes = survey.to_tensors()
    expected, mask, _ = pca.transform(survey)
    views = PreprocessedViews(preprocessor=pca)(cubes, seed=0)
    np.testing.assert_array_equal(views.data.numpy(), expected)
    np.testing.assert_array_equal(views.mask.numpy(), mask)
    assert "wavelength" not in views.meta and views.meta["preprocessor"] == "cube-pca"
    assert views.meta["redshift"] == cubes.meta["redshift"]
    # a rest-frame cube of the same galaxy gives the same image
    one = cubes.index([2])
    rest = one.replace(meta={**one.meta, "wavelength": one.wavelength / 1.02,
                             "rest_frame": True})
    np.testing.assert_allclose(pca.transform_batch(rest).data.numpy(), expected[2:3],
                               rtol=1e-4, atol=1e-4)


def test_preprocessed_views_run_cube_steps_before_the_preprocessor(survey, pca):
    cubes = survey.to_tensors()
    views = PreprocessedViews(preprocessor=pca, cube_augmenter=VelocityShift(velocity=(-300, 300)),
                              image_augmenter=RandomFlip(horizontal=False, vertical=False))
    assert views.output_channels(700) == pca.n_channels
    one, two = views.two_views(cubes, seed=1)
    assert one.data.shape == (4, pca.n_channels, 16, 16)
    plain = pca.transform_batch(cubes).data
    assert not torch.allclose(one.data, plain) and not torch.allclose(one.data, two.data)
    again, _ = views.two_views(cubes, seed=1)
    assert torch.equal(again.data, one.data)
    with pytest.raises(ValidationError, match="image_augmenter: VelocityShift works in cube"):
        PreprocessedViews(preprocessor=pca, image_augmenter=VelocityShift())(cubes, seed=0)
    with pytest.raises(ValidationError, match="not a cube batch"):
        views(pca.transform_batch(cubes), seed=0)


def test_simclr_trains_on_raw_cubes_with_per_view_preprocessing(survey):
    from astro_cl.models.simclr import SimCLR

    pre = CubePCA(n_components=3, fit_snr=10.0, seed=0)
    views = PreprocessedViews(preprocessor=pre, cube_augmenter=VelocityShift(velocity=(-80, 80)),
                              image_augmenter=RandomFlip())
    enc = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4, augmenter=views)
    enc.fit(survey, preprocessor=pre, trainer={"epochs": 1, "progress": False, "seed": 0})
    assert pre.is_fitted and enc.info_["in_channels"] == pre.n_channels
    emb = enc.transform(survey)  # raw cubes go through the saved preprocessor
    assert emb.shape == (4, 4) and np.isfinite(emb).all()


def test_training_config_places_cube_steps_before_the_preprocessor():
    from astro_cl.training.config import build_run

    config = {
        "survey": {"name": "ecalifa-mock", "n": 2, "size": 16},
        "preprocess": {"name": "cube-pca", "n_components": 3, "fit_snr": 5.0},
        "augment": {"cube_steps": [{"name": "velocity-shift", "velocity": [-50, 50]}],
                    "steps": [{"name": "random-flip"}]},
        "model": {"name": "simclr"},
    }
    run = build_run(config)
    aug = run["encoder"].augmenter
    assert isinstance(aug, PreprocessedViews) and aug.preprocessor is run["preprocessor"]
    assert isinstance(aug.cube_augmenter.steps[0][0], VelocityShift)
    assert isinstance(aug.image_augmenter.steps[0][0], RandomFlip)
    wrong = {**config, "augment": {"steps": [{"name": "velocity-shift"}]}}
    with pytest.raises(ValidationError, match=r"move it to \[\[augment.cube_steps\]\]"):
        build_run(wrong)
    with pytest.raises(ValidationError, match="unknown keys"):
        build_run({**config, "augment": {"cube_step": []}})
    # without a preprocessor the cube steps simply run first
    raw = build_run({k: v for k, v in config.items() if k != "preprocess"})
    names = [type(s).__name__ for s, _ in raw["encoder"].augmenter.steps]
    assert names == ["VelocityShift", "RandomFlip"]


# -- (d) CubePCA checks the wavelength coverage ----------------------------------------------
def test_cube_pca_warns_when_the_data_cover_too_little_of_wave_range(pca):
    muse = cube_record("NGC-muse", z=0.02, wave_range=MUSE, seed=5)
    with pytest.warns(WavelengthCoverageWarning,
                      match=r"galaxy 'NGC-muse' \(z = 0.0200\): its spectrum covers 4657-9167 A "
                            r"in the rest frame, 70% of CubePCA.wave_range = 3739-6803 A"):
        data, _, _ = pca.transform([muse])
    assert np.isfinite(data).all()  # what the warning is for: the image looks fine
    strict = CubePCA(**{**pca.get_params(), "on_low_coverage": "error"})
    for name in CubePCA._state_arrays:
        setattr(strict, name, getattr(pca, name))
    with pytest.raises(ValidationError, match="'NGC-muse'.*70% of CubePCA.wave_range"):
        strict.transform_record(muse)
    # the same data pass with a range they cover
    CubePCA(n_components=3, fit_snr=10.0, wave_range=(4700.0, 6803.0)).fit([muse])


def test_cube_pca_checks_the_normalisation_window_and_its_settings(survey):
    # covers 3700-5800 A in the rest frame: 95% of this wave_range, half the window
    short = cube_record("short", z=0.0, wave_range=(3700.0, 5800.0), seed=3)
    pre = CubePCA(n_components=3, fit_snr=10.0, wave_range=(3739.0, 5900.0), min_coverage=0.9)
    with pytest.warns(WavelengthCoverageWarning, match=r"50% of CubePCA.norm_window = 5600-6000"):
        pre.fit([short, *survey])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CubePCA(n_components=3, fit_snr=10.0, wave_range=(3739.0, 5900.0),
                min_coverage=0.4).fit([short])
    with pytest.raises(ValidationError, match="on_low_coverage"):
        CubePCA(n_components=3, on_low_coverage="ignore").fit(survey)
    with pytest.raises(ValidationError, match="min_coverage"):
        CubePCA(n_components=3, min_coverage=1.5).fit(survey)
