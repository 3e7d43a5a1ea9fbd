import json

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable

from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import ValidationError
from astro_cl.preprocess import ImageScaler, PreprocessedCache
from astro_cl.preprocess.cache import CacheWarning
from astro_cl.surveys.base import Survey
from astro_cl.surveys.memory import InMemorySurvey


def image_record(i, size=16, stars=True):
    rng = np.random.default_rng(i)
    data = rng.normal(size=(3, size, size)) + 10.0 * i
    mask = np.zeros(data.shape, bool)
    mask[:, 0, 0] = True
    img = NDData(data, unit=u.nJy, mask=mask, uncertainty=StdDevUncertainty(np.ones_like(data)),
                 meta={"bands": ("g", "r", "i")})
    maps = {"stellar_mass": NDData(np.full((size, size), float(i)), unit=u.Msun / u.kpc**2)}
    star = np.zeros((size, size), bool)
    star[2:4, 2:4] = stars
    return GalaxyRecord(id=f"gal{i}", images=img, maps=maps, star_mask=star)


class FileSurvey(Survey):
    """A survey of .npy files in a directory that counts how often it reads one."""

    name = "npy-files"
    reads = 0

    def __init__(self, *, path):
        self.path = path

    def _open(self):
        files = sorted(p.stem for p in __import__("pathlib").Path(self.path).glob("*.npy"))
        return QTable({"id": files})

    def _read_record(self, index):
        type(self).reads += 1
        gid = self.catalogue["id"][index]
        data = np.load(f"{self.path}/{gid}.npy")
        return GalaxyRecord(id=str(gid), images=NDData(data, unit=u.nJy,
                                                       meta={"bands": ("g", "r")}))


@pytest.fixture
def survey():
    return InMemorySurvey(records=[image_record(i) for i in range(5)])


def test_build_then_reuse(tmp_path, survey):
    cache = PreprocessedCache(tmp_path / "c")
    src = cache.get_or_build(survey, targets="maps", progress=False)
    assert len(src) == 5 and src.ids == [f"gal{i}" for i in range(5)]
    assert src.shape == (5, 3, 16, 16)
    batch = src.batch([3, 1])
    assert batch.ids == ["gal3", "gal1"]
    ref = survey.to_tensors(["gal3", "gal1"], targets="maps")
    torch.testing.assert_close(batch.data, ref.data)
    assert torch.equal(batch.mask, ref.mask)
    torch.testing.assert_close(batch.targets, ref.targets)
    assert batch.star_mask.shape == (2, 1, 16, 16) and batch.star_mask[:, 0, 2, 2].all()
    assert batch.meta["bands"] == ["g", "r", "i"]
    assert isinstance(src.arrays["data"], np.memmap)
    again = cache.get_or_build(survey, targets="maps", progress=False)
    assert again.directory == src.directory and len(cache.entries()) == 1


def test_target_maps_are_the_survey_maps(tmp_path):
    records = [image_record(i) for i in range(4)]
    records[2].maps["stellar_mass"].mask = np.zeros((16, 16), bool)
    records[2].maps["stellar_mass"].mask[5, 6] = True
    survey = InMemorySurvey(records=records)
    src = PreprocessedCache(tmp_path).get_or_build(survey, targets="maps", progress=False)
    maps = src.target_maps([2, 0])
    assert [list(m) for m in maps] == [["stellar_mass"], ["stellar_mass"]]
    for got, rec in zip(maps, (records[2], records[0]), strict=True):
        nd = got["stellar_mass"]
        assert nd.unit == u.Msun / u.kpc**2 and nd.data.dtype == np.float32
        good = ~nd.mask
        np.testing.assert_array_equal(nd.data[good], rec.maps["stellar_mass"].data[good])
    assert maps[0]["stellar_mass"].mask[5, 6] and maps[0]["stellar_mass"].mask.sum() == 1
    assert not maps[1]["stellar_mass"].mask.any()
    no_targets = PreprocessedCache(tmp_path / "b").get_or_build(survey, progress=False)
    with pytest.raises(KeyError, match="no regression targets"):
        no_targets.target_maps([0])


def test_preprocessor_in_key_and_applied(tmp_path, survey):
    cache = PreprocessedCache(tmp_path)
    raw = cache.get_or_build(survey, progress=False)
    sc = ImageScaler(method="asinh")
    scaled = cache.get_or_build(survey, preprocessor=sc, progress=False)
    assert sc.is_fitted and scaled.directory != raw.directory
    expected = sc.transform(survey)[0]
    np.testing.assert_allclose(scaled.batch(slice(None)).data.numpy(), expected, rtol=1e-6)
    other = cache.get_or_build(survey, preprocessor=ImageScaler(method="log"), progress=False)
    assert other.directory not in (raw.directory, scaled.directory)


def test_stale_when_data_change(tmp_path, survey):
    cache = PreprocessedCache(tmp_path)
    first = cache.get_or_build(survey, progress=False)
    recs = [image_record(i) for i in range(5)]
    recs[2] = image_record(7)
    recs[2].id = "gal2"
    changed = InMemorySurvey(records=recs)
    second = cache.get_or_build(changed, progress=False)
    assert second.directory != first.directory
    assert float(second.batch([2]).data.mean()) > 50


def _file_survey(directory, n, size):
    """A `FileSurvey` of ``n`` constant (2, size, size) images written to ``directory``."""
    directory.mkdir()
    for i in range(n):
        np.save(directory / f"g{i}.npy", np.full((2, size, size), float(i)))
    return FileSurvey(path=str(directory))


def test_file_survey_epoch_reads_cache_not_files(tmp_path):
    survey = _file_survey(tmp_path / "files", 4, 8)
    cache = PreprocessedCache(tmp_path / "cache")
    FileSurvey.reads = 0
    cache.get_or_build(survey, progress=False)
    assert FileSurvey.reads == 4
    src = cache.get_or_build(survey, progress=False)
    for _ in range(3):  # epochs
        for i in range(len(src)):
            src.batch([i])
    assert FileSurvey.reads == 4  # reused: no record was read again
    # a changed source file makes the entry stale -> rebuilt
    np.save(tmp_path / "files" / "g1.npy", np.full((2, 8, 8), 42.0))
    src2 = cache.get_or_build(survey, progress=False)
    assert FileSurvey.reads == 8 and src2.directory != src.directory
    assert float(src2.batch([1]).data.mean()) == 42.0


@pytest.mark.parametrize("damage", ["truncate", "json", "flip", "missing"])
def test_corrupt_entry_detected_and_rebuilt(tmp_path, survey, damage):
    cache = PreprocessedCache(tmp_path)
    src = cache.get_or_build(survey, progress=False)
    expected = src.batch(slice(None)).data.clone()
    entry = src.directory
    del src
    data = entry / "data.npy"
    if damage == "truncate":
        raw = data.read_bytes()
        data.write_bytes(raw[: len(raw) // 2])
    elif damage == "json":
        (entry / "meta.json").write_text("{truncated")
    elif damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[-5] ^= 0xFF
        data.write_bytes(bytes(raw))
    else:
        data.unlink()
    with pytest.warns(CacheWarning, match="rebuilding"):
        rebuilt = cache.get_or_build(survey, progress=False)
    torch.testing.assert_close(rebuilt.batch(slice(None)).data, expected)
    meta = json.loads((rebuilt.directory / "meta.json").read_text())
    assert meta["ids"] == survey.ids
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_no_pickle_in_cache(tmp_path, survey):
    src = PreprocessedCache(tmp_path).get_or_build(survey, progress=False)
    for f in src.directory.glob("*.npy"):
        np.load(f, allow_pickle=False)
    assert {p.suffix for p in src.directory.iterdir()} == {".npy", ".json"}


class _FailingSurvey(InMemorySurvey):
    """An in-memory survey whose record ``bad`` cannot be read."""

    def _read_record(self, index):
        rec = super()._read_record(index)
        if rec.id == "gal3":
            msg = "gal3: unreadable"
            raise OSError(msg)
        return rec


@pytest.mark.parametrize("workers", [2, 3])
def test_threaded_build_matches_serial(tmp_path, survey, workers):
    serial = PreprocessedCache(tmp_path / "a").get_or_build(
        survey, preprocessor=ImageScaler(), targets="maps", progress=False)
    threaded = PreprocessedCache(tmp_path / "b").get_or_build(
        survey, preprocessor=ImageScaler(), targets="maps", progress=False, workers=workers)
    assert threaded.ids == serial.ids
    assert threaded.directory.name == serial.directory.name
    for name, arr in serial.arrays.items():
        np.testing.assert_array_equal(threaded.arrays[name], arr)


def test_threads_only_for_thread_safe_components(tmp_path):
    files = _file_survey(tmp_path / "files", 3, 4)
    assert not files.thread_safe and InMemorySurvey.thread_safe
    cache = PreprocessedCache(tmp_path / "c")
    with pytest.warns(CacheWarning, match="in one thread, not 2: survey 'npy-files'"):
        built = cache.get_or_build(files, progress=False, workers=2)
    assert built.ids == ["g0", "g1", "g2"]

    class Unsafe(ImageScaler):
        thread_safe = False

    mem = InMemorySurvey(records=[image_record(i) for i in range(3)])
    with pytest.warns(CacheWarning, match="preprocessor 'image-scaler'"):
        cache.get_or_build(mem, preprocessor=Unsafe(), progress=False, workers=2)


def test_threaded_build_error_leaves_nothing(tmp_path):
    bad = _FailingSurvey(records=[image_record(i) for i in range(8)])
    cache = PreprocessedCache(tmp_path)
    with pytest.raises(OSError, match="gal3: unreadable"):
        cache.get_or_build(bad, progress=False, workers=2)
    assert cache.entries() == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ValidationError, match="workers must be >= 1"):
        cache.get_or_build(bad, progress=False, workers=0)


def test_threaded_cube_pca_build_matches_serial(tmp_path):
    from astro_cl.preprocess import CubePCA
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey

    survey = ECALIFAMockSurvey(n=6, seed=1, size=12)
    assert survey.thread_safe
    assert not ECALIFAMockSurvey(n=2, path=tmp_path / "files").thread_safe
    pca = CubePCA(n_components=4, fit_snr=3.0, max_spectra_per_galaxy=40, seed=0)
    pca.fit([survey[i] for i in range(3)])
    one = PreprocessedCache(tmp_path / "a").get_or_build(survey, preprocessor=pca,
                                                         progress=False)
    two = PreprocessedCache(tmp_path / "b").get_or_build(survey, preprocessor=pca,
                                                         progress=False, workers=2)
    for name, arr in one.arrays.items():
        np.testing.assert_array_equal(two.arrays[name], arr)
