"""Bad input: one test per case, each a SurveyError naming the file and the problem.

Ends with byte-level corruption fuzzing of a real-format eCALIFA cube and of the
real MaNGA MAPS file: a reader may only return a valid record or raise SurveyError.
"""

import gzip
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError
from astro_cl.surveys.ecalifa import ECALIFASurvey
from astro_cl.surveys.manga import MaNGASurvey
from astro_cl.surveys.sdss import SDSSSurvey

MAPS = "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"


def _header(drop=()):
    hdr = fits.Header()
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "AWAV",
                       "CRVAL1": 10.0, "CRVAL2": 20.0, "CRVAL3": 3749.0,
                       "CDELT1": -0.5 / 3600, "CDELT2": 0.5 / 3600, "CDELT3": 2.0,
                       "CRPIX1": 3.0, "CRPIX2": 3.0, "CRPIX3": 1.0,
                       "CUNIT1": "deg", "CUNIT2": "deg", "CUNIT3": "Angstrom",
                       "BUNIT": "10**(-16)erg s-1 cm-2 A-1"}.items():
        if key not in drop:
            hdr[key] = value
    return hdr


def write_cube(folder, name="G1", *, flux=None, drop=(), extensions=("ERROR", "BADPIX",
                                                                       "GAIA_MASK"),
               error_shape=None, bunit=None):
    """Write a tiny eCALIFA-format cube (10 x 6 x 5) and return its path."""
    rng = np.random.default_rng(0)
    flux = rng.lognormal(size=(10, 6, 5)).astype(np.float32) if flux is None else flux
    hdr = _header(drop)
    if bunit is not None:
        hdr["BUNIT"] = bunit
    hdus = [fits.PrimaryHDU(flux, hdr)]
    if "ERROR" in extensions:
        hdus.append(fits.ImageHDU(np.full(error_shape or flux.shape, 0.1, np.float32),
                                  name="ERROR"))
    if "BADPIX" in extensions:
        hdus.append(fits.ImageHDU(np.zeros(flux.shape, np.uint8), name="BADPIX"))
    if "GAIA_MASK" in extensions:
        hdus.append(fits.ImageHDU(np.zeros(flux.shape[-2:], np.uint8), name="GAIA_MASK"))
    path = folder / f"{name}.V500.drscube.fits"
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _read(folder):
    return ECALIFASurvey(path=folder).open()[0]


def test_truncated_fits(tmp_path):
    path = write_cube(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])
    with pytest.raises(SurveyError, match=r"G1\.V500\.drscube\.fits.*truncated"):
        _read(tmp_path)


def test_truncated_header(tmp_path):
    path = write_cube(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SurveyError, match=r"G1\.V500\.drscube\.fits: not a readable FITS file"):
        _read(tmp_path)


def test_not_fits(tmp_path):
    (tmp_path / "G1.V500.drscube.fits").write_text("this is a text file, not FITS\n" * 200)
    with pytest.raises(SurveyError, match="not a readable FITS file"):
        _read(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "G1.V500.drscube.fits").write_bytes(b"")
    with pytest.raises(SurveyError, match="empty file"):
        _read(tmp_path)


def test_bad_gzip(tmp_path):
    (tmp_path / "G1.V500.drscube.fits.gz").write_bytes(gzip.compress(b"SIMPLE  = ")[:25])
    with pytest.raises(SurveyError, match=r"G1\.V500\.drscube\.fits\.gz"):
        _read(tmp_path)


def test_missing_extension(tmp_path):
    write_cube(tmp_path, extensions=("BADPIX",))
    with pytest.raises(SurveyError, match="missing extension 'ERROR'"):
        _read(tmp_path)


def test_wrong_dimensionality(tmp_path):
    write_cube(tmp_path, flux=np.ones((6, 5), np.float32), extensions=())
    with pytest.raises(SurveyError, match=r"shape \(6, 5\), expected 3-D"):
        _read(tmp_path)


def test_extension_shape_mismatch(tmp_path):
    write_cube(tmp_path, error_shape=(10, 6, 4))
    with pytest.raises(SurveyError, match=r"'ERROR' has shape \(10, 6, 4\), expected"):
        _read(tmp_path)


def test_missing_spectral_wcs(tmp_path):
    write_cube(tmp_path, drop=("CRVAL3",))
    with pytest.raises(SurveyError, match=r"missing spectral WCS keywords \['CRVAL3'\]"):
        _read(tmp_path)


def test_missing_ctype3_and_cunit3_fall_back(tmp_path):
    write_cube(tmp_path, drop=("CTYPE3", "CUNIT3"))
    with pytest.warns(AstroCLWarning) as caught:
        rec = _read(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert "no CTYPE3" in text and "no CUNIT3" in text
    assert rec.cube.spectral_axis.to_value(u.AA)[0] == pytest.approx(3749.0)


def test_missing_celestial_wcs_falls_back(tmp_path):
    write_cube(tmp_path, drop=("CTYPE1", "CTYPE2"))
    with pytest.warns(AstroCLWarning, match="no celestial WCS"):
        rec = _read(tmp_path)
    assert rec.observing.pixel_scale == 0.5 * u.arcsec / u.pix
    np.testing.assert_allclose(rec.cube.spectral_axis.to_value(u.AA)[:2], [3749.0, 3751.0])


def test_missing_unit_falls_back(tmp_path):
    write_cube(tmp_path, drop=("BUNIT",))
    with pytest.warns(AstroCLWarning, match="no BUNIT keyword; assuming"):
        rec = _read(tmp_path)
    assert rec.cube.flux.unit == u.Unit("1e-16 erg / (s cm2 Angstrom)")


def test_unparseable_unit_falls_back(tmp_path):
    write_cube(tmp_path, bunit="furlongs per fortnight squared")
    with pytest.warns(AstroCLWarning, match="cannot parse BUNIT"):
        _read(tmp_path)


def test_sdss_missing_unit_falls_back_to_nanomaggy(tmp_path):
    hdr = _header()
    hdr = fits.Header({k: hdr[k] for k in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1",
                                           "CRPIX2", "CDELT1", "CDELT2")})
    fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(np.ones((6, 6), np.float32), hdr, name=b)
                                       for b in "ugriz"]).writeto(tmp_path / "x.fits")
    with pytest.warns(AstroCLWarning, match="nanomaggy"):
        rec = SDSSSurvey(path=tmp_path).open()[0]
    assert rec.images.unit == u.nanomaggy


def test_all_nan(tmp_path):
    write_cube(tmp_path, flux=np.full((10, 6, 5), np.nan, np.float32))
    with pytest.raises(SurveyError, match="all NaN"):
        _read(tmp_path)


def test_catalogue_without_join_column(tmp_path):
    write_cube(tmp_path)
    QTable({"galaxy": ["G1"], "z": [0.02]}).write(tmp_path / "cat.ecsv")
    with pytest.raises(CatalogueError, match=r"cat\.ecsv: catalogue has no join column 'Name'"):
        ECALIFASurvey(path=tmp_path, catalogue_file=tmp_path / "cat.ecsv").open()


def test_catalogue_duplicate_names(tmp_path):
    write_cube(tmp_path)
    QTable({"Name": ["G1", "G1"]}).write(tmp_path / "cat.ecsv")
    with pytest.raises(CatalogueError, match="duplicate"):
        ECALIFASurvey(path=tmp_path, catalogue_file=tmp_path / "cat.ecsv").open()


def test_unreadable_catalogue(tmp_path):
    write_cube(tmp_path)
    (tmp_path / "cat.fits").write_bytes(b"garbage")
    with pytest.raises(CatalogueError, match=r"cat\.fits: cannot read as a catalogue"):
        ECALIFASurvey(path=tmp_path, catalogue_file=tmp_path / "cat.fits").open()


def test_no_cubes_and_missing_path(tmp_path):
    with pytest.raises(SurveyError, match="no eCALIFA cubes"):
        ECALIFASurvey(path=tmp_path).open()
    with pytest.raises(SurveyError, match="no such file or directory"):
        ECALIFASurvey(path=tmp_path / "nope").open()
    with pytest.raises(SurveyError, match="give path="):
        ECALIFASurvey().open()


def test_manga_truncated_real_file(tmp_path, shared_data):
    data = (shared_data / "manga" / MAPS).read_bytes()
    (tmp_path / MAPS).write_bytes(data[: len(data) // 2])
    with pytest.raises(SurveyError, match=MAPS):
        MaNGASurvey(path=tmp_path).open()[0]


# -- fuzzing -------------------------------------------------------------------------


def _corrupt(data, rng):
    data = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # truncate anywhere
        return bytes(data[: int(rng.integers(1, len(data)))])
    if kind == 1:  # flip random bytes anywhere
        idx = rng.integers(0, len(data), size=int(rng.integers(1, 50)))
        for i in idx:
            data[i] ^= int(rng.integers(1, 256))
        return bytes(data)
    if kind == 2:  # scramble part of a header card
        blocks = [i for i in range(0, len(data), 2880) if data[i:i + 8] in (b"SIMPLE  ",
                                                                             b"XTENSION")]
        start = int(rng.choice(blocks)) + 80 * int(rng.integers(0, 36))
        data[start:start + 80] = bytes(rng.integers(32, 127, size=80, dtype=np.uint8))
        return bytes(data)
    # overwrite a run of bytes with random values
    start = int(rng.integers(0, len(data) - 1))
    stop = min(len(data), start + int(rng.integers(1, 3000)))
    data[start:stop] = bytes(rng.integers(0, 256, size=stop - start, dtype=np.uint8))
    return bytes(data)


def _only_survey_error_or_record(survey):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks may warn; that is allowed
        try:
            rec = survey.open()[0]
        except SurveyError:
            return "error"
    assert isinstance(rec, GalaxyRecord)
    return "record"


def test_fuzz_ecalifa_cube(tmp_path):
    (tmp_path / "src").mkdir()
    clean = write_cube(tmp_path / "src")
    original = clean.read_bytes()
    rng = np.random.default_rng(12345)
    outcomes = []
    for trial in range(120):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        (folder / clean.name).write_bytes(_corrupt(original, rng))
        outcomes.append(_only_survey_error_or_record(ECALIFASurvey(path=folder)))
    assert set(outcomes) == {"error", "record"}  # both kinds of outcome were exercised


def test_fuzz_real_manga_maps(tmp_path, shared_data):
    original = gzip.decompress((shared_data / "manga" / MAPS).read_bytes())
    name = MAPS[: -len(".gz")]
    rng = np.random.default_rng(2024)
    outcomes = []
    for trial in range(25):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        (folder / name).write_bytes(_corrupt(original, rng))
        outcomes.append(_only_survey_error_or_record(
            MaNGASurvey(path=folder, extensions=["STELLAR_VEL", "EMLINE_GFLUX"])))
    assert set(outcomes) == {"error", "record"}
