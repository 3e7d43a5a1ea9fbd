"""The eCALIFA survey: a directory of V500 data cubes plus the pyPipe3D catalogue.

File layout (CALIFA reduction v2.3, as used by the eCALIFA contrastive-learning
paper): ``<name>.V500.drscube.fits[.gz]`` with HDUs

* PRIMARY: flux, 3-D ``(n_wave, ny, nx)``, ``BUNIT`` such as
  ``10**(-16)erg s-1 cm-2 A-1``, celestial + spectral WCS (``CRVAL3``/``CDELT3``
  in Angstrom);
* ERROR: 1-sigma flux error (same shape);
* ERRWEIGHT: error weighting factor (kept out of the record);
* BADPIX: uint8, 1 = bad;
* FLAT: flat-field (kept out of the record);
* GAIA_MASK: 2-D or 3-D, non-zero on foreground stars.

Opening the survey lists the directory and reads the catalogue; no cube is
opened until its record is read. Data, error and masks of uncompressed files
are memory-mapped.
"""

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import StdDevUncertainty

from astro_cl.data.record import ObservingMeta
from astro_cl.exceptions import AstroCLWarning, CatalogueError, SurveyError
from astro_cl.surveys import _fits
from astro_cl.surveys.base import Survey
from astro_cl.utils.morphology import hubble_stage

__all__ = ["ECALIFASurvey"]

#: Flux unit of CALIFA cubes (used, with a warning, when BUNIT is missing).
CALIFA_FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 Angstrom)")
_CUBE_SUFFIXES = (".V500.drscube.fits", ".V500.drscube.fits.gz")
_CATALOGUE_NAMES = ("eCALIFA.pyPipe3D.fits", "catalogue.ecsv", "ecalifa_global.csv",
                    "ecalifa_global.ecsv")


def _spectral_header(header, path):
    """Return a copy of the header with the CALIFA spectral-axis convention filled in."""
    hdr = header.copy()
    missing = [k for k in ("CRVAL3", "CRPIX3") if k not in hdr]
    if "CDELT3" not in hdr and "CD3_3" not in hdr:
        missing.append("CDELT3")
    if missing:
        msg = f"{path}: missing spectral WCS keywords {missing} in the PRIMARY header"
        raise SurveyError(msg)
    if not str(hdr.get("CTYPE3", "")).strip():
        warnings.warn(f"{path}: no CTYPE3; assuming 'AWAV' (CALIFA air wavelengths)",
                      AstroCLWarning, stacklevel=4)
        hdr["CTYPE3"] = "AWAV"
    if not str(hdr.get("CUNIT3", "")).strip():
        warnings.warn(f"{path}: no CUNIT3; assuming Angstrom (CALIFA convention)",
                      AstroCLWarning, stacklevel=4)
        hdr["CUNIT3"] = "Angstrom"
    return hdr


class ECALIFASurvey(Survey):
    """eCALIFA V500 cubes with the pyPipe3D catalogue, the paper's labels and split.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Directory holding ``<name>.V500.drscube.fits[.gz]`` cubes.
    catalogue_file : str or `~pathlib.Path`, optional
        pyPipe3D catalogue (FITS) or an ECSV table with eCALIFA column names.
        Default: the first of ``eCALIFA.pyPipe3D.fits``, ``catalogue.ecsv``,
        ``ecalifa_global.csv`` found in ``path``; none is fine.
    join : str, optional
        Catalogue column holding the cube name (``"Name"``).
    labels : str or `~pathlib.Path`, optional
        The paper's label table (``galaxies_properties.fits``), joined on
        ``labels_join``; its columns are added (``<col>_labels`` on a clash).
    labels_join : str, optional
        Join column of the label table (``"cubename"``).
    split : str or `~pathlib.Path`, optional
        The paper's split file (``train_test_edr.npz`` with ``ID``,
        ``train_sample``, ``test_sample``); adds a ``split`` column.
    psf_fwhm : `~astropy.units.Quantity`, optional
        PSF FWHM when the header has no ``FWHM``/``PSF_FWHM`` card (CALIFA: ~2.5").
    default_pixel_scale : `~astropy.units.Quantity`, optional
        Spaxel size used (with a warning) when a cube has no celestial WCS.
    catalogue : str or `~pathlib.Path`, optional
        Deprecated former name of ``catalogue_file`` (warns with
        `~astro_cl.exceptions.AstroCLDeprecationWarning`; ``catalogue`` is the
        opened table).

    Attributes
    ----------
    cubes_without_row_ : list of str
        Cube names with no catalogue row (kept, catalogue values masked).
    rows_without_cube_ : list of str
        Catalogue names with no cube (left out).
    split_unmatched_ : list of str
        Split ids that match no cube.
    """

    name = "ecalifa"
    description = "eCALIFA V500 cubes (PRIMARY/ERROR/BADPIX/GAIA_MASK) + pyPipe3D catalogue."
    default_kind = "cube"
    renamed_params = {"catalogue": "catalogue_file"}

    def __init__(self, *, path=None, catalogue_file=None, join="Name", labels=None,
                 labels_join="cubename", split=None, psf_fwhm=2.5 * u.arcsec,
                 default_pixel_scale=0.5 * u.arcsec, catalogue=None):
        self.path = path
        self.catalogue_file = self._renamed_param("catalogue", catalogue, catalogue_file)
        self.join = join
        self.labels = labels
        self.labels_join = labels_join
        self.split = split
        self.psf_fwhm = psf_fwhm
        self.default_pixel_scale = default_pixel_scale

    # -- opening -------------------------------------------------------------
    def _find_cubes(self, folder):
        names, files = [], []
        for entry in sorted(folder.iterdir()):
            for suffix in _CUBE_SUFFIXES:
                if entry.name.endswith(suffix) and entry.is_file():
                    names.append(entry.name[: -len(suffix)])
                    files.append(entry.name)
                    break
        return names, files

    def _open(self):
        folder = _fits.check_directory(self.path, self.name)
        if not folder.is_dir():
            msg = f"survey {self.name!r}: {folder} is not a directory of cubes"
            raise SurveyError(msg)
        names, files = self._find_cubes(folder)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            msg = f"{folder}: cubes present both as .fits and .fits.gz: {dup[:10]}"
            raise SurveyError(msg)
        if not names:
            msg = (f"{folder}: no eCALIFA cubes (expected files named "
                   f"<name>{_CUBE_SUFFIXES[0]} or <name>{_CUBE_SUFFIXES[1]})")
            raise SurveyError(msg)
        cat_path = self.catalogue_file
        if cat_path is None:
            cat_path = next((folder / n for n in _CATALOGUE_NAMES if (folder / n).is_file()),
                            None)
        table = None if cat_path is None else _fits.read_table(cat_path)
        cat, self.cubes_without_row_, self.rows_without_cube_ = _fits.join_catalogue(
            names, {"file": np.asarray(files, dtype=str)}, table, self.join,
            source=cat_path, survey_name=self.name)
        if self.labels is not None:
            cat = self._add_labels(cat)
        if "type" in cat.colnames and "T_type" not in cat.colnames:
            # the Hubble type as the ordered number a regression can score (RC3 stage)
            cat["T_type"] = hubble_stage(np.asarray(cat["type"]).astype(str))
        self.split_unmatched_ = []
        if self.split is not None:
            cat["split"] = self._read_split(cat)
        cat.meta.update({"survey": self.name, "path": str(folder),
                         "catalogue_file": None if cat_path is None else str(cat_path),
                         "instrument": "PMAS/PPak V500"})
        self._folder = folder
        return cat

    def _add_labels(self, cat):
        from astropy.table import join

        labels = _fits.read_table(self.labels)
        _fits.require_column(labels, self.labels_join, self.labels)
        labels[self.labels_join] = np.char.strip(np.asarray(labels[self.labels_join]).astype(str))
        clash = [c for c in labels.colnames if c in cat.colnames and c != self.labels_join]
        if clash:
            labels.rename_columns(clash, [f"{c}_labels" for c in clash])
        missing = sorted(set(cat["id"]) - set(labels[self.labels_join]))
        if missing:
            warnings.warn(f"survey {self.name!r}: {len(missing)} cubes have no row in the label "
                          f"table {self.labels}: {missing[:20]}", AstroCLWarning, stacklevel=4)
        left = cat.copy()
        left["_order"] = np.arange(len(left))
        joined = join(left, labels, keys_left="id", keys_right=self.labels_join,
                      join_type="left")
        joined.sort("_order")
        joined.remove_column("_order")
        if self.labels_join in joined.colnames and self.labels_join not in cat.colnames:
            joined.remove_column(self.labels_join)
        return type(cat)(joined, meta=cat.meta)

    def _read_split(self, cat):
        path = Path(self.split)
        try:
            with np.load(path, allow_pickle=False) as npz:
                ids = np.char.strip(np.asarray(npz["ID"]).astype(str))
                train = np.asarray(npz["train_sample"], bool)
                test = np.asarray(npz["test_sample"], bool)
        except (OSError, ValueError, KeyError) as exc:
            msg = (f"{path}: cannot read the split (expected an .npz with ID, train_sample, "
                   f"test_sample; {type(exc).__name__}: {exc})")
            raise CatalogueError(msg) from exc
        if not ids.shape == train.shape == test.shape:
            msg = f"{path}: ID, train_sample and test_sample differ in length"
            raise CatalogueError(msg)
        label = np.where(train, "train", np.where(test, "test", ""))
        known = set(np.asarray(cat["id"]).tolist())
        # Interacting systems are split into components "<cube>_<k>"; map them to the cube.
        base = np.array([i.rsplit("_", 1)[0] if i not in known and "_" in i else i for i in ids])
        assigned = {}
        unmatched = []
        for gid, lab in zip(base.tolist(), label.tolist(), strict=True):
            if gid not in known:
                unmatched.append(gid)
            elif lab:
                prev = assigned.get(gid)
                if prev is not None and prev != lab:
                    msg = f"{path}: components of {gid!r} are in both the train and test samples"
                    raise CatalogueError(msg)
                assigned[gid] = lab
        self.split_unmatched_ = sorted(set(unmatched))
        return np.array([assigned.get(i, "") for i in cat["id"]], dtype="<U5")

    def split_ids(self, which):
        """Return the ids in one part of the paper's split.

        Parameters
        ----------
        which : {"train", "test"}

        Returns
        -------
        ids : list of str
        """
        if which not in ("train", "test"):
            msg = f"split_ids: which must be 'train' or 'test', got {which!r}"
            raise ValueError(msg)
        cat = self.catalogue
        if "split" not in cat.colnames:
            msg = f"survey {self.name!r}: no split loaded; pass split='train_test_edr.npz'"
            raise SurveyError(msg)
        return [i for i, s in zip(cat["id"], cat["split"], strict=True) if s == which]

    # -- reading -------------------------------------------------------------
    def _read_record(self, index):
        cat = self.catalogue
        row = cat[index]
        gid = str(row["id"])
        path = self._folder / str(row["file"])
        with _fits.reading(path, "eCALIFA cube"):
            return self._read_cube(gid, path, row)

    def _read_cube(self, gid, path, row):
        from specutils import Spectrum

        with _fits.open_fits(path) as hdul:
            primary = _fits.get_hdu(hdul, 0, path)
            flux = _fits.hdu_data(primary, path, ndim=3)
            header = primary.header
            shape = flux.shape
            unit = _fits.parse_unit(header.get("BUNIT"), path=path, default=CALIFA_FLUX_UNIT,
                                    convention="CALIFA")
            parts = {}
            for ext, ndims in (("ERROR", (3,)), ("BADPIX", (3,)), ("GAIA_MASK", (2, 3))):
                hdu = _fits.get_hdu(hdul, ext, path, required=ext == "ERROR")
                if hdu is None:
                    continue
                arr = _fits.hdu_data(hdu, path, ndim=ndims)
                expect = shape if arr.ndim == 3 else shape[1:]
                if arr.shape != expect:
                    msg = (f"{path}: extension {ext!r} has shape {arr.shape}, expected {expect} "
                           f"to match the flux")
                    raise SurveyError(msg)
                parts[ext] = arr
            # one boolean buffer, updated in place (no full-size temporaries)
            mask = np.isfinite(flux)
            if not mask.any():
                msg = f"{path}: the flux is all NaN/inf"
                raise SurveyError(msg)
            error = parts["ERROR"]
            np.logical_and(mask, np.isfinite(error), out=mask)
            np.logical_not(mask, out=mask)
            if "BADPIX" in parts:
                np.logical_or(mask, parts["BADPIX"], out=mask)
            star = None
            if "GAIA_MASK" in parts:
                gaia = parts["GAIA_MASK"] != 0
                star = gaia.any(axis=0) if gaia.ndim == 3 else gaia
                np.logical_or(mask, gaia if gaia.ndim == 3 else gaia[None], out=mask)
            wcs, spectral_axis, scale = self._wcs(header, path, shape)
            flux_q = u.Quantity(flux, unit, copy=False)
            uncertainty = StdDevUncertainty(error, unit=unit, copy=False)
            if wcs is not None:
                cube = Spectrum(flux=flux_q, wcs=wcs, uncertainty=uncertainty, mask=mask,
                                meta={"header": header.copy()})
            else:
                cube = Spectrum(flux=flux_q, spectral_axis=spectral_axis, spectral_axis_index=0,
                                uncertainty=uncertainty, mask=mask,
                                meta={"header": header.copy()})
            wave = cube.spectral_axis.to(u.AA, equivalencies=u.spectral())
            fwhm = header.get("PSF_FWHM", header.get("FWHM"))
            psf = self.psf_fwhm if fwhm is None else float(fwhm) * u.arcsec
            observing = ObservingMeta(
                pixel_scale=scale, psf_fwhm=psf,
                redshift=_fits.row_redshift(row, self.catalogue.meta.get("catalogue_file")),
                wavelength_range=u.Quantity([wave.min(), wave.max()]),
                instrument="PMAS/PPak V500")
            maps, maps_path = _fits.maps_beside(path, gid)
            return _fits.build_record(
                [path, maps_path], id=gid, survey=self.name, cube=cube, maps=maps,
                properties=row, observing=observing, star_mask=star,
                meta={"file": str(path)})

    def _wcs(self, header, path, shape):
        spec_hdr = _spectral_header(header, path)
        has_celestial = all(str(spec_hdr.get(k, "")).strip() for k in ("CTYPE1", "CTYPE2"))
        if has_celestial:
            wcs = _fits.header_wcs(spec_hdr, path)
            if wcs is not None and wcs.naxis == 3 and wcs.has_celestial and wcs.has_spectral:
                return wcs, None, _fits.pixel_scale(wcs)
        warnings.warn(f"{path}: no celestial WCS (CTYPE1/CTYPE2); using a spectral axis only and "
                      f"a {self.default_pixel_scale} spaxel (eCALIFA convention)",
                      AstroCLWarning, stacklevel=4)
        spec = _fits.header_wcs(spec_hdr, path, naxis=[3])
        if spec is None:
            msg = f"{path}: cannot build the spectral axis from CRVAL3/CDELT3/CRPIX3"
            raise SurveyError(msg)
        pix = np.arange(shape[0])
        wave = spec.pixel_to_world(pix)
        wave = getattr(wave, "quantity", wave)
        return None, u.Quantity(wave).to(u.AA, equivalencies=u.spectral()), (
            u.Quantity(self.default_pixel_scale).to(u.arcsec) / u.pix)
