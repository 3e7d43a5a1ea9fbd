"""Both studies end to end on simulated data: the ``astro-cl demo`` pipeline.

`run_demo` needs no download. It simulates an eCALIFA-like IFU survey (a twin
of a real catalogue when one is given, the built-in mock population
otherwise), turns every cube into the study's 30-channel PCA image (cached on
disk), trains the SimCLR encoder with the study's augmentations, embeds the
galaxies and runs every downstream task on the embedding: the property
ranking beside the study's order, clustering along the star-forming main
sequence, environment tests, similarity search and property regression, plus
the luminosity-channel ablation (the encoder retrained without channel 0).
It then simulates SDSS-like ugriz cutouts with truth maps, trains the
PICASSSO U-Net, predicts the maps of held-out galaxies and measures them as
the PICASSSO study did. Everything goes into one report folder.

Every step is a documented public call of the toolkit; this module only
chooses the sizes and wires the steps together, so it doubles as a worked
example of the API.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

from astro_cl.exceptions import AstroCLError, ValidationError

__all__ = ["ACCEPTANCE", "SIZES", "AcceptanceError", "format_summary", "run_demo"]

#: The acceptance thresholds checked at the default size: name -> (threshold, sense, text).
ACCEPTANCE = {
    "purity_bc_rs_k2": (0.85, ">=", "blue cloud vs red sequence purity, k-means k=2"),
    "r2_log_Mass": (0.5, ">=", "CV R^2 of log stellar mass from the embedding"),
    "r2_EW_Ha_cen": (0.5, ">=", "CV R^2 of EW(Halpha) from the embedding"),
    "sigma_stellar_mass": (0.10, "<=", "U-Net stellar-mass scatter within 2 R_half (dex)"),
}

#: Maps the U-Net predicts. The network regresses log10 of linear, non-negative
#: maps, so the maps stored in dex (metallicities) are not among them.
_MAP_TARGETS = ("stellar_mass", "metallicity", "age_mw", "sfr", "gas_mass", "gas_metallicity")

#: Catalogue properties ranked and regressed (those of the study's order and
#: a few more the mocks provide).
_PROPERTIES = ("EW_Ha_cen", "type", "ZH_LW_Re_fit", "Age_LW_Re_fit", "Sigma_Mass_cen",
               "log_NII_Ha_cen", "log_Mass", "log_SFR_Ha", "Re_kpc", "Av_gas_Re", "z",
               "inclination")
_REGRESSED = tuple(p for p in _PROPERTIES if p != "type")

#: Demo sizes: "small" is the default (minutes on a laptop CPU), "study"
#: approaches the studies' settings (hours on a GPU). "tiny" is for tests.
SIZES = {
    "tiny": {
        "n_ecalifa": 32, "cube_size": 16, "pca_fit_galaxies": 8, "n_views": 1,
        "pca": {"fit_snr": 5.0, "max_spectra_per_galaxy": 50, "standardize": True},
        "simclr": {"width": 0.125, "hidden": (64, 32), "embedding_dim": 16, "epochs": 2,
                   "batch_size": 24, "lr": 2e-3, "schedule": "constant", "patience": None},
        "n_sdss": 24, "image_size": 32, "test_fraction": 0.25,
        "unet": {"width": 0.0625, "epochs": 2, "batch_size": 8, "lr": 2e-3,
                 "schedule": "constant", "validation_fraction": 0.0, "border": 2},
        "projection": "pca", "n_bootstrap": 10, "n_permutations": 19,
        "n_permutations_classifier": 4, "n_init": 2,
        "environment_tests": ("energy",),
    },
    "small": {
        # fit_snr: the mock's 32 px spaxels rarely reach the study's S/N 30 (some
        # seeds have none among the 30 fit galaxies); S/N > 10 gives ~1000 spectra.
        # 400 galaxies for 12 epochs: with 200 (40 epochs) the kNN scores of the
        # embedding moved by +-0.06 between training seeds and log M* fell below
        # R^2 0.5 at some; more galaxies steady them, more epochs did not
        "n_ecalifa": 400, "cube_size": 32, "pca_fit_galaxies": 30, "n_views": 1,
        "pca": {"fit_snr": 10.0, "standardize": True},
        "simclr": {"width": 0.25, "hidden": (256, 128), "embedding_dim": 64, "epochs": 12,
                   "batch_size": 64, "lr": 1e-3, "schedule": "constant", "patience": None},
        "n_sdss": 800, "image_size": 64, "test_fraction": 0.2,
        # 45 epochs, lr / 10 after 36: a further drop to 1e-5 for 5 epochs
        # left the validation loss and the seed-0 scatter (0.090 dex) unchanged
        "unet": {"width": 0.1875, "epochs": 45, "batch_size": 16, "lr": 1e-3,
                 "schedule": {"name": "multistep", "milestones": [36], "gamma": 0.1},
                 "validation_fraction": 0.1},
        "projection": "umap", "n_bootstrap": 100, "n_permutations": 199,
        "n_permutations_classifier": 19,
        "n_init": 10, "environment_tests": ("energy",),
    },
    "medium": {
        "n_ecalifa": 600, "cube_size": 48, "pca_fit_galaxies": 80, "n_views": 5,
        "pca": {"fit_snr": 10.0, "standardize": True},
        "simclr": {"width": 0.5, "hidden": (512, 128), "embedding_dim": 64, "epochs": 40,
                   "batch_size": 128, "lr": 8e-4, "schedule": "step", "patience": 5,
                   "validation_fraction": 0.1},
        "n_sdss": 3000, "image_size": 128, "test_fraction": 0.2,
        "unet": {"width": 0.5, "epochs": 20, "batch_size": 16, "lr": 3e-4,
                 "schedule": {"name": "multistep", "milestones": [14, 17], "gamma": 0.1},
                 "validation_fraction": 0.2},
        "projection": "umap", "n_bootstrap": 200, "n_permutations": 499,
        "n_permutations_classifier": 49,
        "n_init": 10, "environment_tests": ("energy", "classifier"),
    },
    "study": {
        # eCALIFA: ~900 cubes, full conv net, whole set per step, step decay,
        # early stopping, median of augmented views. PICASSSO: 256 px, U-Net at
        # full width, lr 1e-5 / 10 after epochs 8 and 10, 13 epochs, batch 16.
        "n_ecalifa": 900, "cube_size": 96, "pca_fit_galaxies": 200, "n_views": 10,
        "pca": {"standardize": True},
        "simclr": {"width": 1.0, "hidden": (512, 128), "embedding_dim": 64, "epochs": 50,
                   "batch_size": None, "lr": 8e-4, "schedule": "step", "patience": 3,
                   "validation_fraction": 0.1},
        "n_sdss": 10000, "image_size": 256, "test_fraction": 0.2,
        "unet": {"width": 1.0, "epochs": 13, "batch_size": 16, "lr": 1e-5,
                 "schedule": "multistep", "validation_fraction": 0.2},
        "projection": "umap", "n_bootstrap": 200, "n_permutations": 999,
        "n_permutations_classifier": 99,
        "n_init": 10, "environment_tests": ("energy", "classifier"),
    },
}


class AcceptanceError(AstroCLError):
    """The demo ran but missed an acceptance threshold (``check=True``).

    Attributes
    ----------
    summary : dict
        The demo summary (see `run_demo`), with the failed checks.
    """

    def __init__(self, msg, summary=None):
        super().__init__(msg)
        self.summary = summary


class _SourceView:
    """A batch source seen through a row subset, a channel subset and extra metadata."""

    def __init__(self, source, *, rows=None, channels=None, meta=None):
        self._source = source
        self._rows = None if rows is None else np.asarray(rows, dtype=int)
        self._channels = channels
        base = getattr(source, "meta", None)
        base = dict(base.get("batch_meta", base)) if isinstance(base, dict) else {}
        self.meta = {**base, **(meta or {})}

    def __len__(self):
        return len(self._source) if self._rows is None else len(self._rows)

    @property
    def ids(self):
        ids = list(self._source.ids)
        return ids if self._rows is None else [ids[i] for i in self._rows]

    def batch(self, indices):
        rows = np.asarray(indices, dtype=int).reshape(-1)
        if self._rows is not None:
            rows = self._rows[rows]
        batch = self._source.batch(rows)
        changes = {"meta": {**batch.meta, **self.meta}}
        if self._channels is not None:
            changes["data"] = batch.data[:, self._channels]
            for name in ("mask", "uncertainty"):
                value = getattr(batch, name)
                if value is not None and value.shape[1] == batch.data.shape[1] > 1:
                    changes[name] = value[:, self._channels]
        return batch.replace(**changes)


def _to_unit(nd, unit):
    """Return an NDData map converted to ``unit`` (data, uncertainty and meta)."""
    from astropy.nddata import NDData, StdDevUncertainty

    factor = (1.0 * nd.unit).to_value(unit)
    unc = None if nd.uncertainty is None else \
        StdDevUncertainty(np.asarray(nd.uncertainty.array) * factor)
    return NDData(np.asarray(nd.data) * np.float32(factor), unit=unit, wcs=nd.wcs,
                  uncertainty=unc, meta=dict(nd.meta))


def _resolve_size(size):
    if isinstance(size, dict):
        size = dict(size)
        name = size.pop("base", "small")
        base = _resolve_size(name)
        unknown = sorted(set(size) - set(base))
        if unknown:
            msg = f"run_demo: unknown size settings {unknown}; expected some of {sorted(base)}"
            raise ValidationError(msg)
        for key, value in size.items():
            base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
        return base
    if size not in SIZES:
        msg = f"run_demo: size must be one of {sorted(SIZES)} or a dict of overrides, got {size!r}"
        raise ValidationError(msg)
    return dict(SIZES[size])


class _Stages:
    """Announce and time the pipeline stages (one line each, tqdm-safe)."""

    def __init__(self, n, progress, start=None):
        self.n = n
        self.i = 0
        self.progress = progress
        self.timings = {}
        self._name = None
        self._t0 = None
        self.start = time.perf_counter() if start is None else start

    def __call__(self, name):
        self._close()
        self.i += 1
        self._name, self._t0 = name, time.perf_counter()
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"[{self.i}/{self.n}] {name} ...")

    def _close(self):
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._t0, 2)
            self._name = None

    def finish(self):
        self._close()
        return round(time.perf_counter() - self.start, 2)


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _row(table, column, value):
    """Return the first row of ``table`` whose ``column`` equals ``value`` (or None)."""
    hits = np.flatnonzero(np.asarray(table[column]).astype(str) == str(value))
    return table[int(hits[0])] if hits.size else None


def _thumbnails(source, ids):
    """Luminosity-channel thumbnails (log L, masked spaxels at the floor) of some galaxies."""
    rows = np.asarray([source.ids.index(i) for i in ids], dtype=int)
    batch = source.batch(rows)
    data = batch.data[:, 0].numpy().astype(np.float32)
    mask = batch.mask[:, 0].numpy().astype(bool)
    out = {}
    for gid, img, bad in zip(ids, data, mask, strict=True):
        good = img[~bad]
        floor = float(np.min(good)) if good.size else 0.0
        out[str(gid)] = np.where(bad, floor, img) - floor
    return out


def run_demo(out, *, size="small", seed=0, catalogue=None, check=False, progress=True):
    """Run both studies end to end on simulated surveys and write the report.

    Steps (each a public call of the toolkit):

    1. `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey` in memory (a twin of
       ``catalogue`` when given);
    2. `~astro_cl.preprocess.ecalifa.CubePCA` fitted on a subset of galaxies,
       every cube cached as a 30-channel image by
       `~astro_cl.preprocess.cache.PreprocessedCache`;
    3. `~astro_cl.models.simclr.SimCLR` trained with
       `~astro_cl.augment.presets.ecalifa_views`, then ``embed``;
    4. every task through `~astro_cl.cli.evaluate.run_tasks` (property
       correlation and the study comparison, regression, SFMS clustering,
       environment, similarity search);
    5. the ablation: SimCLR retrained without channel 0 (log luminosity),
       rankings compared with `~astro_cl.tasks.compare_rankings`;
    6. `~astro_cl.surveys.sdss_mock.SDSSMockSurvey`, scaled with
       `~astro_cl.preprocess.images.ImageScaler` and cached with its truth maps;
    7. `~astro_cl.models.unet.CNNRegressor` trained with
       `~astro_cl.augment.presets.picasso_augmentations` on the training split,
       ``predict_maps`` on the held-out galaxies,
       `~astro_cl.tasks.MapMetrics` beside the PICASSSO numbers;
    8. the report (`~astro_cl.report.html.write_report`) with figures from
       `astro_cl.report.figures`.

    Parameters
    ----------
    out : str or `~pathlib.Path`
        Output folder: ``report/index.html`` (figures, ECSV tables,
        configuration), ``results/`` (the evaluate results folder: tables,
        ``galaxies.ecsv``, ``run.json``, ``history.json``, ``thumbnails.npz``,
        ``embeddings.ecsv``), ``models/`` (checkpoints and the fitted
        preprocessors), ``cache/`` (the preprocessed arrays; reused by a rerun
        with the same settings) and ``summary.json``.
    size : {"small", "medium", "study", "tiny"} or dict, optional
        A preset of `SIZES` ("small" is the default, sized for the acceptance
        thresholds in minutes on a 2-core CPU; "tiny" only checks the
        plumbing), or a dict of overrides of a preset (``{"base": "small",
        "n_sdss": 1000, "unet": {"epochs": 20}}``; nested dicts are merged).
    seed : int, optional
        Seed of the mocks, the networks and every random step.
    catalogue : str or `~pathlib.Path`, optional
        A real eCALIFA catalogue (e.g. ``ecalifa_global.csv``) to twin: one
        mock galaxy per row, with the real galaxies' properties.
    check : bool, optional
        Raise `AcceptanceError` (after writing everything) when an
        `ACCEPTANCE` threshold is missed.
    progress : bool, optional
        Print the stages and show progress bars.

    Returns
    -------
    summary : dict
        ``report`` (path of ``index.html``), ``out``, ``size``, ``seed``,
        ``n_ecalifa``, ``n_sdss``, ``ranking`` (list of ``[property, score,
        error]``, best first), ``kendall_tau`` (against the study's order),
        ``study_comparison``, ``clustering`` (per ``"<method>-k<k>"``: purity
        and adjusted Rand index), ``regression`` (per property: ridge and kNN
        CV R^2), ``environment`` (p-values), ``ablation`` (Kendall's tau and
        mean absolute score change), ``map_metrics`` (per map: sigma, mu,
        per-pixel sigma, study sigma, dex), ``checks`` (per `ACCEPTANCE` name:
        value, threshold, passed), ``passed``, ``timings`` (seconds per stage),
        ``wall_time`` (seconds from the call, imports and figure rendering
        included) and ``load_average`` (the machine's load when it ended).

    Raises
    ------
    AcceptanceError
        With ``check=True``, if a threshold is missed.

    Examples
    --------
    >>> from astro_cl.demo import run_demo, format_summary
    >>> summary = run_demo("demo-out", size="small")   # doctest: +SKIP
    >>> print(format_summary(summary))                  # doctest: +SKIP
    """
    started = time.perf_counter()  # the wall time includes the imports below
    import torch
    from astropy.table import QTable

    from astro_cl import __version__
    from astro_cl.augment.presets import ecalifa_views, picasso_augmentations
    from astro_cl.cli.evaluate import run_tasks
    from astro_cl.models.simclr import SimCLR
    from astro_cl.models.unet import CNNRegressor
    from astro_cl.preprocess.cache import PreprocessedCache
    from astro_cl.preprocess.ecalifa import CubePCA
    from astro_cl.preprocess.images import ImageScaler
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey
    from astro_cl.tasks import MapMetrics, PropertyCorrelation, compare_rankings
    from astro_cl.utils.io import atomic_path, atomic_write, file_checksum
    from astro_cl.utils.parallel import imap_ordered

    cfg = _resolve_size(size)
    size_name = size if isinstance(size, str) else f"custom ({size.get('base', 'small')})"
    seed = int(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_dir, models_dir = out / "results", out / "models"
    threads = max(1, min(2, os.cpu_count() or 1))
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    stage = _Stages(9, progress, start=started)
    try:
        # 1. the eCALIFA-like survey -------------------------------------------
        stage("simulating the eCALIFA-like mock survey")
        twin = None if catalogue is None else str(catalogue)
        ecalifa = ECALIFAMockSurvey(n=int(cfg["n_ecalifa"]), seed=seed,
                                    size=int(cfg["cube_size"]), twin=twin)
        cat = ecalifa.catalogue
        n_gal = len(ecalifa)

        # 2. cubes -> 30-channel PCA images, cached ----------------------------
        stage("preprocessing cubes (CubePCA, 30 channels) into the cache")
        n_fit = min(n_gal, int(cfg["pca_fit_galaxies"]))
        fit_idx = np.unique(np.linspace(0, n_gal - 1, n_fit).round().astype(int))
        from tqdm.auto import tqdm

        fit_records = list(tqdm(imap_ordered(ecalifa.__getitem__, fit_idx.tolist(),
                                             workers=threads),
                                total=len(fit_idx), desc="PCA fit cubes", disable=not progress,
                                unit="galaxy"))
        pca = CubePCA(seed=seed, **cfg["pca"]).fit(fit_records)
        del fit_records
        pca.save(models_dir / "cube_pca")
        cache = PreprocessedCache(out / "cache", verify="size")
        cubes = cache.get_or_build(ecalifa, preprocessor=pca, progress=progress,
                                   workers=threads)
        images = _SourceView(cubes)

        # 3. SimCLR with the study's augmentations -------------------------------
        stage("training SimCLR with the eCALIFA augmentations")
        views = ecalifa_views(max_shift=max(1, int(cfg["cube_size"]) // 12))
        simclr_params = dict(cfg["simclr"])
        simclr = SimCLR(augmenter=views, seed=seed, num_threads=threads, progress=progress,
                        device="cpu", **simclr_params)
        simclr.fit(images)
        simclr.save(models_dir / "simclr.pt")
        embeddings = simclr.embed(images, n_views=int(cfg["n_views"]), seed=seed)

        # 4. every task ---------------------------------------------------------
        stage("running the downstream tasks")
        props = [p for p in _PROPERTIES if p in cat.colnames]
        regressed = [p for p in _REGRESSED if p in cat.colnames]
        queries = _query_ids(cat, seed)
        params = {
            "property-correlation": {"properties": props, "n_bootstrap": cfg["n_bootstrap"],
                                     "projection": cfg["projection"], "seed": seed},
            "property-regression": {"properties": regressed, "n_bootstrap": cfg["n_bootstrap"],
                                    "seed": seed},
            "sfms-clustering": {"n_init": cfg["n_init"], "seed": seed},
            "environment": {"tests": tuple(cfg["environment_tests"]),
                            "n_permutations": cfg["n_permutations"],
                            "n_permutations_classifier": cfg["n_permutations_classifier"],
                            "seed": seed},
            "similarity-search": {"n_neighbors": 6, "query_ids": queries},
        }
        provenance = {"demo_size": size_name, "seed": seed, "torch_threads": threads}
        if catalogue is not None:
            provenance.update(catalogue=str(catalogue), catalogue_sha256=file_checksum(catalogue))
        evaluated = run_tasks(embeddings, cat, params=params, out=results_dir,
                              progress=progress, provenance=provenance)
        tables = evaluated["tables"]
        ranking = tables["property-correlation"]

        # 5. ablation: no luminosity channel --------------------------------------
        stage("ablation: retraining SimCLR without the luminosity channel")
        n_chan = int(cubes.shape[1])
        no_lum = _SourceView(cubes, channels=list(range(1, n_chan)),
                             meta={"channels_dropped": [0]})
        simclr_nl = SimCLR(augmenter=views, seed=seed, num_threads=threads,
                           progress=progress, device="cpu", **simclr_params).fit(no_lum)
        emb_nl = simclr_nl.embed(no_lum, n_views=int(cfg["n_views"]), seed=seed)
        corr_nl = PropertyCorrelation(**{**params["property-correlation"], "projection": None})
        corr_nl.fit(emb_nl, cat)
        ranking_nl = corr_nl.evaluate()
        ablation = compare_rankings(ranking, ranking_nl,
                                    labels=("with_luminosity", "without_luminosity"))

        # 6. sdss-mock images + truth maps ----------------------------------------
        stage("simulating sdss-mock ugriz images and caching them with truth maps")
        sdss = SDSSMockSurvey(n=int(cfg["n_sdss"]), seed=seed, size=int(cfg["image_size"]))
        n_sd = len(sdss)
        n_scale = min(n_sd, 100)
        scaler = ImageScaler().fit(list(imap_ordered(sdss.__getitem__, range(n_scale),
                                                     workers=threads)))
        scaler.save(models_dir / "image_scaler")
        cutouts = cache.get_or_build(sdss, preprocessor=scaler, targets=list(_MAP_TARGETS),
                                     progress=progress, workers=threads)
        rng = np.random.default_rng(seed)
        order = rng.permutation(n_sd)
        n_test = max(2, round(float(cfg["test_fraction"]) * n_sd))
        test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
        train = _SourceView(cutouts, rows=train_rows)
        test = _SourceView(cutouts, rows=test_rows)

        # 7. the U-Net ---------------------------------------------------------------
        stage("training the U-Net (cnn-regressor) and predicting held-out maps")
        unet = CNNRegressor(augmenter=picasso_augmentations(), target_names=_MAP_TARGETS,
                            seed=seed, num_threads=threads, progress=progress, device="cpu",
                            **cfg["unet"])
        unet.fit(train)
        unet.save(models_dir / "unet.pt")
        test_ids = test.ids
        # the maps the network was trained against, from the cache (no re-simulation)
        truth = cutouts.target_maps(test_rows)
        predicted = [{name: _to_unit(m, truth[i][name].unit) for name, m in maps.items()}
                     for i, maps in enumerate(unet.predict_maps(test))]
        metrics = MapMetrics(properties=list(_MAP_TARGETS)).fit(predicted, truth)
        map_table = metrics.evaluate()

        # 8. report -------------------------------------------------------------------
        stage("writing the report")
        history = {"simclr": [dict(r) for r in simclr.history_],
                   "simclr_no_luminosity": [dict(r) for r in simclr_nl.history_],
                   "unet": [dict(r) for r in unet.history_]}
        with atomic_write(results_dir / "history.json") as fh:
            json.dump(_jsonable(history["simclr"]), fh, indent=1)
        neighbours = tables["similarity-search"]
        thumb_ids = list(dict.fromkeys(np.asarray(neighbours["id"]).astype(str).tolist()
                                       + [str(q) for q in queries]))
        thumbs = _thumbnails(images, thumb_ids)
        with atomic_path(results_dir / "thumbnails.npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **thumbs)
        with atomic_path(results_dir / "embeddings.ecsv") as tmp:
            embeddings.write(tmp, format="ascii.ecsv", overwrite=True)
        summary = _summarise(cfg, size_name, seed, out, n_gal, n_sd, tables, ablation,
                             map_table)
        figures = _figures(evaluated, ranking_nl, ablation, queries, neighbours, thumbs,
                           history, predicted, truth, metrics, test_ids)
        # rendered here so that the stage timings (and the wall time) include them
        from astro_cl.report.html import figure_png, write_report

        figures = {name: figure_png(fig) for name, fig in figures.items()}
        report_tables = dict(tables)
        report_tables["property-correlation-no-luminosity"] = ranking_nl
        report_tables["ablation-rankings"] = ablation
        report_tables["map-metrics"] = map_table
        acceptance = QTable(rows=[(k, v["description"], v["value"], v["sense"], v["threshold"],
                                   v["passed"]) for k, v in summary["checks"].items()],
                            names=("check", "description", "value", "sense", "threshold",
                                   "passed"))
        report_tables["acceptance"] = acceptance
        for name in ("property-correlation-no-luminosity", "ablation-rankings", "map-metrics",
                     "acceptance"):
            with atomic_path(results_dir / "tables" / f"{name}.ecsv") as tmp:
                report_tables[name].write(tmp, format="ascii.ecsv", overwrite=True)
        config = {"size": size_name, "seed": seed, "settings": _jsonable(cfg),
                  "ecalifa_mock": _jsonable(ecalifa.get_params(deep=False)),
                  "sdss_mock": _jsonable(sdss.get_params(deep=False)),
                  "cube_pca": _jsonable(pca.get_params(deep=False)),
                  "map_targets": list(_MAP_TARGETS),
                  "augmentations": {"simclr": "ecalifa_views(max_shift="
                                              f"{max(1, int(cfg['cube_size']) // 12)})",
                                    "unet": "picasso_augmentations()"}}
        provenance.update(astro_cl_version=__version__, torch_version=torch.__version__,
                          cache_entries=[p.name for p in cache.entries()])
        stage("summarising")
        wall = stage.finish()
        summary.update(timings=stage.timings, wall_time=wall, load_average=_load_average())
        provenance.update(timings_s=summary["timings"], wall_time_s=wall,
                          load_average=summary["load_average"])
        for stale in (out / "report" / "figures").glob("*.png"):  # from an earlier run
            stale.unlink()
        index = write_report(out / "report", figures=figures, tables=report_tables,
                             config=config, provenance=provenance,
                             title=f"astro_cl demo ({size_name}, seed {seed})")
        summary["report"] = str(index)
        with atomic_write(out / "summary.json") as fh:
            json.dump(_jsonable(summary), fh, indent=2)
            fh.write("\n")
    finally:
        torch.set_num_threads(old_threads)
    if check and not summary["passed"]:
        failed = [f"{k} = {v['value']:.3f} (needs {v['sense']} {v['threshold']})"
                  for k, v in summary["checks"].items() if not v["passed"]]
        msg = f"demo acceptance failed: {'; '.join(failed)} (report: {summary['report']})"
        raise AcceptanceError(msg, summary)
    return summary


def _query_ids(cat, seed):
    """One blue-cloud, one green-valley, one red-sequence galaxy and one at random."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(cat["id"]).astype(str)
    chosen = []
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


def _summarise(cfg, size_name, seed, out, n_gal, n_sd, tables, ablation, map_table):
    ranking = tables["property-correlation"]
    comparison = tables["study-comparison"]
    clustering = tables["sfms-clustering"]
    regression = tables["property-regression"]
    summary = {
        "out": str(out), "size": size_name, "seed": seed, "n_ecalifa": n_gal, "n_sdss": n_sd,
        "ranking": [[str(r["property"]), float(r["score"]), float(r["score_err"])]
                    for r in ranking],
        "kendall_tau": float(comparison.meta["kendall_tau"]),
        "kendall_pvalue": float(comparison.meta["kendall_pvalue"]),
        "study_comparison": [[str(r["property"]), int(r["study_rank"]), int(r["measured_rank"])]
                             for r in comparison],
        "clustering": {f"{r['method']}-k{int(r['n_clusters'])}":
                       {"purity": float(r["purity"]), "adjusted_rand": float(r["adjusted_rand"]),
                        "classes": str(r["classes"])} for r in clustering},
        "regression": {},
        "environment": [],
        "ablation": {"kendall_tau": float(ablation.meta["kendall_tau"]),
                     "mean_abs_delta_score": float(ablation.meta["mean_abs_delta_score"])},
        "map_metrics": {str(r["property"]): {
            "sigma": float(r["sigma"].value), "mu": float(r["mu"].value),
            "sigma_pixel": float(r["sigma_pixel"].value),
            "study_sigma": float(r["study_sigma"].value),
            "study_mu": float(r["study_mu"].value)} for r in map_table},
    }
    for r in regression:
        entry = summary["regression"].setdefault(str(r["property"]), {})
        entry[str(r["model"])] = float(r["r2"])
    env = tables.get("environment")
    if env is not None:
        keep = [c for c in env.colnames if env[c].ndim == 1]
        summary["environment"] = [{c: _jsonable(r[c].item() if hasattr(r[c], "item") else r[c])
                                   for c in keep} for r in env]
    km2 = summary["clustering"].get("kmeans-k2", {}).get("purity", np.nan)
    values = {
        "purity_bc_rs_k2": km2,
        "r2_log_Mass": max(summary["regression"].get("log_Mass", {"-": np.nan}).values()),
        "r2_EW_Ha_cen": max(summary["regression"].get("EW_Ha_cen", {"-": np.nan}).values()),
        "sigma_stellar_mass": summary["map_metrics"].get("stellar_mass", {}).get("sigma",
                                                                                np.nan),
    }
    checks = {}
    for name, (threshold, sense, text) in ACCEPTANCE.items():
        v = float(values[name])
        ok = bool(np.isfinite(v) and (v >= threshold if sense == ">=" else v <= threshold))
        checks[name] = {"description": text, "value": v, "sense": sense,
                        "threshold": threshold, "passed": ok}
    summary["checks"] = checks
    summary["passed"] = all(c["passed"] for c in checks.values())
    return summary


def _figures(evaluated, ranking_nl, ablation, queries, neighbours, thumbs, history, predicted,
             truth, metrics, test_ids):
    """Build the report figures from the demo's results."""
    from astro_cl.report import figures as F
    from astro_cl.tasks._common import _label_column

    tables, galaxies, tasks = evaluated["tables"], evaluated["galaxies"], evaluated["tasks"]
    figs = {}
    ranking = tables["property-correlation"]
    figs["property ranking"] = F.plot_correlation_ranking(
        ranking, study=tables.get("study-comparison"))
    figs["property ranking without the luminosity channel"] = F.plot_correlation_ranking(
        ranking_nl)
    xy = None
    if {"umap_1", "umap_2"} <= set(galaxies.colnames):
        xy = np.column_stack([np.asarray(galaxies["umap_1"]), np.asarray(galaxies["umap_2"])])
        cols = [str(p) for p in ranking["property"] if str(p) in galaxies.colnames][:9]
        figs["UMAP coloured by property"] = F.plot_umap(xy, galaxies, cols)
    clus = tasks.get("sfms-clustering")
    if clus is not None:
        labels = {"SFMS class": _label_column(galaxies, "sfms_class")}
        labels.update({c.removeprefix("cluster_"): np.asarray(galaxies[c])
                       for c in galaxies.colnames if c.startswith("cluster_")})
        figs["clusters on the SFMS plane"] = F.plot_sfms_clusters(
            galaxies, labels, mass_column=clus.mass_column, sfr_column=clus.sfr_column,
            main_sequence=clus.main_sequence_, thresholds=clus.thresholds)
        for key, conf in clus.confusion_.items():
            figs[f"confusion {key}"] = F.plot_confusion(conf, title=key)
    env = tasks.get("environment")
    if env is not None and xy is not None:
        figs["environment"] = F.plot_environment(xy, np.asarray(galaxies[env.column]),
                                                 results=tables["environment"])
    shown = [q for q in queries if q in thumbs]
    if shown:
        figs["similarity search (log luminosity)"] = F.plot_similarity_grid(
            shown, neighbours, thumbs)
    for name, hist in history.items():
        if hist:
            figs[f"training curves: {name}"] = F.plot_training_curves(hist)
    delta = metrics.delta_.get("stellar_mass")
    if delta is not None and np.isfinite(delta).any():
        order = np.argsort(np.where(np.isfinite(delta), np.abs(delta), np.inf))
        n_ok = int(np.isfinite(delta).sum())
        picks = [int(order[n_ok // 2]), int(order[max(0, n_ok - 1)])]
        for label, i in zip(("typical", "worst"), dict.fromkeys(picks), strict=False):
            figs[f"maps: {label} held-out galaxy {test_ids[i]}"] = F.plot_map_panels(
                truth[i], predicted[i], names=list(predicted[i]))
    return figs


def format_summary(summary):
    """Return the demo summary as a short text for the terminal.

    Parameters
    ----------
    summary : dict
        Output of `run_demo`.

    Returns
    -------
    text : str
    """
    lines = [f"astro_cl demo ({summary['size']}, seed {summary['seed']}): "
             f"{summary['n_ecalifa']} eCALIFA-like cubes, {summary['n_sdss']} sdss-mock cutouts, "
             f"{summary.get('wall_time', float('nan')):.0f} s"]
    lines.append("Property ranking (kNN CV score +- bootstrap error):")
    for i, (prop, score, err) in enumerate(summary["ranking"], 1):
        lines.append(f"  {i:2d}. {prop:<16s} {score:6.3f} +- {err:.3f}")
    lines.append(f"  Kendall's tau vs the eCALIFA study's order: {summary['kendall_tau']:.2f} "
                 f"(p = {summary['kendall_pvalue']:.2f})")
    lines.append(f"  Ablation without the luminosity channel: Kendall's tau "
                 f"{summary['ablation']['kendall_tau']:.2f}, mean |change in score| "
                 f"{summary['ablation']['mean_abs_delta_score']:.3f}")
    lines.append("SFMS clustering (purity / adjusted Rand index):")
    for key, v in summary["clustering"].items():
        lines.append(f"  {key:<10s} {v['purity']:.3f} / {v['adjusted_rand']:.3f}  "
                     f"({v['classes']})")
    lines.append("Maps of held-out galaxies within 2 R_half: sigma (mu) dex, PICASSSO sigma:")
    for name, v in summary["map_metrics"].items():
        ref = "" if not np.isfinite(v["study_sigma"]) else f"{v['study_sigma']:.3f}"
        lines.append(f"  {name:<14s} {v['sigma']:.3f} ({v['mu']:+.3f})   {ref}")
    lines.append("Acceptance:")
    for c in summary["checks"].values():
        lines.append(f"  [{'pass' if c['passed'] else 'FAIL'}] {c['description']}: "
                     f"{c['value']:.3f} (needs {c['sense']} {c['threshold']})")
    lines.append(f"Report: {summary.get('report', '')}")
    return "\n".join(lines)
