"""The MaNGA survey: DAP MAPS files (property maps) and DRP LOGCUBE files (cubes).

Files are found by name, so opening a survey reads no FITS file:

* ``manga-<plate>-<ifudesign>-MAPS-<DAPTYPE>.fits[.gz]``: every image
  extension whose ``HDUCLAS2`` is ``DATA`` becomes maps. Multi-channel
  extensions (``EMLINE_GFLUX``, ``SPECINDEX`` ...) give one map per channel,
  named ``<extension>_<channel>`` in lower case from the ``Cnn`` header cards
  (units from ``Unn`` when present, else ``BUNIT``). The ``ERRDATA`` extension
  becomes an `~astropy.nddata.InverseVariance` uncertainty and the
  ``QUALDATA`` extension a boolean mask: the DAP's ``DONOTUSE`` bit (30) and
  non-finite values are bad.
* ``manga-<plate>-<ifudesign>-LOGCUBE[-<DAPTYPE>].fits[.gz]``: read through
  specutils' ``"MaNGA cube"`` loader (flux with units, inverse variance, mask, WCS).

The galaxy id is ``"<plate>-<ifudesign>"`` (the DRP's ``plateifu``); a DRPall or
any other catalogue with a ``plateifu`` column can be joined.
"""

import re
import warnings

import astropy.units as u
import numpy as np
from astropy.constants import c as speed_of_light
from astropy.nddata import InverseVariance, NDData

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import SurveyError, ValidationError
from astro_cl.surveys import _fits
from astro_cl.surveys.base import Survey

__all__ = ["DONOTUSE_BIT", "MaNGASurvey", "read_dap_maps"]

#: Bit of the MANGA_DAPPIXMASK that flags values not to be used.
DONOTUSE_BIT = 30
_MAPS_RE = re.compile(r"^manga-(\d+)-(\d+)-MAPS-([A-Za-z0-9_-]+)\.fits(\.gz)?$")
_CUBE_RE = re.compile(r"^manga-(\d+)-(\d+)-LOGCUBE(-[A-Za-z0-9_-]+)?\.fits(\.gz)?$")
_UNSAFE = re.compile(r"[^a-z0-9+-]+")
_CHANNEL_KEY = re.compile(r"^C(\d+)$")
#: Extensions that hold bin indices, not properties.
_SKIP = {"BINID"}
#: Extensions of every DAP MAPS file (DR15 on): a file cut at an extension boundary is
#: otherwise a valid, shorter FITS file.
_CORE = ("SPX_SKYCOO", "BINID", "STELLAR_VEL", "STELLAR_SIGMA", "EMLINE_GFLUX", "SPECINDEX")


def _channel_names(header, n):
    found = {}
    for key in header:
        m = _CHANNEL_KEY.match(key)
        if m:
            found[int(m.group(1))] = str(header[key]).strip()
    return [found.get(i + 1, f"c{i + 1:02d}") for i in range(n)]


def _channel_units(header, n, path, extname):
    default = header.get("BUNIT")
    units = []
    for i in range(n):
        text = None
        for key in (f"U{i + 1:02d}", f"U{i + 1}"):
            if key in header:
                text = header[key]
                break
        text = default if text is None else text
        if text is None or not str(text).strip():
            units.append(u.dimensionless_unscaled)  # DAP convention: no BUNIT = unitless
        else:
            units.append(_fits.parse_unit(text, path=path, keyword=f"{extname} BUNIT/Unn"))
    return units


def read_dap_maps(path, *, extensions=None):
    """Read a MaNGA DAP MAPS file into 2-D maps.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        ``manga-*-MAPS-*.fits[.gz]``.
    extensions : sequence of str, optional
        Extension names to read (default: every ``DATA`` extension but ``BINID``).

    Returns
    -------
    maps : dict of str to `~astropy.nddata.NDData`
        ``<extension>_<channel>`` (lower case) or ``<extension>`` for 2-D
        extensions, with unit, WCS, `~astropy.nddata.InverseVariance`
        uncertainty and boolean mask where the file has them.
    header : `~astropy.io.fits.Header`
        The primary header.

    Raises
    ------
    astro_cl.exceptions.SurveyError
        If the file is not FITS, an extension is missing or has an unexpected shape.
    """
    with _fits.reading(path, "MaNGA MAPS file"), _fits.open_fits(path) as hdul:
        primary = _fits.get_hdu(hdul, 0, path).header.copy()
        try:
            names = [h.name for h in hdul]
        except _fits.READ_ERRORS as exc:
            msg = f"{path}: cannot list extensions ({type(exc).__name__}: {exc})"
            raise SurveyError(msg) from exc
        if extensions is None:
            wanted = [n for n in names[1:] if n not in _SKIP
                      and str(hdul[n].header.get("HDUCLAS2", "")).strip() == "DATA"]
            if not wanted:
                msg = f"{path}: no DATA extensions (is this a DAP MAPS file?)"
                raise SurveyError(msg)
        else:
            wanted = [str(e).upper() for e in extensions]
        # Checked whatever is read: a file that lost its tail is truncated, not a subset.
        missing = [n for n in _CORE if n not in names]
        if missing:
            msg = (f"{path}: not a complete DAP MAPS file: no {missing} extension(s) among "
                   f"its {len(names)} HDUs (truncated at an extension boundary?)")
            raise SurveyError(msg)
        maps = {}
        for ext in wanted:
            maps.update(_read_extension(hdul, ext, path))
    return maps, primary


def _read_extension(hdul, ext, path):
    hdu = _fits.get_hdu(hdul, ext, path)
    data = _fits.hdu_data(hdu, path, ndim=(2, 3))
    header = hdu.header
    cube = data if data.ndim == 3 else data[None]
    ivar = mask = None
    err_name = str(header.get("ERRDATA", "")).strip()
    if err_name:
        ivar = _fits.hdu_data(_fits.get_hdu(hdul, err_name, path), path, ndim=data.ndim)
        ivar = ivar if ivar.ndim == 3 else ivar[None]
    qual_name = str(header.get("QUALDATA", "")).strip()
    if qual_name:
        bits = _fits.hdu_data(_fits.get_hdu(hdul, qual_name, path), path, ndim=data.ndim)
        if not np.issubdtype(bits.dtype, np.integer):
            msg = f"{path}: mask extension {qual_name!r} is {bits.dtype}, expected integer bits"
            raise SurveyError(msg)
        bits = bits if bits.ndim == 3 else bits[None]
        mask = (bits.astype(np.int64) & (1 << DONOTUSE_BIT)) != 0
    for other, label in ((ivar, err_name), (mask, qual_name)):
        if other is not None and other.shape != cube.shape:
            msg = (f"{path}: extension {label!r} has shape {other.shape[-2:]}x{other.shape[0]}, "
                   f"expected the shape of {ext!r} {data.shape}")
            raise SurveyError(msg)
    bad = ~np.isfinite(cube)
    mask = bad if mask is None else mask | bad
    n = cube.shape[0]
    units = _channel_units(header, n, path, ext)
    names = _channel_names(header, n) if data.ndim == 3 else [None]
    wcs = _fits.header_wcs(header, path, naxis=[1, 2]) if "CTYPE1" in header else None
    if wcs is not None:
        wcs.pixel_shape = cube.shape[:0:-1]
    out = {}
    for i, (chan, unit) in enumerate(zip(names, units, strict=True)):
        key = ext if chan is None else f"{ext}_{chan}"
        key = _UNSAFE.sub("_", key.lower()).strip("_")
        unc = None
        if ivar is not None:
            unc = InverseVariance(np.asarray(ivar[i], dtype=np.float32), copy=False)
        out[key] = NDData(np.asarray(cube[i], dtype=np.float32), unit=unit, wcs=wcs,
                          uncertainty=unc, mask=mask[i],
                          meta={"extension": ext, "channel": chan, "file": str(path)})
    return out


class MaNGASurvey(Survey):
    """MaNGA DAP MAPS and DRP LOGCUBE files, with an optional catalogue (e.g. DRPall).

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A MAPS/LOGCUBE file or a directory searched recursively for them.
    catalogue_file : str or `~pathlib.Path`, optional
        Table with a ``join`` column (DRPall: ``plateifu``).
    join : str, optional
        Catalogue column holding ``"<plate>-<ifudesign>"``.
    extensions : sequence of str, optional
        DAP extensions to read (default: every DATA extension but ``BINID``).
    cubes : bool, optional
        Also read LOGCUBE files when present (default True).
    catalogue : str or `~pathlib.Path`, optional
        Deprecated former name of ``catalogue_file`` (warns with
        `~astro_cl.exceptions.AstroCLDeprecationWarning`; ``catalogue`` is the
        opened table).

    Attributes
    ----------
    galaxies_without_row_, rows_without_data_ : list of str
        Mismatches between files and catalogue (reported with a warning).
    """

    name = "manga"
    description = "SDSS-IV MaNGA DAP MAPS (maps with IVAR/MASK) and DRP LOGCUBE files."
    default_kind = "maps"
    renamed_params = {"catalogue": "catalogue_file"}

    def __init__(self, *, path=None, catalogue_file=None, join="plateifu", extensions=None,
                 cubes=True, catalogue=None):
        self.path = path
        self.catalogue_file = self._renamed_param("catalogue", catalogue, catalogue_file)
        self.join = join
        self.extensions = extensions
        self.cubes = cubes

    def _open(self):
        root = _fits.check_directory(self.path, self.name)
        files = ([root] if root.is_file()
                 else sorted(p for p in root.rglob("manga-*") if p.is_file()))
        found = {}
        for f in files:
            for kind, regex in (("maps_file", _MAPS_RE), ("cube_file", _CUBE_RE)):
                m = regex.match(f.name)
                if m:
                    gid = f"{int(m.group(1))}-{int(m.group(2))}"
                    entry = found.setdefault(gid, {"maps_file": "", "cube_file": ""})
                    if entry[kind]:
                        msg = (f"{root}: two {kind.split('_')[0]} files for {gid}: "
                               f"{entry[kind]}, {f}")
                        raise SurveyError(msg)
                    entry[kind] = str(f)
        if not found:
            msg = (f"{root}: no MaNGA files (expected manga-<plate>-<ifu>-MAPS-<DAPTYPE>.fits[.gz] "
                   f"or manga-<plate>-<ifu>-LOGCUBE.fits[.gz])")
            raise SurveyError(msg)
        ids = sorted(found)
        extra = {k: np.array([found[i][k] for i in ids], dtype=str)
                 for k in ("maps_file", "cube_file")}
        extra["plate"] = np.array([int(i.split("-")[0]) for i in ids])
        extra["ifudesign"] = np.array([int(i.split("-")[1]) for i in ids])
        table = None if self.catalogue_file is None else _fits.read_table(self.catalogue_file)
        cat, self.galaxies_without_row_, self.rows_without_data_ = _fits.join_catalogue(
            ids, extra, table, self.join, source=self.catalogue_file, survey_name=self.name)
        if not any(extra["maps_file"]):
            self.default_kind = "cube"
        cat.meta.update({"survey": self.name, "path": str(root), "instrument": "SDSS/MaNGA"})
        return cat

    def _read_record(self, index):
        row = self.catalogue[index]
        gid = str(row["id"])
        maps_file, cube_file = str(row["maps_file"]), str(row["cube_file"])
        maps, header, cube, wave, psf = {}, None, None, None, None
        z = _fits.row_redshift(row, self.catalogue_file, names=("z", "nsa_z"))
        # Each file is read under its own guard, so that an error names the broken one.
        if maps_file:
            with _fits.reading(maps_file, "MaNGA MAPS file"):
                maps, header = read_dap_maps(maps_file, extensions=self.extensions)
                z, psf = self._header_meta(header, z, maps_file)
        if self.cubes and cube_file:
            with _fits.reading(cube_file, "MaNGA LOGCUBE"):
                cube = self._read_cube(cube_file)
                sa = cube.spectral_axis.to(u.AA, equivalencies=u.spectral())
                wave = u.Quantity([sa.min(), sa.max()])
                if header is None:
                    header = cube.meta.get("header") or {}
                    z, psf = self._header_meta(header, z, cube_file)
        if not maps and cube is None:
            msg = f"survey {self.name!r}: galaxy {gid} has no MAPS file and cubes=False"
            raise SurveyError(msg)
        header = header or {}
        wcs = next((m.wcs for m in maps.values() if m.wcs is not None), None)
        if wcs is None and cube is not None and cube.wcs is not None:
            wcs = cube.wcs.celestial
        with _fits.reading(maps_file or cube_file, "MaNGA WCS and header cards"):
            observing = ObservingMeta(
                pixel_scale=_fits.pixel_scale(wcs), redshift=z, psf_fwhm=psf,
                wavelength_range=wave, instrument="SDSS/MaNGA")
        try:
            return GalaxyRecord(id=gid, survey=self.name, cube=cube, maps=maps, properties=row,
                                observing=observing,
                                meta={"maps_file": maps_file, "cube_file": cube_file,
                                      "daptype": header.get("DAPTYPE")})
        except ValidationError as exc:
            files = " / ".join(f for f in (cube_file, maps_file) if f)
            what = "LOGCUBE and MAPS disagree" if cube_file and maps_file else "invalid record"
            msg = f"{files}: {what}: {exc}"
            raise SurveyError(msg) from exc

    @staticmethod
    def _header_meta(header, z, path):
        """Redshift (catalogue first, else the DAP's input cz) and PSF FWHM from a header."""
        if z is None and "SCINPVEL" in header:  # the DAP's input cz
            z = float(header["SCINPVEL"]) * u.km / u.s / speed_of_light
            z = float(z.decompose())
            if not np.isfinite(z) or z < -0.01:
                msg = (f"{path}: SCINPVEL = {header['SCINPVEL']!r} gives redshift {z}, "
                       "expected >= -0.01")
                raise SurveyError(msg)
        psf = next((header[k] for k in ("RFWHM", "GFWHM") if k in header), None)
        if psf is not None:
            psf = float(psf) * u.arcsec
            if not np.isfinite(psf.value) or psf.value < 0:
                msg = f"{path}: PSF FWHM card = {psf}, expected a non-negative finite angle"
                raise SurveyError(msg)
        return z, psf

    def _read_cube(self, path):
        from specutils import Spectrum

        with _fits.open_fits(path) as hdul:
            for ext in ("FLUX", "IVAR", "MASK"):
                _fits.get_hdu(hdul, ext, path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", u.UnitsWarning)
                    cube = Spectrum.read(hdul, format="MaNGA cube")
            except _fits.READ_ERRORS as exc:
                msg = f"{path}: cannot read as a MaNGA LOGCUBE ({type(exc).__name__}: {exc})"
                raise SurveyError(msg) from exc
        if cube.flux.ndim != 3:
            msg = f"{path}: FLUX has shape {cube.flux.shape}, expected 3-D"
            raise SurveyError(msg)
        return cube
