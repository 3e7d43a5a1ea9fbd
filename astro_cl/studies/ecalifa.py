"""The eCALIFA contrastive study (Martinez-Solaeche et al. 2024) as one call.

`run_ecalifa_study` takes an IFU survey whose records carry data cubes (the
real ``ecalifa`` reader or the ``ecalifa-mock`` survey) and runs the study:
the cubes become 30-channel PCA images (`~astro_cl.preprocess.CubePCA`,
cached on disk), SimCLR trains with the study's augmentations
(`~astro_cl.augment.ecalifa_views`), every galaxy is embedded, every
downstream task runs on the embedding (`~astro_cl.studies.run_tasks`), and the
encoder is trained again without the luminosity channel to compare the two
property rankings. The returned `ECALIFAStudy` holds every product and draws
the report::

    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.studies import run_ecalifa_study

    survey = ECALIFAMockSurvey(n=600, size=32, seed=0)
    study = run_ecalifa_study(survey, "ecalifa-out", pca={"fit_snr": 10.0, "standardize": True},
                              simclr={"width": 0.25, "epochs": 20, "batch_size": 64},
                              seed=0)
    print(study.ranking)
    study.report("ecalifa-out/report")
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from astro_cl.studies.report import MAP_CHECKS, check_acceptance, describe_augmenter

if TYPE_CHECKING:
    import os
    from pathlib import Path

    from astropy.table import QTable
    from matplotlib.figure import Figure

    from astro_cl.augment.base import Augmenter
    from astro_cl.data.batch import BatchSource
    from astro_cl.models.simclr import SimCLR
    from astro_cl.preprocess.cube_pca import CubePCA
    from astro_cl.studies.results import TaskResults
    from astro_cl.studies.sources import SourceView
    from astro_cl.surveys.base import Survey

__all__ = ["ECALIFA_PROPERTIES", "ECALIFAStudy", "run_ecalifa_study"]

#: Catalogue properties ranked and regressed by default: those of the study's
#: order (`~astro_cl.tasks.STUDY_ORDER`, eCALIFA catalogue names) and a few
#: more. Only those the catalogue has are used. Morphology is ranked both as the
#: numerical Hubble stage ``T_type`` (R^2, what the study comparison uses) and as
#: the class ``type`` (balanced accuracy).
ECALIFA_PROPERTIES = ("EW_Ha_cen", "T_type", "type", "ZH_LW_Re_fit", "Age_LW_Re_fit",
                      "Sigma_Mass_cen", "log_NII_Ha_cen", "log_Mass", "log_SFR_Ha", "Re_kpc",
                      "Av_gas_Re", "z", "inclination")


def _query_ids(cat: QTable, seed: int | None) -> list[str]:
    """One blue-cloud, one green-valley, one red-sequence galaxy and one at random."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(cat["id"] if "id" in cat.colnames else cat["Name"]).astype(str)
    chosen: list[str] = []
    if "sfms_class" in cat.colnames:
        classes = np.asarray(cat["sfms_class"]).astype(str)
        for c in ("BC", "GV", "RS"):
            pool = ids[classes == c]
            if pool.size:
                chosen.append(str(rng.choice(pool)))
    rest = [i for i in ids if i not in chosen]
    while len(chosen) < 4 and rest:
        chosen.append(str(rest.pop(int(rng.integers(len(rest))))))
    return chosen


def _thumbnails(source: BatchSource, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Luminosity-channel thumbnails (log L, masked spaxels at the floor) of some galaxies."""
    all_ids = list(source.ids)
    rows = np.asarray([all_ids.index(i) for i in ids], dtype=int)
    batch = source.batch(rows)
    data = batch.data[:, 0].numpy().astype(np.float32)
    mask = batch.mask[:, 0].numpy().astype(bool)
    out = {}
    for gid, img, bad in zip(ids, data, mask, strict=True):
        good = img[~bad]
        floor = float(np.min(good)) if good.size else 0.0
        out[str(gid)] = np.where(bad, floor, img) - floor
    return out


def _no_stage(name: str) -> None:
    """Default stage callback: announce nothing."""


def run_ecalifa_study(survey: Survey, out: str | os.PathLike[str], *,
                      pca: Mapping[str, Any] | None = None, pca_fit_galaxies: int = 30,
                      simclr: Mapping[str, Any] | None = None, n_views: int = 1,
                      augmenter: Augmenter | None = None, max_shift: int | None = None,
                      view_params: Mapping[str, Any] | None = None,
                      properties: Sequence[str] | None = None,
                      task_params: Mapping[str, Mapping[str, Any]] | None = None,
                      ablation: bool = True, seed: int = 0, threads: int | None = None,
                      device: str | None = None, progress: bool = True,
                      stage: Callable[[str], object] | None = None,
                      provenance: Mapping[str, Any] | None = None) -> ECALIFAStudy:
    """Run the eCALIFA contrastive study on an IFU survey.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
        A survey of data cubes with a catalogue (``ecalifa``, ``ecalifa-mock``).
    out : str or `~pathlib.Path`
        Output folder: ``models/`` (the fitted `~astro_cl.preprocess.CubePCA`
        and the SimCLR checkpoints), ``cache/`` (the preprocessed images,
        reused by a rerun with the same settings); `ECALIFAStudy.write` adds
        the results folder.
    pca : dict, optional
        Parameters of `~astro_cl.preprocess.CubePCA` (the study's by default).
    pca_fit_galaxies : int, optional
        Galaxies (evenly spaced in the survey) the PCA is fitted on.
    simclr : dict, optional
        Parameters of `~astro_cl.models.simclr.SimCLR` (width, ...) and training
        settings (`~astro_cl.training.TrainerConfig`: epochs, batch_size, lr, ...)
        over its study defaults.
    n_views : int, optional
        Augmented views per galaxy in the embedding (their median, as the study).
    augmenter : `~astro_cl.augment.Augmenter`, optional
        The augmentations (default: the study's,
        `~astro_cl.augment.ecalifa_views` with ``max_shift`` and the fitted
        `~astro_cl.preprocess.CubePCA`, so that the noise and the rebinning
        act as they would on the cubes). Its ``pca-space-*`` steps without a
        preprocessor get the fitted `~astro_cl.preprocess.CubePCA`
        (`~astro_cl.augment.config.bind_preprocessor`).
    max_shift : int, optional
        Largest translation of the default augmentations in pixels (default:
        a twelfth of the image side, the study's 16 px on 192-px cubes).
    view_params : dict, optional
        Other parameters of the default augmentations
        (`~astro_cl.augment.ecalifa_views`, e.g. ``{"star_p": 0.2}``).
    properties : list of str, optional
        Catalogue properties to rank and regress (default: those of
        `ECALIFA_PROPERTIES` the catalogue has).
    task_params : dict of str to dict, optional
        Parameters per task, merged over the study's (e.g.
        ``{"environment": {"n_permutations": 999}}``).
    ablation : bool, optional
        Train again without the luminosity channel and compare the rankings.
    seed : int, optional
        Seed of the PCA, the networks, the tasks and the query galaxies.
    threads : int, optional
        Worker threads and torch threads (default: at most 2).
    device : str, optional
        Torch device of the networks (default: the model's choice).
    progress : bool, optional
        Show progress bars.
    stage : callable, optional
        Called with the name of each stage as it starts (e.g. to time them).
    provenance : dict, optional
        Kept with the results.

    Returns
    -------
    study : `ECALIFAStudy`
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from astro_cl.augment.config import bind_preprocessor
    from astro_cl.augment.presets import ecalifa_views
    from astro_cl.models.simclr import SimCLR
    from astro_cl.preprocess.cache import PreprocessedCache
    from astro_cl.preprocess.cube_pca import CubePCA
    from astro_cl.studies.results import run_tasks
    from astro_cl.studies.sources import SourceView
    from astro_cl.tasks import PropertyCorrelation, compare_rankings
    from astro_cl.utils.cpus import available_cpus
    from astro_cl.utils.parallel import imap_ordered

    stage = stage or _no_stage
    out = Path(out)
    models_dir = out / "models"
    threads = threads or min(2, available_cpus())
    model_args: dict[str, Any] = {"seed": seed, "num_threads": threads, "progress": progress}
    if device is not None:
        model_args["device"] = device
    cat = survey.catalogue
    n_gal = len(survey)

    stage("preprocessing cubes (CubePCA, 30 channels) into the cache")
    n_fit = min(n_gal, int(pca_fit_galaxies))
    fit_idx = np.unique(np.linspace(0, n_gal - 1, n_fit).round().astype(int))
    fit_records = list(tqdm(imap_ordered(survey.__getitem__, fit_idx.tolist(), workers=threads),
                            total=len(fit_idx), desc="PCA fit cubes", disable=not progress,
                            unit="galaxy"))
    cube_pca = CubePCA(seed=seed, **(pca or {})).fit(fit_records)
    del fit_records
    cube_pca.save(models_dir / "cube_pca")
    cache = PreprocessedCache(out / "cache", verify="size")
    cubes = cache.get_or_build(survey, preprocessor=cube_pca, progress=progress, workers=threads)
    images = SourceView(cubes)

    stage("training SimCLR with the eCALIFA augmentations")
    shift = max(1, int(cubes.shape[-1]) // 12) if max_shift is None else int(max_shift)
    view_params = dict(view_params or {})
    if augmenter is None:
        views = ecalifa_views(**{"max_shift": shift, **view_params}, preprocessor=cube_pca)
    else:
        views = bind_preprocessor(augmenter, cube_pca, where="run_ecalifa_study: augmenter")
    simclr_params, settings = SimCLR.split_settings(dict(simclr or {}))
    trainer = {**model_args, **settings}
    encoder = SimCLR(augmenter=views, **simclr_params)
    encoder.fit(images, trainer=trainer)
    encoder.save(models_dir / "simclr.pt")
    embeddings = encoder.embed(images, n_views=int(n_views), seed=seed)

    stage("running the downstream tasks")
    if properties is None:
        props = [p for p in ECALIFA_PROPERTIES if p in cat.colnames] or None
    else:
        props = list(properties)
    queries = _query_ids(cat, seed)
    params: dict[str, dict[str, Any]] = {
        "property-correlation": {"properties": props, "seed": seed},
        "property-regression": {"properties": None if props is None else
                                [p for p in props if p != "type"], "seed": seed},
        "sfms-clustering": {"seed": seed},
        "environment": {"seed": seed},
        "similarity-search": {"n_neighbors": 6, "query_ids": queries},
    }
    for name, p in (task_params or {}).items():
        params.setdefault(name, {}).update(p)
    results = run_tasks(embeddings, cat, params=params, progress=progress,
                        provenance=provenance)

    study = ECALIFAStudy(survey=survey, pca=cube_pca, images=images, encoder=encoder,
                         embeddings=embeddings, results=results, queries=queries,
                         settings={"n_fit": len(fit_idx), "n_views": int(n_views),
                                   "max_shift": shift, "augmenter": views,
                                   "image_shape": tuple(int(s) for s in cubes.shape[1:])})
    if ablation:
        stage("ablation: retraining SimCLR without the luminosity channel")
        n_chan = int(cubes.shape[1])
        no_lum = SourceView(cubes, channels=list(range(1, n_chan)),
                            meta={"channels_dropped": [0]})
        # the same fitted PCA, read as making images without channel 0
        pca_nl = copy.copy(cube_pca)
        pca_nl.luminosity_channel = False
        if augmenter is None:
            views_nl = ecalifa_views(**{"max_shift": shift, **view_params},
                                     preprocessor=pca_nl)
        else:
            views_nl = bind_preprocessor(copy.deepcopy(views), pca_nl, replace=True,
                                         where="run_ecalifa_study: augmenter")
        encoder_nl = SimCLR(augmenter=views_nl, **simclr_params).fit(no_lum, trainer=trainer)
        emb_nl = encoder_nl.embed(no_lum, n_views=int(n_views), seed=seed)
        corr_nl = PropertyCorrelation(**{**params["property-correlation"], "projection": None})
        corr_nl.fit(emb_nl, cat)
        study.encoder_no_luminosity = encoder_nl
        study.ranking_no_luminosity = corr_nl.evaluate()
        study.ablation = compare_rankings(results.tables["property-correlation"],
                                          study.ranking_no_luminosity,
                                          labels=("with_luminosity", "without_luminosity"))
        encoder_nl.save(models_dir / "simclr_no_luminosity.pt")
    results.history = study.history
    if cube_pca.luminosity_channel:
        neighbours = results.tables.get("similarity-search")
        thumb_ids = list(dict.fromkeys(
            (np.asarray(neighbours["id"]).astype(str).tolist() if neighbours is not None
             else []) + [str(q) for q in queries]))
        results.thumbnails = _thumbnails(images, thumb_ids)
    return study


class ECALIFAStudy:
    """What `run_ecalifa_study` produced, with its report.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
    pca : `~astro_cl.preprocess.CubePCA`
        The fitted preprocessing.
    images : `~astro_cl.studies.SourceView`
        The cached 30-channel images.
    encoder : `~astro_cl.models.simclr.SimCLR`
        The trained encoder.
    embeddings : `~astropy.table.QTable`
        ``id`` and ``embedding`` per galaxy.
    results : `~astro_cl.studies.TaskResults`
        The downstream tasks on the embedding.
    queries : list of str
        The similarity-search query galaxies.
    settings : dict
        What the run used (``n_fit``, ``n_views``, ``max_shift``, ``augmenter``,
        ``image_shape``).

    Attributes
    ----------
    encoder_no_luminosity : `~astro_cl.models.simclr.SimCLR` or None
        The encoder trained without the luminosity channel (the ablation).
    ranking_no_luminosity : `~astropy.table.QTable` or None
        Its property ranking.
    ablation : `~astropy.table.QTable` or None
        `~astro_cl.tasks.compare_rankings` of the two rankings.
    """

    #: Short name of the study, for combined reports.
    label: ClassVar[str] = "contrastive study (eCALIFA)"

    def __init__(self, *, survey: Survey, pca: CubePCA, images: SourceView, encoder: SimCLR,
                 embeddings: QTable, results: TaskResults, queries: Sequence[str],
                 settings: Mapping[str, Any]) -> None:
        self.survey = survey
        self.pca = pca
        self.images = images
        self.encoder = encoder
        self.embeddings = embeddings
        self.results = results
        self.queries = list(queries)
        self.settings = dict(settings)
        self.encoder_no_luminosity: SimCLR | None = None
        self.ranking_no_luminosity: QTable | None = None
        self.ablation: QTable | None = None

    def __repr__(self) -> str:
        return (f"<ECALIFAStudy: {len(self.embeddings)} galaxies of {self.survey.name}, "
                f"tables {list(self.report_tables())}>")

    @property
    def ranking(self) -> QTable:
        """`~astropy.table.QTable`: the property ranking (best first)."""
        return self.results.tables["property-correlation"]

    @property
    def history(self) -> dict[str, list[dict[str, Any]]]:
        """The training records of the encoder(s): model name -> list of per-epoch dicts."""
        hist = {"simclr": [dict(r) for r in getattr(self.encoder, "history_", [])]}
        if self.encoder_no_luminosity is not None:
            hist["simclr_no_luminosity"] = [dict(r) for r in
                                            getattr(self.encoder_no_luminosity, "history_", [])]
        return hist

    def report_tables(self) -> dict[str, QTable]:
        """Return the tables of the study by name.

        Returns
        -------
        tables : dict of str to `~astropy.table.QTable`
            The task tables, and with the ablation
            ``property-correlation-no-luminosity`` and ``ablation-rankings``.
        """
        tables = dict(self.results.tables)
        if self.ranking_no_luminosity is not None:
            tables["property-correlation-no-luminosity"] = self.ranking_no_luminosity
            tables["ablation-rankings"] = self.ablation
        return tables

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write the results folder (``astro-cl report FOLDER`` draws it again).

        Parameters
        ----------
        folder : str or `~pathlib.Path`
            Receives what `~astro_cl.studies.TaskResults.write` writes, the
            ablation tables, ``history.json`` (both encoders),
            ``thumbnails.npz`` and ``embeddings.ecsv``.

        Returns
        -------
        folder : `~pathlib.Path`
        """
        from astro_cl.utils.io import atomic_path

        folder = self.results.write(folder)
        for name, table in self.report_tables().items():
            if name not in self.results.tables:
                with atomic_path(folder / "tables" / f"{name}.ecsv") as tmp:
                    table.write(tmp, format="ascii.ecsv", overwrite=True)
        with atomic_path(folder / "embeddings.ecsv") as tmp:
            self.embeddings.write(tmp, format="ascii.ecsv", overwrite=True)
        return folder

    # -- what the report says -----------------------------------------------------
    def overview(self) -> list[tuple[str, str]]:
        """Say what was done: data, preprocessing, augmentations, model, training, tasks.

        Returns
        -------
        items : list of (str, str)
        """
        from astro_cl.studies.report import describe_tasks

        survey, p, s = self.survey, self.pca.get_params(deep=False), self.settings
        shape = s["image_shape"]
        twin = getattr(survey, "twin", None)
        data = (f"{len(self.embeddings)} galaxies of the {survey.name!r} survey "
                f"({getattr(survey, 'description', '')})")
        if twin is not None:
            source = twin if isinstance(twin, str) else "given"
            data += f"; one mock galaxy per row of the catalogue {source}"
        prep = (f"CubePCA fitted on {s['n_fit']} galaxies: spectra in the rest frame, "
                f"{p['wave_range'][0]:.0f}-{p['wave_range'][1]:.0f} A resampled to "
                f"{p['step']:g} A, each spaxel divided by its median in "
                f"{p['norm_window'][0]:.0f}-{p['norm_window'][1]:.0f} A, projected on "
                f"{p['n_components']} principal components (fitted on spaxels with "
                f"S/N > {p['fit_snr']:g})"
                + ("; channel 0 = log luminosity" if p["luminosity_channel"] else "")
                + ("; channels standardised" if p["standardize"] else "")
                + f": {shape[0]} channels of {shape[1]} x {shape[2]} spaxels, cached on disk")
        enc = {**self.encoder.get_params(deep=False),
               **self.encoder.trainer_.get_params(deep=False)}
        model = (f"SimCLR: {enc['backbone']} backbone at width {enc['width']:g}, dense head "
                 f"{tuple(enc['hidden'])} -> {enc['embedding_dim']}-d embedding"
                 + (f", projection head {enc['projection_head']}" if enc.get("projection_head")
                    else " (no projection head)")
                 + f"; NT-Xent loss at temperature {enc['temperature']:g}")
        hist = self.history["simclr"]
        last = hist[-1] if hist else {}
        batch = enc["batch_size"] or "the whole training set"
        train = (f"{len(hist)} epochs (of {enc['epochs']} planned), batches of {batch}, "
                 f"{enc['optimizer']} at lr {enc['lr']:g}, schedule {enc['schedule']}"
                 + (f"; final training loss {last['train_loss']:.3f}" if "train_loss" in last
                    else "")
                 + f"; embedding = median of {s['n_views']} augmented view(s), re-normalised")
        tasks = describe_tasks(self.results)
        if self.ablation is not None:
            tasks += (" Ablation: SimCLR trained again on the same images without channel 0 "
                      "(the luminosity), rankings compared.")
        return [("data", data), ("preprocessing", prep),
                ("augmentations", describe_augmenter(s["augmenter"])), ("model", model),
                ("training", train), ("tasks", tasks)]

    def notes(self) -> list[tuple[str, str]]:
        """Return the warnings to show first (see `~astro_cl.studies.TaskResults.notes`).

        Returns
        -------
        notes : list of (str, str)
        """
        return self.results.notes()

    def headline(self) -> list[dict[str, Any]]:
        """Return the headline rows: the tasks' and the ablation's, beside the study's findings.

        Returns
        -------
        rows : list of dict
        """
        rows = self.results.headline()
        if self.ablation is not None:
            rows.append({"result": "Kendall's tau between the rankings with and without the "
                                   "luminosity channel",
                         "value": f"{self.ablation.meta['kendall_tau']:.2f} (mean |change in "
                                  f"score| {self.ablation.meta['mean_abs_delta_score']:.3f})",
                         "reference": "the luminosity channel has minimal impact",
                         "criterion": "", "passed": None})
        return rows

    def checks(self) -> dict[str, dict[str, Any]]:
        """Return the study's `~astro_cl.studies.ACCEPTANCE` checks.

        Returns
        -------
        checks : dict of str to dict
            See `~astro_cl.studies.check_acceptance`.
        """
        from astro_cl.studies.report import acceptance_values

        values = acceptance_values(self.results.tables)
        return check_acceptance({k: v for k, v in values.items() if k not in MAP_CHECKS})

    def figures(self) -> tuple[dict[str, Figure], dict[str, str]]:
        """Draw the study's figures.

        Returns
        -------
        figures : dict of str to `matplotlib.figure.Figure`
        captions : dict of str to str
        """
        from astro_cl.report.figures import plot_correlation_ranking

        figs, caps = self.results.figures(queries=self.queries,
                                          thumbnail_label="log luminosity (channel 0)")
        if self.ranking_no_luminosity is None:
            return figs, caps
        out = {}
        for name, fig in figs.items():
            out[name] = fig
            if name == "property ranking":
                key = "property ranking without the luminosity channel"
                out[key] = plot_correlation_ranking(self.ranking_no_luminosity)
                caps[key] = ("The same ranking for the encoder trained without channel 0 "
                             "(log luminosity).")
        return out, caps

    def report(self, folder: str | os.PathLike[str], *,
               title: str = "eCALIFA contrastive study") -> Path:
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

        return write_study_report(folder, [self], title=title,
                                  provenance=self.results.provenance)
