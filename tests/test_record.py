import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty
from astropy.table import QTable
from specutils import Spectrum

from astro_cl.data import GalaxyRecord, ObservingMeta, cube_to_array
from astro_cl.exceptions import ValidationError

FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 AA)")


def make_cube(shape=(20, 6, 5)):
    flux = np.random.default_rng(0).normal(1, 0.1, shape)
    return Spectrum(flux=flux * FLUX_UNIT, spectral_axis=(3750 + 2 * np.arange(shape[0])) * u.AA,
                    spectral_axis_index=0, uncertainty=StdDevUncertainty(np.full(shape, 0.1)),
                    mask=np.zeros(shape, bool))


def make_images(shape=(5, 6, 5)):
    return NDData(np.ones(shape), unit=u.nJy, meta={"bands": tuple("ugriz")[: shape[0]]})


def test_full_record_roundtrip():
    rec = GalaxyRecord(
        id="g1", survey="test", cube=make_cube(), images=make_images(),
        maps={"mass": NDData(np.ones((6, 5)), unit=u.Msun / u.kpc**2)},
        properties={"log_Mass": 10.2 * u.dex(u.Msun)}, star_mask=np.zeros((6, 5), bool),
        observing=ObservingMeta(pixel_scale=0.5 * u.arcsec, psf_fwhm=2.5 * u.arcsec,
                                redshift=0.02, wavelength_range=[3749, 7501] * u.AA),
    )
    assert rec.spatial_shape == (6, 5)
    assert rec.bands == tuple("ugriz")
    assert rec.observing.pixel_scale == 0.5 * u.arcsec / u.pixel
    data, mask, std = rec.as_arrays("cube")
    assert data.shape == (20, 6, 5) and mask.dtype == bool and std.shape == data.shape
    data, mask, std = rec.as_arrays("maps")
    assert data.shape == (1, 6, 5) and std is None
    band = rec.band("r")
    assert band.unit == u.nJy and band.data.shape == (6, 5)


def test_images_from_mapping_are_stacked():
    planes = {b: NDData(np.full((4, 4), i, float), unit=u.nJy,
                        uncertainty=StdDevUncertainty(np.ones((4, 4))))
              for i, b in enumerate("gri")}
    rec = GalaxyRecord(id="x", images=planes)
    assert rec.images.data.shape == (3, 4, 4)
    assert rec.bands == ("g", "r", "i")
    assert rec.band("i").data[0, 0] == 2
    _, _, std = rec.as_arrays()
    assert std.shape == (3, 4, 4)


def test_row_properties_become_dict():
    t = QTable({"id": ["a"], "z": [0.1]})
    rec = GalaxyRecord(id="a", properties=t[0])
    assert rec.properties == {"id": "a", "z": 0.1}


def test_non_finite_data_are_masked():
    img = make_images()
    img.data[0, 0, 0] = np.nan
    _, mask, _ = GalaxyRecord(id="n", images=img).as_arrays()
    assert mask[0, 0, 0] and mask.sum() == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": ""}, "id: expected a non-empty string"),
        ({"id": "a", "images": NDData(np.ones((5, 4)), unit=u.nJy)}, "expected 3-D data"),
        ({"id": "a", "images": NDData(np.ones((2, 4, 4)), meta={"bands": ("g", "r")})},
         "has no unit"),
        ({"id": "a", "images": NDData(np.ones((2, 4, 4)), unit=u.nJy, meta={"bands": ("g",)})},
         r"images.meta\['bands'\]: expected 2 band names"),
        ({"id": "a", "maps": {"m": np.ones((4, 4))}}, r"maps\['m'\]: expected an astropy NDData"),
        ({"id": "a", "images": make_images((5, 6, 5)),
          "maps": {"m": NDData(np.ones((4, 4)), unit=u.one)}}, "spatial shape: fields disagree"),
        ({"id": "a", "star_mask": np.zeros((4, 4))}, "star_mask: expected a boolean array"),
        ({"id": "a", "cube": NDData(np.ones((3, 3, 3)), unit=u.Jy)}, "cube: expected a specutils"),
        ({"id": "a", "observing": {"redshift": 0.1}}, "observing: expected ObservingMeta"),
    ],
)
def test_validation_names_the_field(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        GalaxyRecord(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pixel_scale": 0.5}, "pixel_scale: expected a Quantity"),
        ({"pixel_scale": 0.5 * u.kg}, "pixel_scale: expected units convertible"),
        ({"pixel_scale": -1 * u.arcsec}, "pixel_scale: expected a positive"),
        ({"psf_fwhm": 1 * u.m}, "psf_fwhm: expected units convertible"),
        ({"redshift": np.nan}, "redshift: expected a finite value"),
        ({"wavelength_range": [7000, 4000] * u.AA}, "wavelength_range: expected"),
    ],
)
def test_observing_meta_validation(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        ObservingMeta(**kwargs)


def test_wavelength_range_accepts_spectral_equivalents():
    meta = ObservingMeta(wavelength_range=[0.4, 0.7] * u.um)
    assert meta.wavelength_range.unit == u.AA
    assert meta.wavelength_range[0].value == pytest.approx(4000)


def test_cube_to_array_moves_spectral_axis_first():
    shape = (6, 5, 20)
    cube = Spectrum(flux=np.arange(np.prod(shape), dtype=float).reshape(shape) * FLUX_UNIT,
                    spectral_axis=np.arange(20) * u.AA + 4000 * u.AA)
    flux, mask, std = cube_to_array(cube)
    assert flux.shape == (20, 6, 5) and std is None and not mask.any()
    assert flux[3, 2, 1] == cube.flux.value[2, 1, 3]
