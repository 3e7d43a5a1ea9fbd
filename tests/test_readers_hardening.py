"""The readers' hardening: no hangs, no half-read files, no foreign exceptions, the
right file named. One test per finding of the readers' fuzz campaign; each fails
on the readers as they were before (a hang, a partial record, a non-astro_cl
exception, or an error naming the wrong file)."""

import contextlib
import gzip
import io
import shutil
import signal
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import QTable
from PIL import Image

from astro_cl.data.fits_maps import read_maps, write_maps
from astro_cl.exceptions import CatalogueError, SurveyError
from astro_cl.surveys import _fits
from astro_cl.surveys.ecalifa import ECALIFASurvey
from astro_cl.surveys.image_folder import ImageFolderSurvey
from astro_cl.surveys.manga import MaNGASurvey
from astro_cl.surveys.pipe3d import Pipe3DSurvey, read_pipe3d_maps
from astro_cl.surveys.sdss import SDSSSurvey

MAPS = "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"
CUTOUT = "mock000000.fits"
MAPS_FILE = "mock000000.maps.fits"


@contextlib.contextmanager
def deadline(seconds=15):
    """Fail instead of hanging (astropy's NAXIS loops ran for minutes)."""

    def expire(signum, frame):
        raise TimeoutError(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def sdss_mock(tmp_path_factory):
    """What `astro-cl simulate sdss-mock --n 1 --size 16` writes."""
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    folder = tmp_path_factory.mktemp("sdss-mock")
    SDSSMockSurvey(n=1, size=16, seed=0).write(folder, progress=False)
    return folder


@pytest.fixture
def sdss_dir(sdss_mock, tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(sdss_mock, folder)
    return folder


def _read_sdss(folder):
    with deadline(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks may warn
        return SDSSSurvey(path=folder).open()[0]


def set_card(path, hdu, keyword, value):
    """Overwrite one header card in place, as a hex editor would."""
    with fits.open(path) as hdul:
        start, stop = hdul.fileinfo(hdu)["hdrLoc"], hdul.fileinfo(hdu)["datLoc"]
    data = bytearray(path.read_bytes())
    for pos in range(start, stop, 80):
        if data[pos:pos + 8].decode().strip() == keyword:
            data[pos:pos + 80] = f"{keyword:<8}= {value:>20}".ljust(80).encode()
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"{keyword} not in HDU {hdu} of {path}")


def hdu_offset(path, name):
    with fits.open(path) as hdul:
        return hdul.fileinfo(hdul.index_of(name))["hdrLoc"]


# -- 1. hangs ----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["99999999", "2147483648"])
def test_huge_naxis_is_an_error_not_a_hang(sdss_dir, value):
    set_card(sdss_dir / CUTOUT, 0, "NAXIS", value)
    with pytest.raises(SurveyError, match=rf"{CUTOUT}: .*NAXIS = '{value}', expected an "
                                          r"integer from 0 to 999"):
        _read_sdss(sdss_dir)


def test_negative_naxis2_in_maps_file_is_an_error_not_a_hang(sdss_dir):
    set_card(sdss_dir / MAPS_FILE, 2, "NAXIS2", "-32")
    with pytest.raises(SurveyError, match=rf"{MAPS_FILE}: .*HDU 2.*NAXIS2 = '-32', expected "
                                          r"an integer >= 0"):
        _read_sdss(sdss_dir)


def test_naxis_beyond_the_file_size(sdss_dir):
    set_card(sdss_dir / CUTOUT, 1, "NAXIS1", "2147483647")
    with pytest.raises(SurveyError, match=rf"{CUTOUT}: .*HDU 1 \('U'\) declares "
                                          r"137438953408 data bytes.*bytes missing"):
        _read_sdss(sdss_dir)


def test_scan_agrees_with_astropy(shared_data):
    raw = gzip.decompress((shared_data / "manga" / MAPS).read_bytes())
    found = _fits.scan_fits(io.BytesIO(raw), len(raw), "x.fits")
    with fits.open(io.BytesIO(raw)) as hdul:
        info = [hdul.fileinfo(i) for i in range(len(hdul))]
    assert len(found) == len(info) == 48
    assert [(h, d) for h, d, _ in found] == [(i["hdrLoc"], i["datLoc"]) for i in info]


# -- 2. truncated files are errors ------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_truncated_real_maps_file(shared_data, tmp_path, compress):
    raw = gzip.decompress((shared_data / "manga" / MAPS).read_bytes())
    cut = raw[: int(len(raw) * 0.026)]  # read as 7 of its 290 maps before
    name = MAPS if compress else MAPS[: -len(".gz")]
    (tmp_path / name).write_bytes(gzip.compress(cut) if compress else cut)
    with pytest.raises(SurveyError, match=rf"{name}: .*truncated.*\d+ bytes missing"):
        MaNGASurvey(path=tmp_path).open()[0]


def test_real_maps_file_cut_at_an_extension_boundary(shared_data, tmp_path):
    raw = gzip.decompress((shared_data / "manga" / MAPS).read_bytes())
    cut = hdu_offset(io.BytesIO(raw), "SPECINDEX")
    name = MAPS[: -len(".gz")]
    (tmp_path / name).write_bytes(raw[:cut])  # a valid FITS file without the SPECINDEX maps
    with pytest.raises(SurveyError, match=rf"{name}: not a complete DAP MAPS file: no "
                                          r"\['SPECINDEX'\]"):
        MaNGASurvey(path=tmp_path).open()[0]


def test_truncated_maps_file_names_it_and_the_missing_bytes(sdss_dir):
    path = sdss_dir / MAPS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # read as 5 of its 10 maps before
    missing = -(-len(data) // 2 // 2880) * 2880 - len(data) // 2  # to the end of that block
    with pytest.raises(SurveyError, match=rf"{MAPS_FILE}: .*truncated.*{missing} bytes "
                                          "missing"):
        _read_sdss(sdss_dir)
    with pytest.raises(SurveyError, match=rf"{MAPS_FILE}: .*truncated"):
        read_maps(path)


def test_maps_file_cut_at_an_extension_boundary(sdss_dir):
    path = sdss_dir / MAPS_FILE
    path.write_bytes(path.read_bytes()[: hdu_offset(path, "SFR")])
    with pytest.raises(SurveyError, match=rf"{MAPS_FILE}: .*NEXTEND = \d+ extensions, the "
                                          r"file has 1\)"):
        _read_sdss(sdss_dir)


def test_npy_shape_edited_smaller(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 5, 4, 4), np.float32))
    path.write_bytes(path.read_bytes().replace(b"(4, 5, 4, 4)", b"(2, 5, 4, 4)"))
    with pytest.raises(SurveyError, match=r"x\.npy: .*shape \(2, 5, 4, 4\).*640 bytes more"):
        SDSSSurvey(path=path, unit="nanomaggy").open()


# -- 3. foreign exceptions become SurveyErrors naming the file ----------------------------
@pytest.mark.parametrize("new", [b"(4, 5, 4, 4 , }   ", b"(-1, 5, 4, 4), }  ",
                                 b"(99999999999999999999, 5, 4, 4), }"])
def test_npy_header_damage(tmp_path, new):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 5, 4, 4), np.float32))
    raw = path.read_bytes()
    old = b"(4, 5, 4, 4), }"
    path.write_bytes(raw.replace(old + b" " * (len(new) - len(old)), new))
    with pytest.raises(SurveyError, match=r"x\.npy: not a readable"):
        SDSSSurvey(path=path, unit="nanomaggy").open()


def test_npy_labels_header_damage(tmp_path):
    np.save(tmp_path / "x_images.npy", np.ones((3, 5, 4, 4), np.float32))
    labels = tmp_path / "x_labels.npy"
    np.save(labels, np.array([1, -1, 1]))
    labels.write_bytes(labels.read_bytes().replace(b"(3,), }", b"(3, , }"))
    with pytest.raises(CatalogueError, match=r"x_labels\.npy: not a readable"):
        SDSSSurvey(path=tmp_path / "x_images.npy", unit="nanomaggy").open()


def _pipe3d(folder):
    iy, ix = np.mgrid[:5, :6]
    n = ix.size
    table = QTable({"Name": ["MOCK1"] * n, "ix": ix.ravel().astype(np.int32),
                    "iy": iy.ravel().astype(np.int32),
                    "age_lwt": np.linspace(8, 10, n, dtype=np.float32) * u.dex(u.yr),
                    "e_age_lwt": np.full(n, 0.05, np.float32),
                    "Av_ssp": np.linspace(0, 1, n, dtype=np.float32) * u.mag})
    path = folder / "MOCK1_allpix.pipe3d.hdf5"
    table.write(path, path="SSP", serialize_meta=True, format="hdf5")
    return path


def test_damaged_hdf5_group(tmp_path):
    path = _pipe3d(tmp_path)
    data = bytearray(path.read_bytes())
    data[1024:1536] = bytes(512)  # h5py raised RuntimeError (bad symbol table node)
    path.write_bytes(bytes(data))
    with pytest.raises(SurveyError, match=r"MOCK1_allpix\.pipe3d\.hdf5: "):
        Pipe3DSurvey(path=tmp_path).open()[0]


def test_hdf5_record_type_with_overlapping_fields(tmp_path):
    path = _pipe3d(tmp_path)
    data = bytearray(path.read_bytes())
    # The compound member "e_age_lwt" (version 1 layout): name padded to 16 bytes, 4-byte
    # offset, 28 bytes of array info, then its float type: class/version byte, 3 bytes of
    # bit fields, 4-byte size, 8 bytes of bit layout, 4-byte exponent bias. A bias of 128
    # instead of 127 makes h5py read the member as float64, overlapping the next member,
    # and the HDF5 conversion then wrote out of bounds (the interpreter crashed).
    start = data.index(b"e_age_lwt\x00") + 16 + 4 + 28
    assert data[start:start + 8] == b"\x11 \x1f\x00\x04\x00\x00\x00"
    assert data[start + 16:start + 20] == (127).to_bytes(4, "little")
    data[start + 16:start + 20] = (128).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(SurveyError, match=r"table 'SSP' has a damaged record type: field "
                                          r"'Av_ssp' \(bytes \d+-\d+\) overlaps field "
                                          r"'e_age_lwt'"):
        read_pipe3d_maps(path)


def test_hdf5_huge_pixel_index(tmp_path):
    import h5py

    path = _pipe3d(tmp_path)
    with h5py.File(path, "r+") as fh:
        arr = fh["SSP"][:]
        arr["ix"][3], arr["iy"][3] = 5000, 5000  # a 20 GB grid of maps before
        del fh["SSP"]
        fh.create_dataset("SSP", data=arr)
    with pytest.raises(SurveyError, match=r"ix/iy span a 5001 x 5001 grid for 30 spaxels"):
        read_pipe3d_maps(path)


def test_labels_csv_with_header_but_no_rows(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("id,class\n")
    with pytest.raises(CatalogueError, match=r"labels\.csv: catalogue has columns "
                                             r"\['id', 'class'\] but no rows"):
        ImageFolderSurvey(path=tmp_path).open()


def test_corrupt_image_dimensions(tmp_path):
    import struct
    import zlib

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[16:24] = struct.pack(">II", 65535, 65535)  # PIL raised DecompressionBombError
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "a.png").write_bytes(bytes(data))
    survey = ImageFolderSurvey(path=tmp_path).open()
    with pytest.raises(SurveyError, match=r"a\.png: not a readable JPEG/PNG image"):
        survey[0]


# -- 4. the broken file is the one named ------------------------------------------------
def test_bad_unit_in_maps_file_names_the_maps_file(sdss_dir):
    set_card(sdss_dir / MAPS_FILE, 1, "BUNIT", "'furlongs per fortnight'")
    with pytest.raises(SurveyError, match=rf"{MAPS_FILE}: cannot parse BUNIT of 'STELLAR_MASS'"):
        _read_sdss(sdss_dir)


def test_maps_on_another_grid_name_both_files(sdss_dir):
    maps = {"av": NDData(np.zeros((8, 8)), unit=u.mag)}
    write_maps(sdss_dir / MAPS_FILE, maps)
    with pytest.raises(SurveyError, match=rf"{CUTOUT} and .*{MAPS_FILE}: .*spatial shape"):
        _read_sdss(sdss_dir)


def _ecalifa(folder, z):
    from astro_cl.surveys.mock.io import cube_wcs, write_cube

    shape = (8, 6, 5)
    out = {"flux": np.ones(shape, np.float32), "error": np.full(shape, 0.1, np.float32),
           "errweight": np.ones(shape, np.float32), "badpix": np.zeros(shape, bool),
           "flat": np.ones(shape, np.float32), "gaia_mask": np.zeros(shape[1:], np.uint8)}
    write_cube(folder / "G1.V500.drscube.fits", out, cube_wcs(10.0, 20.0, shape, 1.0, 3749.0, 2.0),
               name="G1", redshift=0.02, psf_fwhm=2.5)
    QTable({"Name": ["G1"], "z": [z]}).write(folder / "catalogue.ecsv")


def test_bad_catalogue_redshift_names_the_catalogue(tmp_path):
    _ecalifa(tmp_path, -5.0)
    with pytest.raises(CatalogueError, match=r"catalogue\.ecsv: column 'z' = -5\.0 for galaxy "
                                             r"'G1', expected a redshift >= -0\.01"):
        ECALIFASurvey(path=tmp_path).open()[0]


def test_empty_catalogue_is_a_catalogue_error(tmp_path):
    _ecalifa(tmp_path, 0.02)
    QTable({"Name": np.array([], str), "z": np.array([], float)}).write(
        tmp_path / "catalogue.ecsv", overwrite=True)
    with pytest.raises(CatalogueError, match=r"catalogue\.ecsv: catalogue has columns "
                                             r"\['Name', 'z'\] but no rows"):
        ECALIFASurvey(path=tmp_path).open()


# -- where the list is silent: nothing half-read passes as valid -------------------
def test_bands_with_different_units(sdss_dir):
    set_card(sdss_dir / CUTOUT, 3, "BUNIT", "'km/s'")
    with pytest.raises(SurveyError, match=rf"{CUTOUT}: the band extensions .* differ in BUNIT"):
        _read_sdss(sdss_dir)


def test_inverse_variance_for_some_bands_only(sdss_dir):
    set_card(sdss_dir / CUTOUT, 4, "EXTNAME", "'XX'")  # was G_IVAR
    with pytest.raises(SurveyError, match=rf"{CUTOUT}: inverse-variance extensions for some "
                                          r"bands only \(missing \['G_IVAR'\]\)"):
        _read_sdss(sdss_dir)


def test_maps_extension_renamed_onto_another_maps_error(tmp_path):
    from astropy.nddata import StdDevUncertainty

    path = tmp_path / "g.maps.fits"
    write_maps(path, {"mass": NDData(np.ones((4, 4)), unit=u.Msun,
                                     uncertainty=StdDevUncertainty(np.ones((4, 4)))),
                      "age": NDData(np.ones((4, 4)), unit=u.Gyr)})
    # AGE renamed MASS_ERR: it would become the mass uncertainty, and the age map vanish
    set_card(path, 2, "EXTNAME", "'SPARE'")
    set_card(path, 3, "EXTNAME", "'MASS_ERR'")
    with pytest.raises(SurveyError, match=r"g\.maps\.fits: extension 'MASS_ERR' has MAPNAME = "
                                          r"'age', expected 'mass'"):
        read_maps(path)
