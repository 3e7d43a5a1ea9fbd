"""Every built-in component of every kind passes its conformance check.

One test, parametrised over the registry (as scikit-learn's
``parametrize_with_checks`` is over estimators): each registered component is
built by a cheap factory below and given to the ``astro_cl.testing.check_<kind>``
of its kind. A component registered without a factory fails, so a new built-in
cannot go unchecked. Surveys that read real survey files are skipped here,
with the name of the tests that check them on such files.
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable

from astro_cl import testing
from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.plugins.manager import build_plugin_manager
from astro_cl.plugins.registry import Registry

torch = pytest.importorskip("torch")

#: astro_cl's own components, without third-party plugins installed alongside
BUILTINS = [info for kind in ("survey", "preprocessor", "augmenter", "encoder", "task")
            for info in Registry(build_plugin_manager(autoload=False)).components(kind).values()]

FACTORIES = {}


def factory(kind, name):
    """Register ``f(tmp_path) -> (component, args, kwargs)`` of the check, or a skip reason."""
    def decorate(f):
        FACTORIES[kind, name] = f
        return f
    return decorate


def _skip(reason):
    return lambda tmp_path: reason


GRI = {"bands": ("g", "r", "i")}


def _blobs(n=4, c=3, size=16, seed=0):
    """Compact Gaussian sources well inside the frame, slightly noisy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = rng.uniform(1.5, 3.0, n)
    amp = rng.uniform(0.5, 2.0, (n, c))
    img = amp[:, :, None, None] * np.exp(-(xx**2 + yy**2) / (2 * r[:, None, None, None] ** 2))
    return (img + 0.01 * rng.normal(size=img.shape)).astype(np.float32)


# -- surveys -----------------------------------------------------------------
for _name, _tests in (("ecalifa", "tests/test_survey_ecalifa.py"),
                      ("manga", "tests/test_survey_manga.py"),
                      ("pipe3d", "tests/test_survey_pipe3d.py")):
    factory("survey", _name)(_skip(f"reads {_name} survey files; check_survey runs on real "
                                   f"files in {_tests}"))


@factory("survey", "in-memory")
def _in_memory(tmp_path):
    from astro_cl.surveys.memory import InMemorySurvey

    records = [GalaxyRecord(id=f"g{i}", images=NDData(image, unit=u.nanomaggy, meta=GRI),
                            observing=ObservingMeta(redshift=0.02))
               for i, image in enumerate(_blobs(3))]
    return InMemorySurvey(records=records), (), {}


@factory("survey", "ecalifa-mock")
def _ecalifa_mock(tmp_path):
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    return ECALIFAMockSurvey(n=2, seed=0, size=12), (), {"n_records": 2}


@factory("survey", "sdss-mock")
def _sdss_mock(tmp_path):
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    return SDSSMockSurvey(n=3, seed=0, size=16), (), {}


@factory("survey", "sdss")
def _sdss(tmp_path):
    from astro_cl.surveys.sdss import SDSSSurvey

    np.save(tmp_path / "tiny_images.npy", _blobs(3, 5, 8))
    return SDSSSurvey(path=tmp_path / "tiny_images.npy", unit="nanomaggy"), (), {}


@factory("survey", "image-folder")
def _image_folder(tmp_path):
    from astropy.io import fits

    from astro_cl.surveys.image_folder import ImageFolderSurvey

    for i, image in enumerate(_blobs(3, 1, 8)):
        fits.PrimaryHDU(image[0], fits.Header({"BUNIT": "nanomaggy"})).writeto(
            tmp_path / f"g{i}.fits")
    return ImageFolderSurvey(path=tmp_path), (), {}


# -- preprocessors -----------------------------------------------------------
def _cube_survey(n=3, size=6, n_wave=400):
    """Tiny IFU cubes: a two-template spectrum over an exponential disc, with noise."""
    from specutils import Spectrum

    from astro_cl.surveys.memory import InMemorySurvey

    flux_unit = u.Unit("1e-16 erg / (s cm2 Angstrom)")
    wave = np.linspace(3650.0, 7500.0, n_wave)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    records = []
    for i in range(n):
        z = 0.01 + 0.005 * i
        rest = wave / (1 + z)
        old = (rest / 5500.0) ** 2
        young = (rest / 5500.0) ** -1.5 + 2.0 * np.exp(-0.5 * ((rest - 6563) / 4) ** 2)
        frac = np.clip(0.2 + 0.2 * i + 0.05 * np.hypot(yy, xx), 0, 1)
        flux = 50.0 * np.exp(-np.hypot(yy, xx) / 1.5)[None] * (
            (1 - frac)[None] * old[:, None, None] + frac[None] * young[:, None, None])
        flux = flux + 0.3 * np.random.default_rng(i).standard_normal(flux.shape)
        cube = Spectrum(flux=flux * flux_unit, spectral_axis=wave * u.AA, spectral_axis_index=0,
                        uncertainty=StdDevUncertainty(np.full(flux.shape, 0.3)))
        records.append(GalaxyRecord(id=f"g{i}", cube=cube, observing=ObservingMeta(redshift=z),
                                    properties={"z": z}))
    return InMemorySurvey(records=records, default_kind="cube")


@factory("preprocessor", "cube-pca")
def _cube_pca(tmp_path):
    from astro_cl.preprocess import CubePCA

    return CubePCA(n_components=3, max_spectra_per_galaxy=10), (_cube_survey(),), {}


@factory("preprocessor", "image-scaler")
def _image_scaler(tmp_path):
    from astro_cl.preprocess import ImageScaler

    images = np.random.default_rng(0).lognormal(size=(4, 3, 8, 8)).astype(np.float32)
    return ImageScaler(method="asinh"), (images,), {}


# -- augmenters --------------------------------------------------------------
def _galaxy_batch():
    """Compact galaxies far enough inside the frame for flux-conserving steps to keep their
    flux (shifts of up to 16 px), a masked corner, uncertainties, star masks and the
    wavelengths of the 3 channels."""
    from astro_cl.data.batch import TensorBatch

    data = np.pad(_blobs(4, 3, 16), ((0, 0), (0, 0), (20, 20), (20, 20)))
    mask = np.zeros((4, 1, 56, 56), bool)
    mask[:, :, :3, :3] = True
    stars = np.zeros((4, 1, 56, 56), bool)
    stars[:, :, 4:7, 44:47] = True
    batch = TensorBatch.from_arrays(np.where(mask, 0, data), mask, ids=list("abcd"),
                                    uncertainty=0.05 + 0.1 * data, star_mask=stars)
    return batch.replace(meta={"wavelength": np.array([4800.0, 5000.0, 5200.0])})


AUGMENTER_PARAMS = {"noise-to-depth": {"sigma": (0.5, 1.0)}}


def _augmenter(name):
    def make(tmp_path):
        from astro_cl.plugins.registry import get_augmenter

        return get_augmenter(name, **AUGMENTER_PARAMS.get(name, {})), (_galaxy_batch(),), {}
    return make


for _info in BUILTINS:
    if _info.kind == "augmenter" and _info.name != "compose":
        factory("augmenter", _info.name)(_augmenter(_info.name))


def _pca_space(name):
    """The pca-space steps read a fitted CubePCA: one of 2 components + log L, 3 channels."""
    def make(tmp_path):
        from astro_cl.plugins.registry import get_augmenter
        from astro_cl.preprocess import CubePCA

        pca = CubePCA(n_components=2, max_spectra_per_galaxy=10, standardize=True)
        pca.fit(_cube_survey())
        return get_augmenter(name, preprocessor=pca), (_galaxy_batch(),), {}
    return make


for _name in ("pca-space-noise", "pca-space-rebin"):
    factory("augmenter", _name)(_pca_space(_name))


@factory("augmenter", "compose")
def _compose(tmp_path):
    from astro_cl.augment import Compose, GaussianBlur, RandomFlip, RandomRot90

    chain = Compose(steps=[RandomRot90(), RandomFlip(), (GaussianBlur(), 0.5)])
    return chain, (_galaxy_batch(),), {}


# -- encoders ----------------------------------------------------------------
@factory("encoder", "simclr")
def _simclr(tmp_path):
    from astro_cl.augment import RandomFlip
    from astro_cl.data.batch import TensorBatch
    from astro_cl.models.simclr import SimCLR

    encoder = SimCLR(width=1 / 16, hidden=(8,), embedding_dim=4, augmenter=RandomFlip())
    return encoder, (TensorBatch.from_arrays(_blobs(8, 2, 16)),), {
        "expected_rows": 8,
        "fit_params": {"trainer": {"epochs": 1, "batch_size": 8, "progress": False}}}


@factory("encoder", "cnn-regressor")
def _cnn_regressor(tmp_path):
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.surveys.memory import InMemorySurvey

    images = _blobs(4, 3, 16)
    records = [GalaxyRecord(id=f"g{i}", images=NDData(image, unit=u.nanomaggy, meta=GRI),
                            maps={"stellar_mass": NDData(1e8 * image[0].clip(0),
                                                         unit=u.Msun / u.kpc**2)})
               for i, image in enumerate(images)]
    encoder = CNNRegressor(width=1 / 16)
    trainer = {"epochs": 1, "batch_size": 4, "validation_fraction": 0.0, "progress": False}
    return encoder, (InMemorySurvey(records=records),), {"expected_rows": 4,
                                                         "fit_params": {"trainer": trainer}}


@factory("encoder", "dense-contrastive")
def _dense(tmp_path):
    from astro_cl.augment import RandomFlip
    from astro_cl.data.batch import TensorBatch
    from astro_cl.models.dense import DenseContrastive

    encoder = DenseContrastive(width=1 / 16, channels=(32, 64), bottom=64, embedding_dim=4,
                               n_pixels=16, augmenter=RandomFlip())
    return encoder, (TensorBatch.from_arrays(_blobs(8, 2, 16)),), {
        "expected_rows": 8,
        "fit_params": {"trainer": {"epochs": 1, "batch_size": 8, "progress": False}}}


@factory("encoder", "clip")
def _clip(tmp_path):
    from astro_cl.data.batch import TensorBatch
    from astro_cl.models.clip import CLIPEncoder, PairedSource
    from astro_cl.training.data import InMemorySource

    image, cube = _blobs(8, 5, 16), _blobs(8, 3, 16)
    pairs = PairedSource(InMemorySource(TensorBatch.from_arrays(image)),
                         InMemorySource(TensorBatch.from_arrays(cube)))
    encoder = CLIPEncoder(width=0.0625, hidden=(16,), embedding_dim=8, projection_dim=4,
                          dropout=0.0)
    return encoder, (pairs,), {
        "expected_rows": 8,
        "fit_params": {"trainer": {"epochs": 1, "batch_size": 8, "progress": False}}}


# -- tasks -------------------------------------------------------------------
def _embeddings(n, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng


@factory("task", "similarity-search")
def _similarity(tmp_path):
    from astro_cl.tasks.similarity import SimilaritySearch

    X, _ = _embeddings(15)
    return SimilaritySearch(n_neighbors=3), (QTable({"id": [f"g{i}" for i in range(15)],
                                                     "embedding": X}),), {}


@factory("task", "region-search")
def _region_search(tmp_path):
    from astro_cl.tasks.region_search import RegionSearch

    rng = np.random.default_rng(0)
    cubes = [{"embedding": NDData(rng.normal(size=(4, 6, 6)).astype(np.float32),
                                  meta={"id": f"g{i}"})} for i in range(5)]
    return RegionSearch(backend="numpy", n_neighbors=3), (cubes,), {}


@factory("task", "environment")
def _environment(tmp_path):
    from astro_cl.tasks.environment import EnvironmentTest

    X, rng = _embeddings(40)
    cat = QTable({"environment": np.where(rng.random(40) < 0.5, "cluster", "void"),
                  "log_Mass": rng.normal(10.5, 0.4, 40)})
    return EnvironmentTest(tests=("energy",), n_permutations=19), (X, cat), {}


@factory("task", "property-correlation")
def _correlation(tmp_path):
    from astro_cl.tasks.correlation import PropertyCorrelation

    X, rng = _embeddings(60)
    cat = QTable({"id": [f"g{i}" for i in range(60)],
                  "log_Mass": (10.5 + 0.5 * X[:, 0]) * u.dex(u.Msun),
                  "noise": rng.normal(size=60)})
    emb = QTable({"id": cat["id"], "embedding": X.astype(np.float32)})
    return PropertyCorrelation(projection="pca", n_bootstrap=5), (emb, cat), {}


@factory("task", "property-regression")
def _regression(tmp_path):
    from astro_cl.tasks.regression import PropertyRegression

    X, rng = _embeddings(60)
    cat = QTable({"id": [f"g{i}" for i in range(60)],
                  "log_Mass": (10.5 + 0.5 * X[:, 0]) * u.dex(u.Msun),
                  "noise": rng.normal(size=60)})
    emb = QTable({"id": cat["id"], "embedding": X})
    return PropertyRegression(n_bootstrap=5), (emb, cat), {}


@factory("task", "sfms-clustering")
def _clustering(tmp_path):
    from astro_cl.tasks.clustering import SFMSClustering

    rng = np.random.default_rng(0)
    mass = rng.uniform(9.0, 11.5, 80)
    quiescent = rng.random(80) < 0.4
    sfr = 0.8 * (mass - 10.0) - 0.2 + rng.normal(0, 0.2, 80) - 2.2 * quiescent
    X = np.column_stack([np.where(quiescent, 3.0, -3.0) + rng.normal(0, 0.5, 80),
                         rng.normal(0, 0.5, (80, 3))])
    cat = QTable({"log_Mass": mass * u.dex(u.Msun), "log_SFR_Ha": sfr * u.dex(u.Msun / u.yr)})
    return SFMSClustering(n_init=2), (X, cat), {}


@factory("task", "map-metrics")
def _map_metrics(tmp_path):
    from astro_cl.tasks.maps import MapMetrics

    yy, xx = np.mgrid[:48, :48].astype(float)
    r = np.hypot(xx - 23.5, (yy - 24.0) / 0.7)[None] * np.array([1.0, 1.1, 0.9])[:, None, None]
    mass = 1e8 * np.exp(-r / 3.0)
    mass[r > 22] = 0.0
    truth = {"stellar_mass": mass * u.Msun / u.kpc**2, "age_mw": 3 + 0.2 * r}
    return MapMetrics(), (truth, truth), {}


@pytest.mark.parametrize("info", BUILTINS, ids=lambda info: f"{info.kind}:{info.name}")
def test_component_conforms(info, tmp_path):
    make = FACTORIES.get((info.kind, info.name))
    assert make is not None, (f"no factory for the {info.kind} {info.name!r} in "
                              "tests/test_conformance.py: add a cheap instance of it")
    made = make(tmp_path)
    if isinstance(made, str):
        pytest.skip(made)
    component, args, kwargs = made
    assert type(component) is info.cls
    check = getattr(testing, f"check_{info.kind}")
    check(component, *args, **kwargs)


def test_every_factory_belongs_to_a_registered_component():
    registered = {(info.kind, info.name) for info in BUILTINS}
    assert set(FACTORIES) <= registered, sorted(set(FACTORIES) - registered)
    assert {info.kind for info in BUILTINS} == {"survey", "preprocessor", "augmenter",
                                                "encoder", "task"}
