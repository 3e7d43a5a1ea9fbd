"""TaskResults' thumbnails.npz: galaxy ids are data, never numpy.savez keyword names."""

import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.exceptions import ValidationError
from astro_cl.studies import TaskResults


def _results(thumbnails):
    results = TaskResults({}, QTable({"id": list(thumbnails)}))
    results.thumbnails = dict(thumbnails)
    return results


def test_thumbnails_whose_ids_clash_with_savez_arguments_round_trip(tmp_path):
    thumbs = {"allow_pickle": np.full((4, 4), 1.0), "file": np.full((3, 5), 2.0),
              "g0": np.arange(6.0).reshape(2, 3), "galaxy_ids": np.zeros((2, 2))}
    back = TaskResults.read(_results(thumbs).write(tmp_path / "results"))
    assert list(back.thumbnails) == list(thumbs)  # order kept too
    for gid, image in thumbs.items():
        np.testing.assert_array_equal(back.thumbnails[gid], image)


def test_thumbnails_written_with_ids_as_keys_still_read(tmp_path):
    folder = _results({}).write(tmp_path / "results")
    np.savez(folder / "thumbnails.npz", g0=np.ones((2, 2)), g1=np.zeros((3, 3)))
    back = TaskResults.read(folder)
    assert set(back.thumbnails) == {"g0", "g1"}
    np.testing.assert_array_equal(back.thumbnails["g1"], np.zeros((3, 3)))


def test_thumbnails_missing_an_image_name_the_file(tmp_path):
    folder = _results({"g0": np.ones((2, 2))}).write(tmp_path / "results")
    np.savez(folder / "thumbnails.npz", astro_cl_thumbnails_format=np.array(1),
             galaxy_ids=np.array(["g0", "g1"]), thumbnail_0=np.ones((2, 2)))
    with pytest.raises(ValidationError, match=r"thumbnails\.npz: lists 2 galaxy ids but has "
                                              r"no image under \['thumbnail_1'\]"):
        TaskResults.read(folder)
