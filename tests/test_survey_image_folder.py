"""The image-folder reader on the real Galaxy Zoo 1 sample and tiny PNG/FITS fixtures."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError
from astro_cl.surveys.image_folder import ImageFolderSurvey


@pytest.fixture(scope="module")
def gz1(shared_data):
    return ImageFolderSurvey(path=shared_data / "gz1").open()


def test_gz1_catalogue(gz1, shared_data):
    assert len(gz1) == 4615
    cat = gz1.catalogue
    assert {"id", "file", "objid", "class"} <= set(cat.colnames)
    assert set(np.unique(cat["class"])) <= set(range(6))
    assert gz1.images_without_label_ == [] and gz1.labels_without_image_ == []
    # 18-digit SDSS objids survive as exact strings (no float round-off)
    assert all(len(i) == 18 for i in gz1.ids[:50])
    assert (shared_data / "gz1" / "images" / f"{gz1.ids[0]}.jpeg").is_file()


def test_gz1_record_matches_pillow(gz1, shared_data):
    gid = gz1.ids[5]
    rec = gz1[gid]
    raw = np.asarray(Image.open(shared_data / "gz1" / "images" / f"{gid}.jpeg"))
    assert rec.images.data.shape == (3, 423, 423)
    np.testing.assert_allclose(rec.images.data[0], raw[..., 0] / 255.0, rtol=1e-6)
    assert rec.bands == ("i", "r", "g")
    assert rec.images.unit == u.dimensionless_unscaled
    assert rec.properties["class"] == gz1.catalogue["class"][5]


def test_open_does_not_decode(shared_data, monkeypatch):
    calls = []
    monkeypatch.setattr(ImageFolderSurvey, "_read_raster",
                        lambda self, path: calls.append(path))
    ImageFolderSurvey(path=shared_data / "gz1").open()
    assert calls == []


def test_resize_and_check_survey(shared_data):
    from astro_cl.testing import check_survey

    survey = ImageFolderSurvey(path=shared_data / "gz1", size=32)
    check_survey(survey)
    batch = survey.to_tensors(survey.ids[:4])
    assert tuple(batch.data.shape) == (4, 3, 32, 32)
    assert 0 <= float(batch.data.min()) and float(batch.data.max()) <= 1


def test_png_fits_mix_and_missing_labels(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "a.png")
    hdu = fits.PrimaryHDU(np.ones((3, 10, 12), np.float32))
    hdu.header["BUNIT"] = "nanomaggy"
    hdu.header["BANDS"] = "g,r,i"
    hdu.writeto(tmp_path / "b.fits")
    (tmp_path / "labels.csv").write_text("id,class\na,1\nc,2\n")
    with pytest.warns(AstroCLWarning) as caught:
        survey = ImageFolderSurvey(path=tmp_path).open()
    text = " ".join(str(w.message) for w in caught)
    assert "1 galaxies with data have no row" in text and "1 rows" in text
    assert survey.images_without_label_ == ["b"] and survey.labels_without_image_ == ["c"]
    a = survey["a"]
    np.testing.assert_array_equal(a.images.data[0], 1.0)
    np.testing.assert_array_equal(a.images.data[1:], 0.0)
    b = survey["b"]
    assert b.images.unit == u.nanomaggy and b.bands == ("g", "r", "i")
    with pytest.warns(AstroCLWarning):
        only = ImageFolderSurvey(path=tmp_path, require_labels=True).open()
    assert only.ids == ["a"]


def test_labels_without_id_column(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("galaxy,class\na,1\n")
    with pytest.raises(CatalogueError, match="no id column"):
        ImageFolderSurvey(path=tmp_path).open()
    survey = ImageFolderSurvey(path=tmp_path, id_column="galaxy").open()
    assert survey[0].properties["class"] == 1


def test_not_an_image(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    survey = ImageFolderSurvey(path=tmp_path).open()
    with pytest.raises(SurveyError, match="a.jpg"):
        survey[0]



def _write_png(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)


def test_centre_crop_and_block_resample(tmp_path):
    """crop= and resample="block" reproduce a hand-made centre crop + block mean."""
    from astro_cl.surveys.image_folder import ImageFolderSurvey

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(12, 14, 3), dtype=np.uint8)
    _write_png(tmp_path / "a.png", img)
    import astropy.units as u

    survey = ImageFolderSurvey(path=tmp_path, crop=8, size=4, resample="block",
                               pixel_scale=0.4 * u.arcsec)
    rec = survey[0]
    data = np.moveaxis(img.astype(np.float32) / 255, -1, 0)
    cut = data[:, 2:10, 3:11]
    expected = cut.reshape(3, 4, 2, 4, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(rec.images.data, expected)
    # block averaging of 2x2 pixels doubles the pixel scale
    assert rec.observing.pixel_scale.to_value(u.arcsec / u.pix) == pytest.approx(0.8)


def test_crop_and_resample_errors_name_the_file(tmp_path):
    from astro_cl.exceptions import SurveyError
    from astro_cl.surveys.image_folder import ImageFolderSurvey

    _write_png(tmp_path / "a.png", np.zeros((12, 12, 3), dtype=np.uint8))
    with pytest.raises(SurveyError, match=r"a\.png.*crop \(20, 20\) is larger"):
        ImageFolderSurvey(path=tmp_path, crop=20)[0]
    with pytest.raises(SurveyError, match=r"a\.png.*whole multiple"):
        ImageFolderSurvey(path=tmp_path, crop=10, size=4, resample="block")[0]


def test_aperture_masks_the_pixels_outside_the_circle(tmp_path):
    """aperture= flags the corners as bad (the networks zero them); the data stay as read."""
    img = np.full((20, 20, 3), 200, dtype=np.uint8)
    _write_png(tmp_path / "a.png", img)
    plain = ImageFolderSurvey(path=tmp_path)[0]
    rec = ImageFolderSurvey(path=tmp_path, crop=16, size=8, resample="block", aperture=0.5)[0]
    mask = np.asarray(rec.images.mask)
    assert mask.shape == (3, 8, 8) and not np.asarray(plain.images.mask).any()
    # radius 0.5 * 4 px = 2 px about the centre (3.5, 3.5): the four central pixels
    # are inside (0.71 px), the next ring (1.58 px) too, the corners are out
    assert not mask[:, 3:5, 3:5].any() and mask[:, 0, 0].all() and mask[:, 7, 7].all()
    assert mask.sum() / 3 == pytest.approx(64 - 12)
    np.testing.assert_array_equal(rec.images.data, np.full((3, 8, 8), 200 / 255, np.float32))


@pytest.mark.parametrize("aperture", [0, 1.5, "wide", True])
def test_bad_aperture_is_named(tmp_path, aperture):
    _write_png(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(SurveyError, match=r"aperture = .*expected a number in \(0, 1\]"):
        ImageFolderSurvey(path=tmp_path, aperture=aperture)[0]
