"""The component contract, batches, the in-memory survey, Compose, atomic writes, FITS maps."""

import json
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.nddata import NDData, StdDevUncertainty
from astropy.wcs import WCS

from astro_cl.augment import Augmenter, Compose
from astro_cl.base import Component, clone
from astro_cl.data import GalaxyRecord
from astro_cl.data.batch import TensorBatch
from astro_cl.data.fits_maps import read_maps, write_maps
from astro_cl.exceptions import SurveyError, ValidationError
from astro_cl.surveys import InMemorySurvey
from astro_cl.testing import check_augmenter, check_component, check_survey
from astro_cl.utils.io import atomic_write, file_checksum


class Scale(Augmenter):
    name = "scale-test"
    description = "Multiply by a random factor."

    def __init__(self, *, low=0.5, high=2.0):
        self.low = low
        self.high = high

    def transform(self, batch, generator):
        f = torch.empty(len(batch), 1, 1, 1).uniform_(self.low, self.high, generator=generator)
        return batch.replace(data=batch.data * f)


class Nested(Component):
    name = "nested"

    def __init__(self, *, inner=None, k=1):
        self.inner = inner
        self.k = k


def records(n=4, shape=(3, 8, 8)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        data = rng.lognormal(size=shape)
        out.append(GalaxyRecord(
            id=f"g{i}", images=NDData(data, unit=u.nJy, meta={"bands": ("g", "r", "i")},
                                      uncertainty=StdDevUncertainty(0.1 * data)),
            maps={"mass": NDData(data[0] * 10, unit=u.Msun / u.kpc**2)},
            properties={"log_Mass": 9.0 + i, "type": "Sa"}))
    return out


def test_params_roundtrip_and_clone():
    comp = Nested(inner=Scale(low=0.9), k=3)
    params = comp.get_params()
    assert params["k"] == 3 and params["inner__low"] == 0.9
    comp.set_params(inner__high=4.0, k=5)
    assert comp.inner.high == 4.0 and comp.k == 5
    with pytest.raises(ValueError, match="'bad' is not a parameter of Nested"):
        comp.set_params(bad=1)
    twin = clone(comp)
    assert twin is not comp and twin.get_params(deep=False)["k"] == 5
    assert "Nested(inner=Scale(high=4.0, low=0.9), k=5)" == repr(comp)


def test_check_component_rejects_positional_init():
    class Positional(Component):
        name = "positional"
        description = "x"

        def __init__(self, a=1):
            self.a = a

    with pytest.raises(AssertionError, match="keyword-only"):
        check_component(Positional(), Component)


def test_tensor_batch_validation():
    ok = TensorBatch.from_arrays(np.zeros((2, 3, 4, 4)), ids=["a", "b"])
    assert len(ok) == 2 and ok.mask.dtype == torch.bool
    sub = ok.index([1])
    assert sub.ids == ["b"] and sub.data.shape == (1, 3, 4, 4)
    with pytest.raises(ValidationError, match="expected a 4-D torch.Tensor"):
        TensorBatch(data=torch.zeros(3, 4, 4), mask=torch.zeros(3, 4, 4, dtype=torch.bool), ids=[])
    with pytest.raises(ValidationError, match="mask: expected a boolean"):
        TensorBatch(data=torch.zeros(1, 1, 2, 2), mask=torch.zeros(1, 1, 2, 2), ids=["a"])
    with pytest.raises(ValidationError, match="does not broadcast"):
        TensorBatch(data=torch.zeros(1, 3, 2, 2), mask=torch.zeros(1, 2, 2, 2, dtype=bool), ids=["a"])
    with pytest.raises(ValidationError, match="expected 1 ids"):
        TensorBatch(data=torch.zeros(1, 1, 2, 2), mask=torch.zeros(1, 1, 2, 2, dtype=bool), ids=[])


def test_in_memory_survey_conforms_and_batches():
    survey = InMemorySurvey(records=records()).open()
    check_survey(survey)
    assert survey.ids == ["g0", "g1", "g2", "g3"]
    assert survey.catalogue["log_Mass"][2] == 11.0
    batch = survey.to_tensors(targets="maps")
    assert batch.data.shape == (4, 3, 8, 8) and batch.targets.shape == (4, 1, 8, 8)
    assert batch.uncertainty is not None
    order1 = [b.ids for b in survey.batches(3, shuffle=True, seed=1)]
    order2 = [b.ids for b in survey.batches(3, shuffle=True, seed=1)]
    assert order1 == order2 and [len(x) for x in order1] == [3, 1]
    assert [len(b) for b in survey.batches(3, drop_last=True)] == [3]
    train, test = survey.train_test_split(test_size=1, seed=0)
    assert sorted(train + test) == survey.ids and len(test) == 1
    with pytest.raises(KeyError, match="no galaxy with id 'zz'"):
        survey["zz"]
    with pytest.raises(IndexError):
        survey[4]


def test_in_memory_survey_rejects_bad_input():
    with pytest.raises(SurveyError, match=r"records\[0\] is a dict"):
        InMemorySurvey(records=[{}]).open()
    recs = records(2)
    recs[1].id = "g0"
    with pytest.raises(SurveyError, match="not unique"):
        InMemorySurvey(records=recs).open()


def test_compose_probabilities_and_determinism():
    batch = TensorBatch.from_arrays(np.ones((64, 1, 4, 4)), ids=range(64))
    chain = Compose(steps=[(Scale(low=2.0, high=2.0), 0.5)])
    out = chain(batch, seed=3)
    scaled = (out.data[:, 0, 0, 0] == 2.0).sum().item()
    assert 16 < scaled < 48
    assert torch.equal(out.data, chain(batch, seed=3).data)
    v1, v2 = chain.two_views(batch, seed=3)
    assert not torch.equal(v1.data, v2.data)
    check_augmenter(Scale())
    check_augmenter(chain)
    with pytest.raises(ValidationError, match="probability"):
        Compose(steps=[(Scale(), 1.5)])(batch, seed=0)


def test_augmenter_apply_on_nddata():
    img = NDData(np.ones((2, 5, 5)), unit=u.nJy, uncertainty=StdDevUncertainty(np.ones((2, 5, 5))))
    out = Scale(low=3, high=3).apply(img, seed=0)
    assert out.unit == u.nJy and np.allclose(out.data, 3) and out.mask.shape == (2, 5, 5)


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "a.json"
    with atomic_write(path) as fh:
        json.dump({"v": 1}, fh)
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write("{partial")
        raise RuntimeError("crash while writing")
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert len(file_checksum(path)) == 64
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_fits_maps_roundtrip(tmp_path):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    maps = {"stellar_mass": NDData(np.arange(12.0).reshape(3, 4), unit=u.Msun / u.kpc**2, wcs=wcs,
                                   uncertainty=StdDevUncertainty(np.ones((3, 4))),
                                   mask=np.eye(3, 4, dtype=bool)),
            "age_lw": NDData(np.ones((3, 4)), unit=u.Gyr)}
    write_maps(tmp_path / "g.maps.fits", maps, header={"OBJECT": "g"})
    back = read_maps(tmp_path / "g.maps.fits")
    assert list(back) == ["stellar_mass", "age_lw"]
    assert back["stellar_mass"].unit == u.Msun / u.kpc**2
    assert np.array_equal(back["stellar_mass"].mask, np.eye(3, 4, dtype=bool))
    assert back["stellar_mass"].wcs.wcs.ctype[0] == "RA---TAN"
    (tmp_path / "bad.fits").write_bytes(b"not a fits file")
    with pytest.raises(SurveyError, match="bad.fits"):
        read_maps(tmp_path / "bad.fits")


def test_cli_help_version_and_plugins():
    run = [sys.executable, "-m", "astro_cl.cli"]
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True)
    assert "plugins" in out.stdout
    out = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("astro-cl ")
    out = subprocess.run([*run, "plugins", "--json", "--kind", "survey"], capture_output=True,
                         text=True, check=True)
    rows = json.loads(out.stdout)
    assert any(r["name"] == "in-memory" and r["distribution"] == "astro_cl" for r in rows)
    assert {r["kind"] for r in rows} == {"survey"}
