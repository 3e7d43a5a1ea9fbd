"""The `Augmenter` interface.

Augmenters transform a `~astro_cl.data.batch.TensorBatch` (data, mask,
uncertainty carried together) on whatever device the batch lives on, drawing
every random number from an explicit `torch.Generator`: the same seed gives the
same views. Chains of augmenters are `~astro_cl.augment.compose.Compose`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self, TypeAlias

import numpy as np

from astro_cl.base import Component
from astro_cl.exceptions import ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from astropy.nddata import NDData

    from astro_cl.data.batch import TensorBatch

    # what `Augmenter.fusion` offers: (n, apply), apply(batch, generator) standing
    # for the first n steps of the chain
    Fusion: TypeAlias = tuple[int, Callable[[TensorBatch, torch.Generator], TensorBatch]]

__all__ = ["SPACES", "Augmenter", "make_generator"]

#: What an augmenter works on (its ``space``): ``"cube"``, the spectral
#: channels of an IFU cube (needs ``batch.meta["wavelength"]``, runs before a
#: preprocessor); ``"image"``, model-input images (after a preprocessor);
#: ``"any"``, whatever the channels are.
SPACES = ("image", "cube", "any")


def make_generator(seed: int | torch.Generator | None = None,
                   device: str | torch.device = "cpu") -> torch.Generator:
    """Return a `torch.Generator` seeded from ``seed``.

    Parameters
    ----------
    seed : int, `torch.Generator` or None
        A generator is returned as is; None draws a fresh seed from the OS
        (not reproducible: pass an int for reproducible views).
    device : str or `torch.device`, optional
        Device of a new generator.

    Returns
    -------
    generator : `torch.Generator`
    """
    import torch

    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    gen.manual_seed(int(seed))
    return gen


class Augmenter(Component):
    """Base class of batched, seeded data augmentations.

    Subclasses implement `transform`; `__call__` validates the input and
    output. Augmenters are stateless unless they override `fit`.

    Inside a `~astro_cl.augment.compose.Compose` chain, later steps may
    overwrite a step's output tensors in place (never the batch the chain was
    called with), so `transform` must return new tensors or tensors of its
    input batch, not buffers it keeps between calls.

    Two class attributes say where a step may go in a chain (``Compose``
    checks the order): ``space`` (one of `SPACES`) and ``changes_channels``
    (whether the output channels are not the input ones, as for a
    preprocessor turning spectra into PCA images). A ``"cube"`` step may not
    follow a step that changes the channel axis; an ``"image"`` step may not
    precede one.
    """

    #: Whether the transform conserves the total flux of each channel.
    conserves_flux: ClassVar[bool] = False
    #: What the step works on: "cube" (spectral channels), "image" or "any".
    space: ClassVar[str] = "any"
    #: Whether the output channels differ from the input ones (a preprocessor).
    changes_channels: ClassVar[bool] = False

    def output_channels(self, in_channels: int) -> int:
        """Return the number of channels of the output for ``in_channels`` input channels.

        Parameters
        ----------
        in_channels : int

        Returns
        -------
        channels : int
            ``in_channels`` unless the step changes the channel axis (a model
            trained on the views is built for this many input channels).
        """
        return int(in_channels)

    def fusion(self, steps: list[tuple[Augmenter, float]],
               shape: tuple[int, ...]) -> Fusion | None:
        """Offer to run this step together with the steps after it in a chain.

        `~astro_cl.augment.compose.Compose` (with ``fuse=True``) asks each
        step, just before running it, whether it fuses with what follows:
        applying several steps as one can save passes over the data (one
        resampling for a run of affine maps) or random numbers (noise drawn on
        rebinned blocks). The default is never; a step that knows a faster
        equivalent of itself followed by other steps overrides this.

        Parameters
        ----------
        steps : list of (`Augmenter`, float)
            This step and the rest of the chain, each with its per-galaxy
            probability (``steps[0]`` is this step).
        shape : tuple of int
            ``(B, C, H, W)`` of the batch reaching this step.

        Returns
        -------
        fusion : (int, callable) or None
            None to run on its own; or ``(n, apply)``: the first ``n`` (2 or
            more) steps are replaced by ``apply(batch, generator)``, which
            returns the batch they would give one after the other (the same
            views up to interpolation error, or the same distribution) and
            honours each step's probability.
        """
        return None

    def fit(self, batch: TensorBatch | None = None) -> Self:
        """Learn nothing (most augmenters are stateless) and return ``self``.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`, optional
            Example data.

        Returns
        -------
        self : `Augmenter`
        """
        return self

    def transform(self, batch: TensorBatch, generator: torch.Generator) -> TensorBatch:
        """Return the augmented batch.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
            Input batch; not modified in place.
        generator : `torch.Generator`
            Source of every random number.

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        raise NotImplementedError

    def __call__(self, batch: TensorBatch, *, generator: torch.Generator | None = None,
                 seed: int | None = None) -> TensorBatch:
        """Augment a batch.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
        generator : `torch.Generator`, optional
            Source of random numbers (takes precedence over ``seed``).
        seed : int, optional
            Seed for a new generator.

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        from astro_cl.data.batch import TensorBatch

        if not isinstance(batch, TensorBatch):
            msg = f"{type(self).__name__}: expected a TensorBatch, got {type(batch).__name__}"
            raise ValidationError(msg)
        gen = generator if generator is not None else make_generator(seed, batch.device)
        out = self.transform(batch, gen)
        if not isinstance(out, TensorBatch):
            msg = f"{type(self).__name__}.transform must return a TensorBatch"
            raise ValidationError(msg)
        return out

    def apply(self, image: NDData, *, seed: int | None = None) -> NDData:
        """Augment one `~astropy.nddata.NDData` image, for inspection and plots.

        Parameters
        ----------
        image : `~astropy.nddata.NDData`
            2-D ``(H, W)`` or 3-D ``(C, H, W)`` data.
        seed : int, optional
            Random seed.

        Returns
        -------
        augmented : `~astropy.nddata.NDData`
            Same unit, WCS (of the input grid) and meta; mask and uncertainty
            carried through.
        """
        from astropy.nddata import NDData, StdDevUncertainty

        from astro_cl.data.batch import TensorBatch
        from astro_cl.data.record import uncertainty_as_std

        data = np.asarray(image.data, dtype=np.float32)
        squeeze = data.ndim == 2
        data = data[None] if squeeze else data
        mask = (np.zeros(data.shape, bool) if image.mask is None
                else np.broadcast_to(np.asarray(image.mask, bool), data.shape))
        std = uncertainty_as_std(image.uncertainty)
        batch = TensorBatch.from_arrays(
            np.where(mask, 0, data)[None], mask[None], ids=["0"],
            uncertainty=None if std is None else np.reshape(std, data.shape)[None])
        out = self(batch, seed=seed)
        pick = (lambda t: t[0, 0]) if squeeze else (lambda t: t[0])
        unc = None if out.uncertainty is None else StdDevUncertainty(pick(out.uncertainty).numpy())
        return NDData(pick(out.data).numpy(), unit=image.unit,
                      mask=pick(out.mask.expand_as(out.data)).numpy(),
                      uncertainty=unc, wcs=image.wcs, meta=dict(image.meta))
