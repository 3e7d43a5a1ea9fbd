"""An example astro_cl survey plugin: a folder of ``<id>.npy`` ugriz stacks.

Each ``<id>.npy`` file holds a ``(5, ny, nx)`` float array in nanomaggies and a
``catalogue.csv`` beside the files lists ``id`` and ``redshift``.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import NDData
from astropy.table import QTable

from astro_cl import SurveyError, hookimpl
from astro_cl.data import GalaxyRecord, ObservingMeta
from astro_cl.surveys import Survey

__all__ = ["ToySurvey", "astro_cl_register_surveys"]

BANDS = ("u", "g", "r", "i", "z")
NANOMAGGY = u.def_unit("toy_nanomaggy", 3.631e-6 * u.Jy)


class ToySurvey(Survey):
    """A folder of ``<id>.npy`` ugriz stacks with a ``catalogue.csv``.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The folder.
    """

    name = "toy"
    description = "Example plugin: a folder of <id>.npy ugriz stacks plus catalogue.csv."

    def __init__(self, *, path):
        self.path = path

    def _open(self):
        folder = Path(self.path)
        cat_path = folder / "catalogue.csv"
        if not cat_path.is_file():
            msg = f"{cat_path}: catalogue not found (expected a CSV with an 'id' column)"
            raise SurveyError(msg)
        cat = QTable.read(cat_path, format="ascii.csv")
        if "id" not in cat.colnames:
            msg = f"{cat_path}: no 'id' column; columns are {cat.colnames}"
            raise SurveyError(msg)
        return cat

    def _read_record(self, index):
        row = self.catalogue[index]
        gid = str(row["id"])
        file = Path(self.path) / f"{gid}.npy"
        data = np.load(file, mmap_mode="r")
        if data.ndim != 3 or data.shape[0] != len(BANDS):
            msg = f"{file}: expected a (5, ny, nx) ugriz stack, got shape {data.shape}"
            raise SurveyError(msg)
        images = NDData(np.asarray(data, dtype=np.float32), unit=NANOMAGGY,
                        meta={"bands": BANDS})
        return GalaxyRecord(
            id=gid, survey=self.name, images=images, properties=row,
            observing=ObservingMeta(pixel_scale=0.396 * u.arcsec, bands=BANDS,
                                    redshift=float(row["redshift"])),
        )


@hookimpl
def astro_cl_register_surveys(register):
    """Register the toy survey with astro_cl."""
    register(ToySurvey)
