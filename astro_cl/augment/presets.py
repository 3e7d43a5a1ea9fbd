"""Ready-made augmentation chains of the two studies astro_cl generalises."""

__all__ = ["ecalifa_views", "picasso_augmentations"]


def ecalifa_views(*, noise_p=0.5, blur_p=0.5, star_p=0.5, rebin_p=0.5, max_shift=16,
                  preprocessor=None):
    """Return the eCALIFA contrastive-learning augmentation chain.

    Martinez-Solaeche et al. (2024, A&A 688, A160): every view is rotated by
    a random angle (1-359 deg, cubic interpolation) with a random x or y flip
    and shifted by up to +-16 px; noise ``cube * (1 + N(0,1)/SN)`` (SN a random
    integer 1-10) and a ``sigma = 1`` px Gaussian blur are each applied to
    one of the two views, which with independent views is probability 1/2
    per view; foreground-star masks (real when the batch has them, synthetic
    otherwise) and the "redshift" block-sum rebinning by 1-5 are applied
    with the given probabilities (the paper does not state them).

    The study adds the noise and rebins the data cubes before the PCA. On
    images of a `~astro_cl.preprocess.CubePCA` (the usual, cached path) pass
    that preprocessor: the noise and the rebinning are then
    `~astro_cl.augment.PCASpaceNoise` and `~astro_cl.augment.PCASpaceRebin`,
    which carry the cube operations through the PCA. Without it they are
    `~astro_cl.augment.MultiplicativeNoise` and `~astro_cl.augment.Rebin`,
    right for images whose channels are fluxes (or for raw cubes).

    Parameters
    ----------
    noise_p, blur_p, star_p, rebin_p : float, optional
        Per-galaxy probabilities of the noise, blur, star-mask and rebinning steps.
    max_shift : int, optional
        Largest translation in pixels.
    preprocessor : `~astro_cl.preprocess.CubePCA`, optional
        The (fitted, or fitted before the first batch) preprocessor whose
        images are augmented.

    Returns
    -------
    chain : `~astro_cl.augment.compose.Compose`
        Apply it twice (`~astro_cl.augment.compose.Compose.two_views`) for two views.
    """
    from astro_cl.augment.compose import Compose
    from astro_cl.augment.geometric import RandomRotation, RandomTranslation
    from astro_cl.augment.masking import StarMask
    from astro_cl.augment.pca_space import PCASpaceNoise, PCASpaceRebin
    from astro_cl.augment.photometric import GaussianBlur, MultiplicativeNoise
    from astro_cl.augment.rebin import Rebin

    if preprocessor is None:
        noise, rebin = MultiplicativeNoise(sn=(1, 10)), Rebin(factor=(1, 5))
    else:
        noise = PCASpaceNoise(preprocessor=preprocessor, sn=(1, 10))
        rebin = PCASpaceRebin(preprocessor=preprocessor, factor=(1, 5))
    return Compose(steps=[
        (noise, noise_p),
        (rebin, rebin_p),
        (RandomRotation(angle=(1.0, 359.0), flip=True, mode="bicubic"), 1.0),
        (RandomTranslation(max_shift=max_shift), 1.0),
        (GaussianBlur(sigma=1.0), blur_p),
        (StarMask(source="auto", radius=(2.0, 16.0), max_radius=16.0), star_p),
    ])


def picasso_augmentations():
    """Return the PICASSSO augmentations: 90-degree rotations, flips and transposes.

    Buck & Wolf (2021): the eight symmetries of the square, applied to the
    images and their property maps together (pixel exact).

    Returns
    -------
    chain : `~astro_cl.augment.compose.Compose`
    """
    from astro_cl.augment.compose import Compose
    from astro_cl.augment.geometric import RandomFlip, RandomRot90

    return Compose(steps=[(RandomRot90(transpose=True), 1.0), (RandomFlip(), 1.0)])
