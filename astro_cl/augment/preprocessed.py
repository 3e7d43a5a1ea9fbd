"""Per-view preprocessing: augment cubes, preprocess every view, then augment the images.

The usual pipeline preprocesses each galaxy once (cached) and augments the
preprocessed images. Augmentations that act on spectra (a velocity shift, a
sky-line mask) cannot run there: the channels are no longer wavelengths.
`PreprocessedViews` runs them on the raw cube views first and the fitted
preprocessor on every view, at the price of one preprocessing per view and
step instead of one per galaxy (see :doc:`/user_guide/augmenters`).
"""

from astro_cl.augment.base import Augmenter, make_generator
from astro_cl.exceptions import ValidationError

__all__ = ["PreprocessedViews"]


class PreprocessedViews(Augmenter):
    """Cube-space augmentations, then a fitted preprocessor, then image-space ones.

    Used as the augmenter of a contrastive model trained on raw cube batches
    (``Survey.to_tensors(kind="cube")``, whose ``meta`` holds the wavelength
    grid and the redshifts), it makes each view from the galaxy's cube:
    ``image_augmenter(preprocessor(cube_augmenter(cube)))``.

    Parameters
    ----------
    preprocessor : `~astro_cl.preprocess.Preprocessor`
        Fitted, with a ``transform_batch(batch, workers=...)`` method
        (`~astro_cl.preprocess.CubePCA` has one) and an ``n_channels``.
    cube_augmenter : `~astro_cl.augment.Augmenter`, optional
        Steps on the cubes (``space`` "cube" or "any"), e.g. ``velocity-shift``.
    image_augmenter : `~astro_cl.augment.Augmenter`, optional
        Steps on the preprocessed images (``space`` "image" or "any").
    workers : int, optional
        Threads that preprocess the galaxies of a batch concurrently (the
        work is NumPy, which releases the GIL).

    Notes
    -----
    The preprocessor runs on every view of every step: with
    `~astro_cl.preprocess.CubePCA` that costs far more than the image steps
    on a cached image (figures in ``benchmarks/README.md``, from
    ``benchmarks/bench_per_view.py``; see :doc:`/user_guide/augmenters`).
    The raw cubes also stay in memory (about
    39 MB per galaxy with uncertainties and masks at this size). The
    preprocessor is deterministic; randomness comes from the two augmenters
    only, which draw from the generator in turn.

    Examples
    --------
    >>> from astro_cl.augment import PreprocessedViews, VelocityShift
    >>> from astro_cl.preprocess import CubePCA
    >>> views = PreprocessedViews(preprocessor=CubePCA(),
    ...                           cube_augmenter=VelocityShift(velocity=(-50, 50)))
    >>> views.space, views.changes_channels, views.output_channels(1877)
    ('cube', True, 30)
    """

    name = "preprocessed-views"
    description = "Cube augmentations, a fitted preprocessor per view, then image augmentations."
    space = "cube"
    changes_channels = True

    def __init__(self, *, preprocessor, cube_augmenter=None, image_augmenter=None, workers=1):
        self.preprocessor = preprocessor
        self.cube_augmenter = cube_augmenter
        self.image_augmenter = image_augmenter
        self.workers = workers

    def _checked(self):
        """Return the validated parts: preprocessor, cube steps, image steps."""
        pre = self.preprocessor
        if not callable(getattr(pre, "transform_batch", None)):
            msg = (f"PreprocessedViews.preprocessor: {type(pre).__name__} cannot transform a "
                   "batch of cubes (it has no transform_batch method); per-view preprocessing "
                   "needs one, e.g. cube-pca")
            raise ValidationError(msg)
        for field, wrong in (("cube_augmenter", "image"), ("image_augmenter", "cube")):
            aug = getattr(self, field)
            if aug is None:
                continue
            if not isinstance(aug, Augmenter):
                msg = (f"PreprocessedViews.{field}: expected an Augmenter or None, "
                       f"got {type(aug).__name__}")
                raise ValidationError(msg)
            if aug.space == wrong or aug.changes_channels:
                what = ("changes the channel axis" if aug.changes_channels
                        else f"works in {wrong} space")
                msg = (f"PreprocessedViews.{field}: {type(aug).__name__} {what}; the "
                       f"{field.split('_')[0]} steps must keep the "
                       f"{'spectral' if field == 'cube_augmenter' else 'image'} channels")
                raise ValidationError(msg)
        return pre, self.cube_augmenter, self.image_augmenter

    def output_channels(self, in_channels):
        """Return the channels of the views: the preprocessor's, through the image steps.

        Parameters
        ----------
        in_channels : int
            Channels (wavelengths) of the input cubes; not used.

        Returns
        -------
        channels : int
        """
        pre, _, image_aug = self._checked()
        channels = getattr(pre, "n_channels", None)
        if channels is None:
            msg = (f"PreprocessedViews.preprocessor: {type(pre).__name__} does not say how many "
                   "channels it makes (no n_channels)")
            raise ValidationError(msg)
        return int(channels) if image_aug is None else image_aug.output_channels(channels)

    def transform(self, batch, generator):
        """Augment the cubes, preprocess every view, augment the images.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
            Raw cubes with ``meta["wavelength"]`` and ``meta["redshift"]``.
        generator : `torch.Generator`

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
            Preprocessed, augmented images on the batch's device.
        """
        pre, cube_aug, image_aug = self._checked()
        if batch.wavelength is None:
            msg = (f"PreprocessedViews: the batch ({batch.data.shape[1]} channels) has no "
                   "meta['wavelength']: it is not a cube batch. The views are made from raw "
                   "cubes (a survey read with kind='cube'); preprocessed images, such as a "
                   "cache or embed(n_views > 1) gives, cannot be augmented by it")
            raise ValidationError(msg)
        views = batch if cube_aug is None else cube_aug(batch, generator=generator)
        images = pre.transform_batch(views, workers=int(self.workers))
        return images if image_aug is None else image_aug(images, generator=generator)

    def preprocess(self, batch):
        """Preprocess a cube batch without augmenting it (e.g. to embed the galaxies).

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        pre, _, _ = self._checked()
        return pre.transform_batch(batch, workers=int(self.workers))

    def two_views(self, batch, *, generator=None, seed=None):
        """Return two independently augmented, preprocessed views of a cube batch.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
        generator : `torch.Generator`, optional
        seed : int, optional

        Returns
        -------
        view1, view2 : `~astro_cl.data.batch.TensorBatch`
        """
        gen = generator if generator is not None else make_generator(seed, batch.device)
        n = len(batch)
        both = self(batch.repeat(2), generator=gen)
        return both.chunk(0, n), both.chunk(n, 2 * n)
