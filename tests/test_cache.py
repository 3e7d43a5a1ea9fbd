import json

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable

from astro_cl.data.record import GalaxyRecord
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


def test_file_survey_epoch_reads_cache_not_files(tmp_path):
    src_dir = tmp_path / "files"
    src_dir.mkdir()
    for i in range(4):
        np.save(src_dir / f"g{i}.npy", np.full((2, 8, 8), float(i)))
    survey = FileSurvey(path=str(src_dir))
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
    np.save(src_dir / "g1.npy", np.full((2, 8, 8), 42.0))
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
