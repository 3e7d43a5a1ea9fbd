"""The PICASSSO study (Buck & Wolf 2021) as one call: ugriz images to resolved property maps.

`run_picasso_study` takes an image survey whose records carry truth maps (the
``sdss-mock`` survey, or any survey with ``maps``), scales and caches the
images with their maps, trains the U-Net (`~astro_cl.models.regressor.CNNRegressor`)
with the study's augmentations on a training split, predicts the maps of the
held-out galaxies and measures them as the study did
(`~astro_cl.tasks.MapMetrics`: bias and scatter of the quantity integrated
within two half-mass radii, beside the study's numbers). The returned
`PicassoStudy` holds every product and draws the report::

    from astro_cl.surveys.sdss_mock import SDSSMockSurvey
    from astro_cl.studies import run_picasso_study

    survey = SDSSMockSurvey(n=800, size=64, seed=0)
    study = run_picasso_study(survey, "picasso-out",
                              unet={"width": 0.1875, "epochs": 15, "lr": 2e-3},
                              seed=0)
    print(study.metrics["property", "sigma", "mu", "study_sigma"])
    study.report("picasso-out/report")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from astro_cl.studies.report import (
    MAP_CHECKS,
    acceptance_values,
    check_acceptance,
    describe_augmenter,
)

if TYPE_CHECKING:
    import os
    from pathlib import Path

    import astropy.units as u
    from astropy.nddata import NDData
    from astropy.table import QTable
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

    from astro_cl.augment.base import Augmenter
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.preprocess.cache import CachedArrays
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.surveys.base import Survey
    from astro_cl.tasks.base import TaskOutputs
    from astro_cl.tasks.maps import MapMetrics

__all__ = ["PICASSSO_TARGETS", "PicassoStudy", "run_picasso_study"]

#: Maps the U-Net predicts by default. The network regresses log10 of linear,
#: non-negative maps, and the maps already in dex (metallicities) as they are.
PICASSSO_TARGETS = ("stellar_mass", "metallicity", "age_mw", "sfr", "gas_mass",
                    "gas_metallicity")


def _to_unit(nd: NDData, unit: u.UnitBase) -> NDData:
    """Return an NDData map converted to ``unit`` (data, uncertainty and meta)."""
    from astropy.nddata import NDData, StdDevUncertainty

    factor = (1.0 * nd.unit).to_value(unit)
    unc = None if nd.uncertainty is None else \
        StdDevUncertainty(np.asarray(nd.uncertainty.array) * factor)
    return NDData(np.asarray(nd.data) * np.float32(factor), unit=unit, wcs=nd.wcs,
                  uncertainty=unc, meta=dict(nd.meta))


def _no_stage(name: str) -> None:
    """Default stage callback: announce nothing."""


def run_picasso_study(survey: Survey, out: str | os.PathLike[str], *,
                      targets: Sequence[str] = PICASSSO_TARGETS,
                      unet: Mapping[str, Any] | None = None, test_fraction: float = 0.2,
                      scaler: Mapping[str, Any] | None = None, n_scale: int = 100,
                      augmenter: Augmenter | None = None, seed: int = 0,
                      threads: int | None = None, device: str | None = None,
                      progress: bool = True,
                      stage: Callable[[str], object] | None = None) -> PicassoStudy:
    """Run the PICASSSO image-to-maps study on an image survey with truth maps.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
        Images with property maps (e.g. ``sdss-mock``).
    out : str or `~pathlib.Path`
        Output folder: ``models/`` (the fitted image scaler and the U-Net) and
        ``cache/`` (the scaled images with their maps).
    targets : sequence of str, optional
        Maps to predict.
    unet : dict, optional
        Parameters of `~astro_cl.models.regressor.CNNRegressor` and training
        settings (`~astro_cl.training.TrainerConfig`), the study's by default:
        13 epochs, batches of 16, lr 1e-5 / 10 after epochs 8 and 10.
    test_fraction : float, optional
        Fraction of the galaxies held out for the measurement.
    scaler : dict, optional
        Parameters of `~astro_cl.preprocess.ImageScaler`.
    n_scale : int, optional
        Galaxies (the first ones) the scaler is fitted on.
    augmenter : `~astro_cl.augment.Augmenter`, optional
        The augmentations (default: the study's,
        `~astro_cl.augment.picasso_augmentations`).
    seed : int, optional
        Seed of the split and the network.
    threads : int, optional
        Worker threads and torch threads (default: at most 2).
    device : str, optional
        Torch device of the network.
    progress : bool, optional
        Show progress bars.
    stage : callable, optional
        Called with the name of each stage as it starts.

    Returns
    -------
    study : `PicassoStudy`
    """
    from pathlib import Path

    from astro_cl.augment.presets import picasso_augmentations
    from astro_cl.models.regressor import CNNRegressor
    from astro_cl.preprocess.cache import PreprocessedCache
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.studies.sources import SourceView
    from astro_cl.tasks import MapMetrics
    from astro_cl.utils.cpus import available_cpus
    from astro_cl.utils.parallel import imap_ordered

    stage = stage or _no_stage
    out = Path(out)
    models_dir = out / "models"
    threads = threads or min(2, available_cpus())
    targets = list(targets)

    stage("simulating sdss-mock ugriz images and caching them with truth maps")
    n_sd = len(survey)
    n_fit = min(n_sd, int(n_scale))
    image_scaler = ImageScaler(**(scaler or {})).fit(
        list(imap_ordered(survey.__getitem__, range(n_fit), workers=threads)))
    image_scaler.save(models_dir / "image_scaler")
    cache = PreprocessedCache(out / "cache", verify="size")
    cutouts = cache.get_or_build(survey, preprocessor=image_scaler, targets=targets,
                                 progress=progress, workers=threads)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_sd)
    n_test = max(2, round(float(test_fraction) * n_sd))
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    train = SourceView(cutouts, rows=train_rows)
    test = SourceView(cutouts, rows=test_rows)

    stage("training the U-Net (cnn-regressor) and predicting held-out maps")
    augmenter = picasso_augmentations() if augmenter is None else augmenter
    model_args: dict[str, Any] = {"seed": seed, "num_threads": threads, "progress": progress}
    if device is not None:
        model_args["device"] = device
    unet_params, settings = CNNRegressor.split_settings(dict(unet or {}))
    regressor = CNNRegressor(augmenter=augmenter, target_names=tuple(targets), **unet_params)
    regressor.fit(train, trainer={**model_args, **settings})
    regressor.save(models_dir / "unet.pt")
    # the maps the network was trained against, from the cache (no re-simulation)
    truth = cutouts.target_maps(test_rows)
    predicted = [{name: _to_unit(m, truth[i][name].unit) for name, m in maps.items()}
                 for i, maps in enumerate(regressor.predict_maps(test))]
    metrics = MapMetrics(properties=targets).fit(predicted, truth)
    return PicassoStudy(survey=survey, scaler=image_scaler, cutouts=cutouts,
                        train_rows=train_rows, test_rows=test_rows, regressor=regressor,
                        truth=truth, predicted=predicted, metrics=metrics,
                        settings={"n_scale": n_fit, "augmenter": augmenter,
                                  "image_shape": tuple(int(s) for s in cutouts.shape[1:]),
                                  "targets": targets})


class PicassoStudy:
    """What `run_picasso_study` produced, with its report.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
    scaler : `~astro_cl.preprocess.ImageScaler`
        The fitted image scaling.
    cutouts : `~astro_cl.preprocess.cache.CachedArrays`
        The cached scaled images with their maps.
    train_rows, test_rows : `numpy.ndarray`
        Rows of ``cutouts`` used for training and held out.
    regressor : `~astro_cl.models.regressor.CNNRegressor`
        The trained U-Net.
    truth, predicted : list of dict of str to `~astropy.nddata.NDData`
        True and predicted maps of the held-out galaxies (in the same units).
    metrics : `~astro_cl.tasks.MapMetrics`
        The fitted measurement.
    settings : dict
        What the run used.
    """

    #: Short name of the study, for combined reports.
    label: ClassVar[str] = "maps study (PICASSSO)"

    def __init__(self, *, survey: Survey, scaler: ImageScaler, cutouts: CachedArrays,
                 train_rows: ArrayLike, test_rows: ArrayLike, regressor: CNNRegressor,
                 truth: list[dict[str, NDData]], predicted: list[dict[str, NDData]],
                 metrics: MapMetrics, settings: Mapping[str, Any]) -> None:
        self.survey = survey
        self.scaler = scaler
        self.cutouts = cutouts
        self.train_rows = np.asarray(train_rows)
        self.test_rows = np.asarray(test_rows)
        self.regressor = regressor
        self.truth = truth
        self.predicted = predicted
        self.metrics = metrics
        self.settings = dict(settings)
        self.table = metrics.evaluate()

    def __repr__(self) -> str:
        return (f"<PicassoStudy: {len(self.train_rows)} training and {len(self.test_rows)} "
                f"held-out galaxies of {self.survey.name}>")

    @property
    def test_ids(self) -> list[str]:
        """The ids (list of str) of the held-out galaxies."""
        ids = list(self.cutouts.ids)
        return [ids[i] for i in self.test_rows]

    @property
    def history(self) -> dict[str, list[dict[str, Any]]]:
        """The U-Net's training record: ``{"unet": list of per-epoch dicts}``."""
        return {"unet": [dict(r) for r in getattr(self.regressor, "history_", [])]}

    def galaxy_table(self) -> QTable:
        """Return one row per held-out galaxy: its id and the measurement's per-galaxy columns.

        Returns
        -------
        table : `~astropy.table.QTable`
            ``id`` and the columns of `~astro_cl.tasks.MapMetrics.galaxy_columns`
            (half-mass radius, axis ratio, ``delta_<quantity>`` in dex).
        """
        from astropy.table import QTable

        table = QTable({"id": self.test_ids})
        columns = self.metrics.galaxy_columns()
        for col in ([] if columns is None else columns.colnames):
            table[col] = columns[col]
        return table

    def outputs(self) -> TaskOutputs:
        """Return what the measurement left, for its figure and headline hooks.

        Returns
        -------
        outputs : `~astro_cl.tasks.TaskOutputs`
        """
        from astro_cl.tasks.base import TaskOutputs

        return TaskOutputs(name=self.metrics.name, table=self.table,
                           tables=dict(self.metrics.extra_tables()),
                           galaxies=self.galaxy_table(), findings=self.metrics.findings(),
                           params=self.metrics.get_params(deep=False))

    def report_tables(self) -> dict[str, QTable]:
        """Return the study's tables by name.

        Returns
        -------
        tables : dict of str to `~astropy.table.QTable`
            ``map-metrics``, ``map-metrics-galaxies`` (`galaxy_table`) and the
            measurement's extra tables.
        """
        return {"map-metrics": self.table, "map-metrics-galaxies": self.galaxy_table(),
                **self.metrics.extra_tables()}

    def checks(self) -> dict[str, dict[str, Any]]:
        """Return the study's checks of `~astro_cl.studies.ACCEPTANCE` (`MAP_CHECKS`).

        The stellar-mass scatter and absolute bias (`~astro_cl.studies.ACCEPTANCE_MEDIUM`
        also checks the scatter of the mass-weighted age and metallicity over
        a constant prediction's).

        Returns
        -------
        checks : dict of str to dict
        """
        values = acceptance_values(self.report_tables())
        return check_acceptance({k: values[k] for k in MAP_CHECKS})

    def overview(self) -> list[tuple[str, str]]:
        """Say what was done: data, preprocessing, augmentations, model, training, tasks.

        Returns
        -------
        items : list of (str, str)
        """
        s = self.settings
        p = {**self.regressor.get_params(deep=False),
             **self.regressor.trainer_.get_params(deep=False)}
        shape = s["image_shape"]
        data = (f"{len(self.cutouts)} images of the {self.survey.name!r} survey "
                f"({getattr(self.survey, 'description', '')}), {shape[0]} bands of "
                f"{shape[1]} x {shape[2]} pixels, with truth maps of {', '.join(s['targets'])}; "
                f"{len(self.train_rows)} for training, {len(self.test_rows)} held out "
                f"(random split)")
        sp = self.scaler.get_params(deep=False)
        prep = (f"ImageScaler fitted on the first {s['n_scale']} images: {sp['method']} "
                f"stretch per band" + (", standardised" if sp.get("standardize") else "")
                + "; images and maps cached on disk")
        model = (f"U-Net (cnn-regressor) at width {p['width']:g} of PICASSSO's "
                 f"{tuple(p['channels'])} channels, {len(s['targets'])} output maps; loss: "
                 f"squared error of log10 maps, empty pixels weighted {p['empty_weight']:g}, "
                 f"{p['border']} border pixels cropped")
        hist = self.history["unet"]
        last = hist[-1] if hist else {}
        train = (f"{len(hist)} epochs (of {p['epochs']} planned), batches of "
                 f"{p['batch_size']}, {p['optimizer']} at lr {p['lr']:g}, schedule "
                 f"{p['schedule']}, "
                 + (f"{p['validation_fraction']:g} of the training images for validation"
                    if p["validation_fraction"] else "no validation split")
                 + (f"; final training loss {last['train_loss']:.4f}" if "train_loss" in last
                    else ""))
        tasks = ("MapMetrics on the held-out galaxies: per galaxy the quantity integrated "
                 "within an ellipse of 2 half-mass radii fitted to the true stellar-mass map, "
                 "delta = log10(true / predicted); mu (bias) and sigma (scatter) over "
                 "galaxies, in dex, beside the scatter of a constant prediction (one value "
                 "for every pixel) and, for the quantities integrated as PICASSSO defined "
                 "them (sums; metal mass Z M and age x M for metallicity and age), beside "
                 "PICASSSO's numbers; mass-weighted mean ages and metallicities have no "
                 "published counterpart")
        return [("data", data), ("preprocessing", prep),
                ("augmentations", describe_augmenter(s["augmenter"])), ("model", model),
                ("training", train), ("tasks", tasks)]

    def notes(self) -> list[tuple[str, str]]:
        """Return the warnings to show first (none).

        Returns
        -------
        notes : list
        """
        return []

    def headline(self) -> list[dict[str, Any]]:
        """Return the headline rows: the checks, then every quantity's scatter, bias and skill.

        Returns
        -------
        rows : list of dict
        """
        rows: list[dict[str, Any]] = []
        for c in self.checks().values():
            rows.append({"result": c["description"], "value": c["value"],
                         "reference": c["study"], "criterion": f"{c['sense']} {c['threshold']:g}",
                         "passed": c["passed"]})
        rows.extend(type(self.metrics).headline(self.outputs()))
        return rows

    def figures(self) -> tuple[dict[str, Figure], dict[str, str]]:
        """Draw the training curves and the maps of a typical and the worst held-out galaxy.

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report import figures as F

        figs: dict[str, Figure] = {}
        caps: dict[str, str] = {}
        hist = self.history["unet"]
        if hist:
            figs["training curves: unet"] = F.plot_training_curves(hist,
                                                                   title="training of the U-Net")
            caps["training curves: unet"] = ("Per-epoch training record of the U-Net: loss, "
                                             "learning rate, epoch time and throughput.")
        task_figs, task_caps = type(self.metrics).figures(self.outputs())
        figs.update(task_figs)
        caps.update(task_caps)
        delta = self.metrics.delta_.get("stellar_mass")
        ids = self.test_ids
        if delta is not None and np.isfinite(delta).any():
            order = np.argsort(np.where(np.isfinite(delta), np.abs(delta), np.inf))
            n_ok = int(np.isfinite(delta).sum())
            picks = [int(order[n_ok // 2]), int(order[max(0, n_ok - 1)])]
            for label, i in zip(("typical", "worst"), dict.fromkeys(picks), strict=False):
                key = f"maps: {label} held-out galaxy {ids[i]}"
                border = int(getattr(self.regressor, "border", 0) or 0)
                figs[key] = F.plot_map_panels(self.truth[i], self.predicted[i],
                                              names=list(self.predicted[i]), border=border)
                caps[key] = (f"The {label} held-out galaxy by its stellar-mass error "
                             f"(delta = {delta[i]:+.3f} dex): true (left), predicted (middle) "
                             "and residual maps (right), log10 for linear maps."
                             + (f" Grey: the outer {border} pixels, which the loss leaves out "
                                "(as PICASSSO's): the network is not trained there."
                                if border else ""))
        return figs, caps

    def report(self, folder: str | os.PathLike[str], *,
               title: str = "PICASSSO maps study") -> Path:
        """Write the study's HTML report.

        Parameters
        ----------
        folder : str or `~pathlib.Path`
        title : str, optional

        Returns
        -------
        index : `~pathlib.Path`
        """
        from astro_cl.studies.report import write_study_report

        return write_study_report(folder, [self], title=title)
