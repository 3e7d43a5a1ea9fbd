"""An example astro_cl plugin: a survey, a preprocessor, an augmenter and an encoder.

* `ToySurvey` reads a folder of ``<id>.npy`` ugriz stacks: each file holds a
  ``(5, ny, nx)`` float array in nanomaggies, and a ``catalogue.csv`` beside
  the files lists ``id`` and ``redshift``.
* `ToyPercentileScaler` divides each band by a percentile of its good pixels,
  fitted on the training images.
* `ToyGain` multiplies each image by a random gain.
* `ToyIsolation` (in `astro_cl_toy.tasks`) scores how isolated each galaxy is in an
  embedding; its hooks add a per-galaxy column, a table, a figure and a headline
  row to astro_cl's results folders and reports.
* `ToyAutoencoder` encodes each image into a short vector from which a coarse
  (4 x 4 pixel) copy of the image can be rebuilt.

Everything here uses astro_cl's public names only.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import NDData
from astropy.table import QTable

from astro_cl import SurveyError, hookimpl
from astro_cl.augment import Augmenter
from astro_cl.data import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import ValidationError
from astro_cl.models import TorchEncoder
from astro_cl.preprocess import Preprocessor
from astro_cl.surveys import Survey
from astro_cl.training import TrainerConfig
from astro_cl_toy.tasks import ToyIsolation

__all__ = [
    "ToyAutoencoder",
    "ToyGain",
    "ToyIsolation",
    "ToyPercentileScaler",
    "ToySurvey",
    "astro_cl_register_augmenters",
    "astro_cl_register_encoders",
    "astro_cl_register_preprocessors",
    "astro_cl_register_surveys",
    "astro_cl_register_tasks",
]

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


class ToyPercentileScaler(Preprocessor):
    """Divide each band by a percentile of its good pixels over the training images.

    Parameters
    ----------
    percentile : float
        The percentile (0-100) of each band's good pixels that becomes 1.

    Attributes
    ----------
    scale_ : `numpy.ndarray`
        The fitted percentile of each band (data units).
    """

    name = "toy-percentile"
    description = "Example plugin: divide each band by a fitted percentile of its pixels."
    thread_safe = True
    _state_arrays = ("scale_",)

    def __init__(self, *, percentile=99.0):
        self.percentile = percentile

    @staticmethod
    def _stack(records):
        images = [record.images for record in records]
        if any(image is None for image in images):
            msg = "ToyPercentileScaler: every record needs images"
            raise ValidationError(msg)
        data = np.stack([np.asarray(image.data, np.float32) for image in images])
        mask = np.stack([np.broadcast_to(np.asarray(image.mask, bool), image.data.shape)
                         if image.mask is not None else np.zeros(image.data.shape, bool)
                         for image in images])
        return data, mask

    def _fit_arrays(self, X, mask=None):
        data = np.asarray(X, np.float32)
        if data.ndim != 4:
            msg = f"ToyPercentileScaler: expected (N, C, H, W) images, got shape {data.shape}"
            raise ValidationError(msg)
        bad = np.zeros(data.shape, bool) if mask is None else np.asarray(mask, bool)
        good = np.where(bad | ~np.isfinite(data), np.nan, data)
        scale = np.nanpercentile(good, float(self.percentile), axis=(0, 2, 3))
        # a band without signal keeps its values
        self.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0).astype(np.float32)

    def _fit_records(self, records):
        self._fit_arrays(*self._stack(list(records)))

    def _apply(self, data, mask):
        scale = self.scale_.reshape(1, -1, 1, 1)
        if data.shape[1] != scale.shape[1]:
            msg = (f"ToyPercentileScaler: fitted on {scale.shape[1]} bands, "
                   f"got {data.shape[1]}")
            raise ValidationError(msg)
        bad = mask | ~np.isfinite(data)
        return np.where(bad, 0, data / scale).astype(np.float32), bad

    def transform_record(self, record):
        """Scale the images of one galaxy.

        Parameters
        ----------
        record : `~astro_cl.data.GalaxyRecord`

        Returns
        -------
        data, mask, std : `numpy.ndarray`
            ``(C, H, W)`` scaled images and their mask; no uncertainty.
        """
        if not self.is_fitted:
            msg = "ToyPercentileScaler is not fitted; call fit() first"
            raise ValidationError(msg)
        data, mask = self._stack([record])
        data, mask = self._apply(data, mask)
        return data[0], mask[0], None

    def _transform_arrays(self, X, mask=None):
        data = np.asarray(X, np.float32)
        bad = np.zeros(data.shape, bool) if mask is None else np.asarray(mask, bool)
        data, bad = self._apply(data, bad)
        return data, bad, None


class ToyGain(Augmenter):
    """Multiply each image (and its uncertainty) by a random gain.

    Parameters
    ----------
    amplitude : float
        Gains are drawn uniformly in ``[1 - amplitude, 1 + amplitude]``.
    """

    name = "toy-gain"
    description = "Example plugin: multiply each image by a random gain near 1."

    def __init__(self, *, amplitude=0.1):
        self.amplitude = amplitude

    def transform(self, batch, generator):
        """Return the batch with each image multiplied by its own gain.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
        generator : `torch.Generator`

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        import torch

        amplitude = float(self.amplitude)
        if not 0 <= amplitude < 1:
            msg = f"ToyGain.amplitude: expected a number in [0, 1), got {self.amplitude!r}"
            raise ValidationError(msg)
        # every random number comes from the caller's generator
        u = torch.rand(len(batch), generator=generator, device=generator.device)
        gain = (1 + amplitude * (2 * u - 1)).to(batch.device, batch.data.dtype)
        gain = gain.view(-1, 1, 1, 1)
        unc = None if batch.uncertainty is None else batch.uncertainty * gain
        return batch.replace(data=batch.data * gain, uncertainty=unc)


def _toy_network(in_channels, hidden, embedding_dim, grid):
    """Return the autoencoder network (torch is imported here, when a model is built)."""
    import torch
    from torch import nn

    class ToyNet(nn.Module):
        """Conv -> ReLU -> ``grid x grid`` average pool -> code; a linear map back."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(grid)
            self.code = nn.Linear(hidden * grid * grid, embedding_dim)
            self.decode = nn.Linear(embedding_dim, in_channels * grid * grid)

        def forward(self, data, mask=None, *, reconstruct=False):
            if mask is not None:  # masked pixels carry no signal
                data = torch.where(mask, torch.zeros((), dtype=data.dtype), data)
            z = self.code(self.pool(torch.relu(self.conv(data))).flatten(1))
            return self.decode(z).view(len(data), in_channels, grid, grid) if reconstruct else z

    return ToyNet()


class _ReconstructionLoss:
    """Squared error between the rebuilt and the average-pooled input images."""

    def __init__(self, grid):
        self.grid = grid

    def __call__(self, module, batch, generator):
        import torch.nn.functional as F

        data = batch.data if batch.mask is None else batch.data.masked_fill(batch.mask, 0)
        target = F.adaptive_avg_pool2d(data, self.grid)
        # ``module`` is called, never unwrapped: the trainer may wrap it for
        # data parallelism or bfloat16 autocast
        return F.mse_loss(module(batch.data, batch.mask, reconstruct=True), target)


class ToyAutoencoder(TorchEncoder):
    """Encode each image into a vector from which a coarse copy of the image is rebuilt.

    Parameters
    ----------
    embedding_dim : int
        Length of the code (the embedding).
    hidden : int
        Channels of the convolution.
    grid : int
        Side of the coarse copy, in pixels.
    """

    name = "toy-autoencoder"
    description = "Example plugin: a tiny autoencoder of coarse images."
    output_type = "embedding"

    def __init__(self, *, embedding_dim=8, hidden=8, grid=4):
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.grid = grid

    def default_trainer(self):
        """Return the settings used when ``fit`` is given none (a few quick epochs).

        Returns
        -------
        trainer : `~astro_cl.training.TrainerConfig`
        """
        return TrainerConfig(lr=1e-2, epochs=5, batch_size=16, schedule="constant", seed=0)

    def build_module(self, info):
        """Return the network for ``info["in_channels"]`` input bands.

        Parameters
        ----------
        info : dict
            The description of the training inputs.

        Returns
        -------
        module : `torch.nn.Module`
        """
        return _toy_network(int(info["in_channels"]), int(self.hidden),
                            int(self.embedding_dim), int(self.grid))

    def build_loss(self, info):
        """Return the reconstruction loss.

        Parameters
        ----------
        info : dict
            The description of the training inputs (unused).

        Returns
        -------
        loss : callable
            ``loss(module, batch, generator) -> scalar tensor``.
        """
        return _ReconstructionLoss(int(self.grid))


@hookimpl
def astro_cl_register_surveys(register):
    """Register the toy survey with astro_cl."""
    register(ToySurvey)


@hookimpl
def astro_cl_register_preprocessors(register):
    """Register the toy preprocessor with astro_cl."""
    register(ToyPercentileScaler)


@hookimpl
def astro_cl_register_augmenters(register):
    """Register the toy augmenter with astro_cl."""
    register(ToyGain)


@hookimpl
def astro_cl_register_encoders(register):
    """Register the toy encoder with astro_cl."""
    register(ToyAutoencoder)


@hookimpl
def astro_cl_register_tasks(register):
    """Register the toy task with astro_cl."""
    register(ToyIsolation)
