"""Surveys of thousands of galaxies: preprocess, embed and predict on many workers, resumably.

Three calls, each a thin plan over `~astro_cl.preprocess.store.PreprocessedStore`
and `~astro_cl.utils.executors.TaskRunner` (threads, worker processes, or a
Dask cluster):

* `preprocess_from_config`: what ``astro-cl preprocess CONFIG`` does: fit the
  configuration's preprocessor on a sample of its survey and write every
  galaxy into the store where ``astro-cl train CONFIG`` will look for it;
* `embed_survey`: a model's embedding table of a survey;
* `predict_survey`: a map regressor's predicted maps of a survey, one FITS
  file per galaxy.

Embedding and prediction first preprocess the survey into a store (with the
model's saved preprocessor), then split the stored galaxies into shards;
each worker loads the model once and writes one part file per shard. A run
that is interrupted resumes: the store keeps the galaxies already
preprocessed, and shards with a part file are not run again.
"""

import inspect
import json
from pathlib import Path

import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.utils.io import atomic_path

__all__ = ["EMBED_DEFAULTS", "embed_options", "embed_survey", "predict_survey",
           "preprocess_from_config"]

#: Options of an encoder's ``embed`` and the values that mean "not set" (not every
#: encoder has augmented views, readouts or towers).
EMBED_DEFAULTS = {"n_views": 1, "seed": 0, "readout": "embedding", "modality": None}


def embed_options(model, values, *, labels=None):
    """Return the options of ``values`` that ``model.embed`` takes.

    An option the model's ``embed`` does not take is dropped when it has its
    `EMBED_DEFAULTS` value and refused otherwise, so that no setting is
    silently ignored (a CLIP model has no augmented views, a SimCLR model
    no modality); None values are dropped.

    Parameters
    ----------
    model : `~astro_cl.models.base.Encoder`
    values : dict
        Option name to value.
    labels : dict, optional
        How a message names each option (e.g. ``{"n_views": "--n-views"}``);
        default ``"<name> ="``.

    Returns
    -------
    options : dict

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If an option is set that the model does not take.
    """
    takes = inspect.signature(model.embed).parameters
    options = {}
    for name, value in values.items():
        if name in takes:
            if value is not None:
                options[name] = value
        elif value != EMBED_DEFAULTS.get(name):
            label = (labels or {}).get(name, f"{name} =")
            msg = f"{label} {value}: the {model.name!r} model's embed takes no {name}"
            raise ValidationError(msg)
    return options


#: Models loaded in this worker process, by (path, modification time).
_MODELS = {}


def preprocess_from_config(config, *, store=None, executor="threads", workers=None,
                           scheduler=None, client=None, on_error="skip", fit_sample=None,
                           fit_seed=0, retry_failed=False, progress=True):
    """Fit a configuration's preprocessor and write its survey into a store.

    Parameters
    ----------
    config : dict
        A training configuration (`~astro_cl.training.config.load_config`)
        with a ``[preprocess]`` table.
    store : str or `~pathlib.Path`, optional
        The store directory (default: the one ``astro-cl train`` uses for
        this configuration, ``<training.checkpoint_dir>/cache``).
    executor, workers, scheduler, client, on_error, retry_failed, progress : optional
        See `~astro_cl.preprocess.store.PreprocessedStore.get_or_build`.
    fit_sample, fit_seed : optional
        See `~astro_cl.preprocess.store.PreprocessedStore.fit_preprocessor`.

    Returns
    -------
    source : `~astro_cl.preprocess.store.StoredArrays` or None
        The complete store (its ``summary`` says what this call did); None
        when the configuration preprocesses every augmented view instead
        (``[[augment.cube_steps]]``): then only the preprocessor is fitted.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the configuration has no ``[preprocess]`` table.
    """
    from astro_cl.preprocess.store import PreprocessedStore
    from astro_cl.training.config import build_run

    run = build_run(config)
    preprocessor = run["preprocessor"]
    if preprocessor is None:
        msg = (f"{config.get('_path', 'config')}: no [preprocess] table; there is nothing to "
               "preprocess (training reads the survey's arrays as they are)")
        raise ValidationError(msg)
    encoder = run["encoder"]
    directory = Path(store) if store is not None else Path(run["cache_dir"])
    target = PreprocessedStore(directory)
    if getattr(getattr(encoder, "augmenter", None), "changes_channels", False):
        target.fit_preprocessor(run["survey"], preprocessor, kind=encoder.kind,
                                fit_sample=fit_sample, fit_seed=fit_seed, distributed=False)
        return None
    # the kind and targets training stores, so that it finds this entry
    targets = encoder.training_targets()
    return target.get_or_build(run["survey"], preprocessor=preprocessor, kind=encoder.kind,
                               targets=targets, progress=progress, executor=executor,
                               workers=workers, scheduler=scheduler, client=client,
                               on_error=on_error, retry_failed=retry_failed,
                               fit_sample=fit_sample, fit_seed=fit_seed, distributed=False)


# -- shards of a store, on the workers --------------------------------------------------------
def _model(path):
    """Return the model of a file, loaded once per worker process."""
    from astro_cl.models.artefact import load_model

    key = (str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(path)
    return _MODELS[key]


def _part_path(ctx, shard):
    return Path(ctx["parts"]) / f"{ctx['mode']}-{int(shard[0]):06d}.{ctx['suffix']}"


def _run_shard(ctx, shard):
    """Embed or predict one shard ``(index, start, stop)`` of the stored galaxies (a task)."""
    import torch

    from astro_cl.preprocess.store import PreprocessedStore
    from astro_cl.studies.sources import SourceView

    part = _part_path(ctx, shard)
    if part.is_file():
        return {"shard": int(shard[0]), "skipped": True}
    if ctx["torch_threads"]:
        # the workers are the parallelism: one intra-op thread each
        torch.set_num_threads(int(ctx["torch_threads"]))
    model = _model(ctx["model"])
    source = ctx.get("_source")
    if source is None:
        source = PreprocessedStore(Path(ctx["entry"]).parent).open(ctx["entry"], verify="size")
        ctx["_source"] = source
    view = SourceView(source, rows=np.arange(int(shard[1]), int(shard[2])))
    if ctx["mode"] == "embed":
        table = model.embed(view, batch_size=ctx["batch_size"], **ctx["embed_options"])
        with atomic_path(part) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(table["id"], dtype=str),
                     embedding=np.asarray(table["embedding"], dtype=np.float32))
        return {"shard": int(shard[0]), "n": len(table)}
    from astro_cl import __version__
    from astro_cl.data.fits_maps import write_maps

    maps = model.predict_maps(view, batch_size=ctx["batch_size"])
    out = Path(ctx["out"])
    for gid, galaxy_maps in zip(view.ids, maps, strict=True):
        write_maps(out / f"{gid}.maps.fits", _with_wcs(galaxy_maps, ctx["survey"], gid),
                   header={"OBJECT": gid, "MODEL": model.name, "ASTROCL": __version__})
    with atomic_path(part) as tmp:
        tmp.write_text(json.dumps({"ids": view.ids}), encoding="utf-8")
    return {"shard": int(shard[0]), "n": len(maps)}


def _with_wcs(maps, survey, gid):
    """Return a galaxy's maps with the celestial WCS of its survey images (as predict_maps)."""
    from astropy.nddata import NDData

    images = survey[gid].images
    wcs = None if images is None else images.wcs
    if wcs is not None and getattr(wcs, "naxis", 2) > 2:
        wcs = wcs.celestial
    if wcs is None:
        return maps
    return {name: NDData(nd.data, unit=nd.unit, wcs=wcs, uncertainty=nd.uncertainty,
                         mask=nd.mask, meta=nd.meta) for name, nd in maps.items()}


def _shards(n, size):
    size = int(size)
    if size < 1:
        msg = f"shard_size: expected a positive integer, got {size!r}"
        raise ValidationError(msg)
    return [(i, start, min(n, start + size)) for i, start in enumerate(range(0, n, size))]


def _sharded(mode, model, survey, work_dir, *, executor, workers, scheduler, client,
             n_views, seed, batch_size, shard_size, cache_dir, on_error, progress, out=None,
             readout="embedding"):
    """Preprocess a survey into a store, then run the model over shards of it."""
    from tqdm.auto import tqdm

    from astro_cl.models.artefact import load_model
    from astro_cl.preprocess.store import PreprocessedStore
    from astro_cl.utils.executors import TaskRunner

    model_path = Path(model)
    loaded = load_model(model_path)
    wanted = "embedding" if mode == "embed" else "maps"
    if getattr(loaded, "output_type", None) != wanted:
        msg = (f"{model_path} holds a {loaded.name!r} model, which predicts "
               f"{getattr(loaded, 'output_type', '?')}, not {wanted}")
        raise ValidationError(msg)
    options = (embed_options(loaded, {"n_views": n_views, "seed": seed, "readout": readout})
               if mode == "embed" else {})
    contract = getattr(loaded, "contract_", None)
    if contract is not None and len(survey):
        contract.check_record(survey[0], source=f"survey {survey.name!r}")
    work_dir = Path(work_dir)
    store_dir = Path(cache_dir) if cache_dir is not None else work_dir / "inputs"
    with TaskRunner(executor, workers=workers, scheduler=scheduler, client=client) as runner:
        # one cluster for both steps: the store's tasks, then the model's
        source = PreprocessedStore(store_dir).get_or_build(
            survey, preprocessor=getattr(loaded, "preprocessor_", None), kind=loaded.kind,
            progress=progress, executor=executor, workers=workers,
            client=runner.client if executor == "dask" else None, on_error=on_error,
            distributed=False)
        summary = source.summary
        if contract is not None and len(source):
            contract.check_input(tuple(source.batch(np.array([0])).data.shape),
                                 source=f"survey {survey.name!r}")
        # part files of one readout are not resumed by a run of another
        parts = work_dir / ("parts" if readout == "embedding" else f"parts-{readout}")
        parts.mkdir(parents=True, exist_ok=True)
        shards = _shards(len(source), shard_size)
        ctx = {"mode": mode, "suffix": "npz" if mode == "embed" else "json",
               "model": str(model_path.resolve()), "entry": str(source.directory.resolve()),
               "parts": str(parts), "embed_options": options,
               "batch_size": batch_size, "out": None if out is None else str(out),
               "survey": survey if mode == "predict" else None,
               "torch_threads": 1 if runner.n_workers > 1 or executor != "threads" else None}
        if executor == "threads" and runner.n_workers > 1:
            ctx["_source"] = source  # one reader for every thread
        todo = [s for s in shards if not _part_path(ctx, s).is_file()]
        bar = tqdm(total=len(source), initial=sum(s[2] - s[1] for s in shards if s not in todo),
                   desc=f"{mode} {survey.name}", unit="galaxy", disable=not progress)
        try:
            for _ in range(5):
                _, lost = runner.run(_run_shard, ctx, todo,
                                     on_result=lambda s, r: bar.update(s[2] - s[1]))
                todo = [s for s in lost if not _part_path(ctx, s).is_file()]
                if not todo:
                    break
            else:
                msg = (f"{mode}: workers were lost again and again; {len(todo)} shards are "
                       f"missing; run again to resume (parts in {parts})")
                raise ValidationError(msg)
        finally:
            bar.close()
    return loaded, source, shards, ctx, summary


def embed_survey(model, survey, *, work_dir, executor="threads", workers=None, scheduler=None,
                 client=None, n_views=1, seed=0, batch_size=None, shard_size=64,
                 cache_dir=None, on_error="skip", progress=True, readout="embedding"):
    """Return the embedding table of a survey, computed in shards on many workers.

    Parameters
    ----------
    model : str or `~pathlib.Path`
        A model file of an encoder (``astro-cl train``); every worker loads it once.
    survey : `~astro_cl.surveys.base.Survey`
    work_dir : str or `~pathlib.Path`
        Where the preprocessed inputs (unless ``cache_dir``) and the part
        files of the shards go; a run interrupted resumes from them.
    executor, workers, scheduler, client : optional
        See `~astro_cl.utils.executors.TaskRunner`.
    n_views, seed, batch_size, readout : optional
        As for the encoder's ``embed`` (``readout``: `~astro_cl.models.simclr.SimCLR.embed`).
    shard_size : int, optional
        Galaxies per task.
    cache_dir : str or `~pathlib.Path`, optional
        Store directory of the preprocessed inputs (kept for later runs).
    on_error : {"skip", "raise"}, optional
        What a galaxy that cannot be read or preprocessed does (see
        `~astro_cl.preprocess.store.PreprocessedStore.get_or_build`).
    progress : bool, optional

    Returns
    -------
    table : `~astropy.table.QTable`
        As the encoder's ``embed``, in survey order, without the galaxies
        that failed (listed in ``table.meta["failed"]``).
    summary : `~astro_cl.preprocess.store.BuildSummary`
        Of the preprocessing.
    """
    from astropy.table import QTable

    from astro_cl import __version__
    from astro_cl.training.checkpoints import jsonable

    loaded, source, shards, ctx, summary = _sharded(
        "embed", model, survey, work_dir, executor=executor, workers=workers,
        scheduler=scheduler, client=client, n_views=n_views, seed=seed, batch_size=batch_size,
        shard_size=shard_size, cache_dir=cache_dir, on_error=on_error, progress=progress,
        readout=readout)
    ids, vectors = [], []
    for shard in shards:
        with np.load(_part_path(ctx, shard), allow_pickle=False) as part:
            ids.extend(part["ids"].tolist())
            vectors.append(part["embedding"])
    if ids != source.ids:
        msg = (f"embed: the part files in {ctx['parts']} do not match the preprocessed "
               "galaxies (left over from another run?); remove the folder and run again")
        raise ValidationError(msg)
    dim = int(getattr(loaded, "embedding_dim", 0) or 0)
    emb = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    table = QTable({"id": np.asarray(ids, dtype=str), "embedding": emb})
    table.meta.update({"model": loaded.name, "model_params": jsonable(loaded.get_params(False)),
                       "survey": str(survey.name), "astro_cl_version": __version__,
                       "n_views": int(n_views), "seed": int(seed), "readout": readout})
    if summary.failed:
        table.meta["failed"] = dict(summary.failed)
    return table, summary


def predict_survey(model, survey, out, *, work_dir, executor="threads", workers=None,
                   scheduler=None, client=None, batch_size=None, shard_size=64, cache_dir=None,
                   on_error="skip", progress=True):
    """Write the predicted maps of a survey (``<out>/<id>.maps.fits``), in shards on many workers.

    Parameters
    ----------
    model : str or `~pathlib.Path`
        A model file of a map regressor; every worker loads it once.
    survey : `~astro_cl.surveys.base.Survey`
        Its records' image WCS is given to the maps.
    out : str or `~pathlib.Path`
        Output directory.
    work_dir : str or `~pathlib.Path`
        Where the preprocessed inputs (unless ``cache_dir``) and the shards'
        completion files go; a run interrupted resumes from them.
    executor, workers, scheduler, client, batch_size, shard_size, cache_dir, on_error, progress
        As for `embed_survey`.

    Returns
    -------
    ids : list of str
        The galaxies whose maps were written (all but the failed ones).
    summary : `~astro_cl.preprocess.store.BuildSummary`
        Of the preprocessing.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, source, _, _, summary = _sharded(
        "predict", model, survey, work_dir, executor=executor, workers=workers,
        scheduler=scheduler, client=client, n_views=1, seed=0, batch_size=batch_size,
        shard_size=shard_size, cache_dir=cache_dir, on_error=on_error, progress=progress,
        out=out)
    return source.ids, summary
