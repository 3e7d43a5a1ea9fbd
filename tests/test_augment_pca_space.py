"""The study's cube noise and rebinning carried through CubePCA (astro_cl.augment.pca_space).

The reference is the study's own order: augment the cube, then preprocess.
The pca-space steps, applied to the cached images, must give what that path
gives, where the literal image-space steps (MultiplicativeNoise, Rebin on
standardised channels) do not.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from astro_cl.augment import (
    MultiplicativeNoise,
    PCASpaceNoise,
    PCASpaceRebin,
    Rebin,
    build_augmenter,
    ecalifa_views,
    make_generator,
)
from astro_cl.augment.config import augmenter_spec, bind_preprocessor, build_training_augmenter
from astro_cl.data.batch import TensorBatch
from astro_cl.exceptions import ValidationError
from astro_cl.preprocess.cube_pca import CubePCA
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey


@pytest.fixture(scope="module")
def cubes_and_images():
    survey = ECALIFAMockSurvey(n=6, size=16, seed=0)
    pca = CubePCA(n_components=8, fit_snr=5.0, standardize=True, seed=0).fit(survey)
    cube = survey.to_tensors(kind="cube")
    return pca, cube, pca.transform_batch(cube)


def _block_sum_cube(cube, f):
    """The study's "redshift": sum f x f spaxels of the cube (variances add)."""
    def block_sum(t):
        return F.avg_pool2d(t, f, divisor_override=1)

    unc = None if cube.uncertainty is None else block_sum(cube.uncertainty.square()).sqrt()
    return TensorBatch(data=block_sum(cube.data), ids=cube.ids, uncertainty=unc,
                       mask=F.max_pool2d(cube.mask.float(), f).bool(), meta=dict(cube.meta))


def test_rebin_matches_rebinning_the_cube(cubes_and_images):
    pca, cube, images = cubes_and_images
    via_cube = pca.transform_batch(_block_sum_cube(cube, 2))  # 8 x 8
    ours = PCASpaceRebin(preprocessor=pca, factor=2)(images, generator=make_generator(0))
    literal = Rebin(factor=2)(images, generator=make_generator(0))
    centre = (slice(None), slice(None), slice(4, 12), slice(4, 12))
    # blocks whose four spaxels are all in the galaxy's region: the masked
    # spaxels' luminosities are not in the images (documented)
    inside = F.avg_pool2d((~images.mask).float(), 2)[:, 0] == 1
    good = inside & ~via_cube.mask[:, 0] & ~ours.mask[centre][:, 0]
    assert int(good.sum()) > 30

    def pixels(t):
        return t.permute(1, 0, 2, 3)[:, good]

    ref, got, old = pixels(via_cube.data), pixels(ours.data[centre]), pixels(literal.data[centre])
    dex = (ref[0] - got[0]).abs() * float(pca.channel_std_[0])
    assert float(dex.max()) < 0.02  # the summed luminosity (median of a sum vs sum of medians)
    rms = ((ref[1:] - got[1:]) ** 2).mean(dim=1).sqrt()
    rms_literal = ((ref[1:] - old[1:]) ** 2).mean(dim=1).sqrt()
    spread = ref[1:].std(dim=1)
    # measured: 0.02-0.17 against spreads of 0.5-0.9 (literal: 1.5-3.5)
    assert torch.all(rms < 0.35 * spread)
    assert torch.all(rms < 0.2 * rms_literal)
    # masked blocks outside, sky-like values (not zeros) in the frame around the image
    assert bool(ours.mask[:, :, :4].all()) and bool(ours.mask[:, :, 12:].all())
    assert float(ours.data[:, 1:, :4].std()) > 0


def test_noise_matches_noise_on_the_cube(cubes_and_images):
    pca, cube, images = cubes_and_images
    sn, draws = 3, 6
    gen = torch.Generator().manual_seed(1)
    via_cube = []
    for _ in range(draws):
        noise = torch.randn(cube.data.shape, generator=gen)
        noisy = pca.transform_batch(cube.replace(data=cube.data * (1 + noise / sn)))
        good = ~noisy.mask[:, 0] & ~images.mask[:, 0]
        via_cube.append((noisy.data - images.data).permute(1, 0, 2, 3)[:, good])
    step = PCASpaceNoise(preprocessor=pca, sn=sn)
    good = ~images.mask[:, 0]
    ours = [(step(images, generator=make_generator(k)).data - images.data)
            .permute(1, 0, 2, 3)[:, good] for k in range(draws)]
    ref_std = torch.cat(via_cube, 1).std(dim=1)
    our_std = torch.cat(ours, 1).std(dim=1)
    # measured ratios 0.77-1.04 (the cube path also interpolates onto the 2 A grid)
    np.testing.assert_array_less(0.6, (our_std / ref_std).numpy())
    np.testing.assert_array_less((our_std / ref_std).numpy(), 1.4)
    # the literal image-space noise gets the luminosity channel wrong by a factor > 3
    literal = MultiplicativeNoise(sn=sn)(images, generator=make_generator(0))
    lit_std = (literal.data - images.data).permute(1, 0, 2, 3)[:, good].std(dim=1)
    assert float(lit_std[0]) > 3 * float(ref_std[0])
    # masked spaxels untouched
    out = step(images, generator=make_generator(0))
    masked = images.mask.expand_as(images.data)
    assert torch.equal(out.data[masked], images.data[masked])


def test_as_many_images_as_channels(cubes_and_images):
    """Shapes are built per axis: a batch of C images of C channels is not special."""
    pca, _, images = cubes_and_images
    n = images.data.shape[1]
    batch = images.index([i % len(images) for i in range(n)])
    for layout in (torch.contiguous_format, torch.channels_last):
        data = batch.data.contiguous(memory_format=layout)
        out = PCASpaceNoise(preprocessor=pca)(batch.replace(data=data),
                                              generator=make_generator(0))
        assert out.data.shape == batch.data.shape


def test_seeded_and_factor_one(cubes_and_images):
    pca, _, images = cubes_and_images
    for step in (PCASpaceNoise(preprocessor=pca), PCASpaceRebin(preprocessor=pca)):
        a = step(images, generator=make_generator(5)).data
        b = step(images, generator=make_generator(5)).data
        c = step(images, generator=make_generator(6)).data
        assert torch.equal(a, b) and not torch.equal(a, c)
    same = PCASpaceRebin(preprocessor=pca, factor=1)(images, generator=make_generator(0))
    assert torch.equal(same.data, images.data) and torch.equal(same.mask, images.mask)


def test_without_luminosity_channel(cubes_and_images):
    """The study's ablation: the same PCA read without channel 0; equal weights."""
    pca, _, images = cubes_and_images
    nolum = CubePCA(n_components=8, fit_snr=5.0, standardize=True, seed=0,
                    luminosity_channel=False)
    nolum.__dict__.update({k: v for k, v in pca.__dict__.items() if k.endswith("_")})
    coeffs = images.replace(data=images.data[:, 1:].contiguous())
    for step in (PCASpaceNoise(preprocessor=nolum), PCASpaceRebin(preprocessor=nolum, factor=2)):
        out = step(coeffs, generator=make_generator(0))
        assert out.data.shape == coeffs.data.shape and torch.isfinite(out.data).all()
    with pytest.raises(ValidationError, match="9 channels.*makes 8"):
        PCASpaceNoise(preprocessor=nolum)(images, generator=make_generator(0))


def test_errors_name_the_step_and_what_is_missing(cubes_and_images):
    _, _, images = cubes_and_images
    with pytest.raises(ValidationError, match="PCASpaceRebin: needs the fitted cube-pca"):
        PCASpaceRebin()(images, generator=make_generator(0))
    with pytest.raises(ValidationError, match="has no components_; expected a fitted"):
        PCASpaceNoise(preprocessor=CubePCA())(images, generator=make_generator(0))
    with pytest.raises(ValidationError, match="PCASpaceNoise.sn"):
        PCASpaceNoise(preprocessor=cubes_and_images[0], sn=0)(images,
                                                              generator=make_generator(0))


def test_configuration_binds_the_runs_preprocessor():
    steps = [{"name": "pca-space-noise", "p": 0.5, "sn": [1, 10]},
             {"name": "pca-space-rebin", "factor": [1, 5]}, {"name": "random-flip"}]
    pre = CubePCA(standardize=True)
    chain = build_training_augmenter({"steps": steps}, preprocessor=pre, where="run.toml")
    bound = [aug for aug, _ in chain.steps if hasattr(aug, "preprocessor")]
    assert len(bound) == 2 and all(aug.preprocessor is pre for aug in bound)
    # the specification leaves the run's object out (it is bound again on build)
    spec = augmenter_spec(chain)
    assert spec[:2] == [{**s, "p": float(s.get("p", 1.0))} for s in steps[:2]]
    assert all("preprocessor" not in s for s in spec)
    with pytest.raises(ValidationError, match=r"run.toml: the 'pca-space-noise' step .* no "
                                              r"\[preprocess\] table"):
        build_training_augmenter({"steps": steps}, preprocessor=None, where="run.toml")
    from astro_cl.preprocess.images import ImageScaler

    with pytest.raises(ValidationError, match="but \\[preprocess\\] is 'image-scaler'"):
        build_training_augmenter({"steps": steps}, preprocessor=ImageScaler(), where="run.toml")
    # registered under their names, like every augmenter
    assert type(build_augmenter(steps[:1]).steps[0][0]) is PCASpaceNoise


def test_ecalifa_views_with_a_preprocessor():
    pre = CubePCA()
    names = [aug.name for aug, _ in ecalifa_views(preprocessor=pre).steps]
    assert names[:2] == ["pca-space-noise", "pca-space-rebin"]
    assert [aug.name for aug, _ in ecalifa_views().steps][:2] == ["multiplicative-noise",
                                                                  "rebin"]
    # shown with the preprocessor by name (the report's one-line description)
    assert repr(PCASpaceRebin(preprocessor=pre)) == "PCASpaceRebin(preprocessor=<cube-pca>, factor=(1, 5))"


def test_bind_preprocessor_keeps_or_replaces():
    first, second = CubePCA(), CubePCA(luminosity_channel=False)
    chain = build_augmenter([{"name": "pca-space-noise"}, {"name": "random-flip"}])
    assert bind_preprocessor(chain, first) is chain
    assert chain.steps[0][0].preprocessor is first
    bind_preprocessor(chain, second)  # a bound step keeps its preprocessor
    assert chain.steps[0][0].preprocessor is first
    bind_preprocessor(chain, second, replace=True)
    assert chain.steps[0][0].preprocessor is second


def test_study_binds_its_fitted_pca_to_a_users_chain(tmp_path):
    """run_ecalifa_study gives its CubePCA to pca-space steps, and the ablation its copy."""
    import warnings

    from astro_cl.augment import Compose, RandomFlip
    from astro_cl.exceptions import AstroCLWarning
    from astro_cl.studies import run_ecalifa_study

    chain = Compose(steps=[(PCASpaceNoise(), 1.0), (PCASpaceRebin(factor=2), 0.5),
                           (RandomFlip(), 1.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroCLWarning)  # tiny samples: some tasks are skipped
        study = run_ecalifa_study(
            ECALIFAMockSurvey(n=24, size=16, seed=1), tmp_path,
            pca={"n_components": 5, "fit_snr": 5.0, "max_spectra_per_galaxy": 30,
                 "standardize": True},
            pca_fit_galaxies=6, augmenter=chain, ablation=True, progress=False,
            simclr={"width": 0.125, "hidden": (16,), "embedding_dim": 8, "epochs": 1,
                    "batch_size": 24},
            properties=["EW_Ha_cen", "log_Mass"],
            task_params={"property-correlation": {"n_bootstrap": 5, "projection": None,
                                                  "cv": 3, "n_neighbors": 3}})
    assert chain.steps[0][0].preprocessor is study.pca
    ablation_steps = study.encoder_no_luminosity.augmenter.steps
    assert ablation_steps[0][0].preprocessor.luminosity_channel is False
    assert study.pca.luminosity_channel is True
