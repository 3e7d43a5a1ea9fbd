"""Conformance checks for plugin authors.

Call these from your own tests to check that a component honours astro_cl's
contracts, as astro_cl's own tests do for every built-in::

    from astro_cl.testing import check_survey

    def test_my_survey_conforms(tmp_path):
        check_survey(MySurvey(path=tmp_path / "data"))

Each check raises `AssertionError` with a message that says what is wrong.
"""

import inspect

import numpy as np

__all__ = [
    "check_augmenter",
    "check_component",
    "check_encoder",
    "check_preprocessor",
    "check_survey",
    "check_task",
]


def _fail(component, problem):
    msg = f"{type(component).__name__} ({getattr(component, 'name', '?')!r}): {problem}"
    raise AssertionError(msg)


def check_component(component, base):
    """Check the estimator-style contract shared by every component.

    Parameters
    ----------
    component : `~astro_cl.base.Component`
        An instance.
    base : type
        The interface it must implement (e.g. `~astro_cl.surveys.Survey`).
    """
    from astro_cl.base import Component

    cls = type(component)
    if not isinstance(component, base) or not isinstance(component, Component):
        _fail(component, f"must subclass {base.__name__}")
    if not isinstance(cls.name, str) or not cls.name:
        _fail(component, "must declare a non-empty 'name' class attribute")
    if not (cls.description or cls.__doc__):
        _fail(component, "must declare a 'description' (or a docstring)")
    params = inspect.signature(cls.__init__).parameters
    positional = [p.name for p in params.values()
                  if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional:
        _fail(component, f"__init__ parameters must be keyword-only, got positional {positional}")
    got = component.get_params(deep=False)
    if sorted(got) != sorted(cls._param_names()):
        _fail(component, f"get_params() keys {sorted(got)} differ from __init__ parameters "
              f"{sorted(cls._param_names())}")
    try:
        component.set_params(**got)
    except Exception as exc:
        _fail(component, f"set_params(**get_params()) failed: {exc}")
    if component.get_params(deep=False).keys() != got.keys():
        _fail(component, "set_params changed the parameter names")


def check_survey(survey, *, n_records=3):
    """Check that a survey honours the `~astro_cl.surveys.Survey` contract.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
        An instance pointing at (small) real or fixture data.
    n_records : int, optional
        How many records to read and check.
    """
    from astropy.table import QTable

    from astro_cl.data.record import GalaxyRecord
    from astro_cl.surveys.base import Survey

    check_component(survey, Survey)
    cat = survey.catalogue
    if not isinstance(cat, QTable):
        _fail(survey, f"catalogue must be a QTable, got {type(cat).__name__}")
    if cat.colnames[:1] != ["id"] and "id" not in cat.colnames:
        _fail(survey, "catalogue must have an 'id' column")
    if len(survey) != len(cat) or len(survey) == 0:
        _fail(survey, f"len() = {len(survey)} but the catalogue has {len(cat)} rows (need > 0)")
    ids = survey.ids
    if len(set(ids)) != len(ids):
        _fail(survey, "ids are not unique")
    for i in range(min(n_records, len(survey))):
        rec = survey[i]
        if not isinstance(rec, GalaxyRecord):
            _fail(survey, f"survey[{i}] is a {type(rec).__name__}, not a GalaxyRecord")
        if rec.id != ids[i]:
            _fail(survey, f"survey[{i}].id = {rec.id!r} but catalogue id is {ids[i]!r}")
        again = survey[ids[i]]
        if again.id != rec.id:
            _fail(survey, f"lookup by id {ids[i]!r} returned record {again.id!r}")
        if ids[i] not in survey:
            _fail(survey, f"{ids[i]!r} in survey is False")
        if rec.cube is None and rec.images is None and not rec.maps:
            _fail(survey, f"record {rec.id!r} has no cube, images or maps")
    first = next(iter(survey))
    if first.id != ids[0]:
        _fail(survey, "iteration does not start at the first catalogue row")
    try:
        survey[len(survey)]
    except IndexError:
        pass
    else:
        _fail(survey, "an out-of-range index must raise IndexError")
    try:
        survey["\x00no-such-galaxy"]
    except KeyError:
        pass
    else:
        _fail(survey, "an unknown id must raise KeyError")
    kind = survey.default_kind
    rec = survey[0]
    has = {"images": rec.images is not None, "cube": rec.cube is not None, "maps": bool(rec.maps)}
    if has.get(kind):
        batch = survey.to_tensors(ids[:1])
        if batch.ids != ids[:1] or batch.data.ndim != 4:
            _fail(survey, "to_tensors() must return a (B, C, H, W) batch with the asked ids")


def _same(a, b):
    """Whether two output arrays (or Nones) are equal, NaN where NaN."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def check_preprocessor(preprocessor, X, **kwargs):
    """Check that a preprocessor honours the `~astro_cl.preprocess.Preprocessor` contract.

    Checks: the estimator contract; an unfitted preprocessor refuses to
    transform; `fit` returns ``self``, sets every fitted array (its
    ``_state_arrays``) and leaves array input unchanged; `transform` returns
    ``(data, mask, std)``: float32 ``(N, C, H, W)`` data, a boolean mask of
    ``(N, C, H, W)`` or ``(N, 1, H, W)`` and None or a ``std`` like the data,
    the same on a second call, and, for a survey or records, equal to
    `transform_record` of each one; the state survives `state_dict` /
    `from_state` and `save` / `load` (same output, same `fingerprint`); and
    refitting a new instance with the same parameters gives the same output.

    Parameters
    ----------
    preprocessor : `~astro_cl.preprocess.Preprocessor`
        An unfitted, small configuration (it is fitted here).
    X : `~astro_cl.surveys.Survey`, sequence of `~astro_cl.data.GalaxyRecord` or array
        Small training data the preprocessor accepts.
    **kwargs
        Passed to `fit` and `transform` (e.g. the wavelengths of array input).
    """
    import json
    import tempfile

    from astro_cl.data.record import GalaxyRecord
    from astro_cl.exceptions import ValidationError
    from astro_cl.preprocess.base import Preprocessor
    from astro_cl.surveys.base import Survey

    check_component(preprocessor, Preprocessor)
    cls = type(preprocessor)
    if isinstance(cls.version, bool) or not isinstance(cls.version, int):
        _fail(preprocessor, f"'version' must be an int, got {cls.version!r}")
    if not isinstance(cls.thread_safe, bool):
        _fail(preprocessor, f"'thread_safe' must be a bool, got {cls.thread_safe!r}")
    try:
        json.dumps(preprocessor.get_params(deep=False))
    except (TypeError, ValueError) as exc:
        _fail(preprocessor, f"parameters must be JSON-serialisable ({exc})")
    if cls._state_arrays:
        if preprocessor.is_fitted:
            _fail(preprocessor, "give an unfitted preprocessor: it already has its state arrays")
        try:
            preprocessor.transform(X, **kwargs)
        except ValidationError:
            pass
        else:
            _fail(preprocessor, "an unfitted preprocessor must refuse to transform "
                  "(raise astro_cl.exceptions.ValidationError)")
    before = np.array(X, copy=True) if isinstance(X, np.ndarray) else None
    if preprocessor.fit(X, **kwargs) is not preprocessor:
        _fail(preprocessor, "fit() must return self")
    if before is not None and not np.array_equal(before, X, equal_nan=True):
        _fail(preprocessor, "fit() modified its input array in place")
    missing = [name for name in cls._state_arrays if getattr(preprocessor, name, None) is None]
    if missing or not preprocessor.is_fitted:
        _fail(preprocessor, f"fit() must set every array of _state_arrays; missing {missing}")
    out = preprocessor.transform(X, **kwargs)
    if not isinstance(out, tuple) or len(out) != 3:
        _fail(preprocessor, "transform() must return (data, mask, std)")
    data, mask, std = out
    if not isinstance(data, np.ndarray) or data.ndim != 4 or data.dtype != np.float32:
        _fail(preprocessor, "transform() data must be a float32 (N, C, H, W) array, got "
              f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    n, _, h, w = data.shape
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ \
            or mask.shape not in (data.shape, (n, 1, h, w)):
        _fail(preprocessor, f"transform() mask must be boolean, {data.shape} or {(n, 1, h, w)}, "
              f"got {getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    if std is not None and (not isinstance(std, np.ndarray) or std.shape != data.shape):
        _fail(preprocessor, f"transform() std must be None or shaped like the data {data.shape}")
    if before is not None and not np.array_equal(before, X, equal_nan=True):
        _fail(preprocessor, "transform() modified its input array in place")
    again = preprocessor.transform(X, **kwargs)
    if not all(_same(a, b) for a, b in zip(out, again, strict=True)):
        _fail(preprocessor, "transform() of the same input must give the same output")
    records = ([X] if isinstance(X, GalaxyRecord) else X
               if isinstance(X, Survey) or (isinstance(X, (list, tuple))
                                            and all(isinstance(r, GalaxyRecord) for r in X))
               else ())
    for i, record in enumerate(records):
        one = preprocessor.transform_record(record)
        if not all(_same(None if a is None else a[i], b) for a, b in zip(out, one, strict=True)):
            _fail(preprocessor, f"transform_record() of record {i} differs from "
                  f"transform()[{i}]")
    header, arrays = preprocessor.state_dict()
    try:
        json.dumps(header)
    except (TypeError, ValueError) as exc:
        _fail(preprocessor, f"state_dict() header must be JSON-serialisable ({exc})")
    restored = cls.from_state(header, arrays)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = cls.load(preprocessor.save(tmp))
    for copy, how in ((restored, "from_state(state_dict())"), (loaded, "load(save())")):
        if copy.fingerprint() != preprocessor.fingerprint():
            _fail(preprocessor, f"{how} changed the fingerprint")
        if not all(_same(a, b) for a, b in zip(out, copy.transform(X, **kwargs), strict=True)):
            _fail(preprocessor, f"{how} gives another transform() output")
    refit = cls(**preprocessor.get_params(deep=False)).fit(X, **kwargs)
    for a, b in zip(out, refit.transform(X, **kwargs), strict=True):
        if (a is None) != (b is None) or (a is not None and not np.allclose(
                a, b, rtol=1e-5, atol=1e-6, equal_nan=True)):
            _fail(preprocessor, "refitting with the same parameters changed the output "
                  "(seed every random step)")


def _example_batch(seed=0):
    from astro_cl.data.batch import TensorBatch

    rng = np.random.default_rng(seed)
    data = rng.lognormal(size=(4, 3, 24, 24)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[:, :, :2, :2] = True
    return TensorBatch.from_arrays(np.where(mask, 0, data), mask, ids=list("abcd"),
                                   uncertainty=0.1 * data)


def check_augmenter(augmenter, batch=None):
    """Check that an augmenter honours the `~astro_cl.augment.Augmenter` contract.

    Checks: same seed gives the same output; different seeds are allowed to
    differ; the input is not modified; ids, dtype and device are kept; the
    mask stays boolean; flux is conserved if ``conserves_flux`` says so; and
    if the augmenter fuses with a copy of itself in a chain
    (`~astro_cl.augment.base.Augmenter.fusion`), its answer is well formed and
    the fused chain keeps the ids and is seeded alike.

    Parameters
    ----------
    augmenter : `~astro_cl.augment.Augmenter`
    batch : `~astro_cl.data.batch.TensorBatch`, optional
        Input to use (default: a small random batch with a mask and uncertainty).
    """
    import torch

    from astro_cl.augment.base import Augmenter
    from astro_cl.data.batch import TensorBatch

    check_component(augmenter, Augmenter)
    batch = _example_batch() if batch is None else batch
    before = batch.data.clone()
    if augmenter.fit(batch) is not augmenter:
        _fail(augmenter, "fit() must return self")
    out1 = augmenter(batch, seed=123)
    out2 = augmenter(batch, seed=123)
    if not torch.equal(batch.data, before):
        _fail(augmenter, "modified its input in place")
    if not isinstance(out1, TensorBatch):
        _fail(augmenter, "must return a TensorBatch")
    if not torch.equal(out1.data, out2.data) or not torch.equal(out1.mask, out2.mask):
        _fail(augmenter, "the same seed must give the same output")
    if out1.ids != batch.ids:
        _fail(augmenter, "must keep the ids")
    if out1.data.dtype != batch.data.dtype or out1.data.device != batch.data.device:
        _fail(augmenter, "must keep dtype and device")
    if out1.mask.dtype != torch.bool:
        _fail(augmenter, "mask must stay boolean")
    if getattr(augmenter, "conserves_flux", False) and out1.data.shape == batch.data.shape:
        tot_in = torch.where(batch.mask, 0, batch.data).sum(dim=(-2, -1))
        tot_out = torch.where(out1.mask, 0, out1.data).sum(dim=(-2, -1))
        if not torch.allclose(tot_in, tot_out, rtol=0.05):
            _fail(augmenter, "declares conserves_flux but changed the total flux by > 5%")
    _check_fusion(augmenter, batch)


def _check_fusion(augmenter, batch):
    """Check the `~astro_cl.augment.base.Augmenter.fusion` of a step with a copy of itself."""
    import torch

    from astro_cl.augment.compose import Compose

    steps = [(augmenter, 1.0), (augmenter, 1.0)]
    fused = augmenter.fusion(steps, tuple(batch.data.shape))
    if fused is None:
        return
    if not (isinstance(fused, tuple) and len(fused) == 2 and fused[0] == 2
            and callable(fused[1])):
        _fail(augmenter, f"fusion() with one more step must return None or (2, apply), "
              f"got {fused!r}")
    chain = Compose(steps=steps, chunk_size=None)
    out1, out2 = chain(batch, seed=5), chain(batch, seed=5)
    if out1.ids != batch.ids or out1.data.dtype != batch.data.dtype:
        _fail(augmenter, "its fused application must keep the ids and dtype")
    if not torch.equal(out1.data, out2.data) or not torch.equal(out1.mask, out2.mask):
        _fail(augmenter, "its fused application must give the same output for the same seed")


def check_encoder(encoder, X, *, expected_rows=None, fit_params=None):
    """Check that an encoder honours the `~astro_cl.models.Encoder` contract.

    Checks: the estimator contract; `fit` returns ``self`` and sets learned
    attributes; `transform` returns finite values, the same on a second call.
    For a `~astro_cl.models.TorchEncoder` also: its ``__init__`` takes no
    training settings (those are a `~astro_cl.training.TrainerConfig`), the
    fitted model keeps the settings it was trained with as ``trainer_``, and
    the model saved to a file and loaded back (``save`` / ``load``) gives the
    same `transform` output and settings.

    Parameters
    ----------
    encoder : `~astro_cl.models.Encoder`
        An unfitted, small configuration (it is fitted here).
    X : object
        Training data the encoder accepts (a survey, batch or batch source).
    expected_rows : int, optional
        Number of outputs `transform` must return.
    fit_params : dict, optional
        Passed to `fit`, e.g. ``{"trainer": {"epochs": 1, "batch_size": 8}}``.
    """
    import tempfile
    from pathlib import Path

    from astro_cl.models.base import Encoder
    from astro_cl.models.torch_encoder import TorchEncoder
    from astro_cl.training.checkpoints import jsonable
    from astro_cl.training.settings import TrainerConfig

    check_component(encoder, Encoder)
    torch_model = isinstance(encoder, TorchEncoder)
    if torch_model:
        mixed = sorted(set(type(encoder)._param_names()) & set(TrainerConfig.settings()))
        if mixed:
            _fail(encoder, f"__init__ takes training settings {mixed}: they belong to the "
                  "TrainerConfig given to fit(trainer=...), not to the model")
    fitted_before = [k for k in vars(encoder) if k.endswith("_") and not k.startswith("_")]
    if fitted_before:
        _fail(encoder, f"unfitted encoder already has learned attributes {fitted_before}")
    if encoder.fit(X, **(fit_params or {})) is not encoder:
        _fail(encoder, "fit() must return self")
    learned = [k for k in vars(encoder) if k.endswith("_") and not k.startswith("_")]
    if not learned:
        _fail(encoder, "fit() must set learned attributes ending in '_'")
    out = np.asarray(encoder.transform(X))
    if expected_rows is not None and len(out) != expected_rows:
        _fail(encoder, f"transform returned {len(out)} rows, expected {expected_rows}")
    if not np.all(np.isfinite(out)):
        _fail(encoder, "transform returned non-finite values")
    again = np.asarray(encoder.transform(X))
    if not np.allclose(out, again, atol=1e-5):
        _fail(encoder, "transform is not deterministic in evaluation mode")
    if not torch_model:
        return
    if not isinstance(getattr(encoder, "trainer_", None), TrainerConfig):
        _fail(encoder, "fit() must keep the training settings as trainer_ (a TrainerConfig)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        encoder.save(path)
        loaded = type(encoder).load(path)
        if jsonable(loaded.trainer_.get_params()) != jsonable(encoder.trainer_.get_params()):
            _fail(encoder, "load(save()) changed the training settings (trainer_)")
        reloaded = np.asarray(loaded.transform(X))
    if reloaded.shape != out.shape or not np.allclose(out, reloaded, atol=1e-5):
        _fail(encoder, "load(save()) gives another transform() output")


def _n_galaxies(task, data):
    """Return the number of galaxies in a task's data (embedding rows, or maps)."""
    if task.input_kind == "maps":
        from astro_cl.tasks.maps import stack_maps

        return next(iter(stack_maps(data).values()))[0].shape[0]
    from astro_cl.tasks.catalogue import as_embedding

    return len(as_embedding(data)[0])


def _check_task_hooks(task, data, reference, result):
    """Check the optional hooks of a fitted task; return the `TaskOutputs` they make."""
    import json

    from astropy.table import QTable, Table
    from matplotlib.figure import Figure

    from astro_cl.tasks.base import TaskOutputs

    n = _n_galaxies(task, data)
    galaxies = (QTable(reference, copy=True) if isinstance(reference, Table)
                and len(reference) == n else QTable())
    columns = task.galaxy_columns()
    if columns is not None:
        if not isinstance(columns, Table):
            _fail(task, f"galaxy_columns() must return an astropy Table or None, got "
                  f"{type(columns).__name__}")
        if len(columns) != n:
            _fail(task, f"galaxy_columns() must have one row per galaxy ({n}), got "
                  f"{len(columns)}")
        for col in columns.colnames:
            galaxies[col] = columns[col]
    extra = task.extra_tables()
    if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, Table) for k, v in extra.items()):
        _fail(task, "extra_tables() must return a dict of str to astropy Table")
    if task.name in extra:
        _fail(task, f"extra_tables() must not use the task's own name {task.name!r}")
    findings = task.findings()
    try:
        json.dumps(findings, allow_nan=True)
    except (TypeError, ValueError) as exc:
        _fail(task, f"findings() must return a JSON-serialisable dict ({exc})")
    if not isinstance(findings, dict):
        _fail(task, f"findings() must return a dict, got {type(findings).__name__}")
    text = task.describe()
    if not isinstance(text, str) or not text:
        _fail(task, "describe() must return a non-empty str")
    outputs = TaskOutputs(name=task.name, table=result, tables=extra, galaxies=galaxies,
                          findings=findings, params=task.get_params(deep=False))
    figures = type(task).figures(outputs)
    if not (isinstance(figures, tuple) and len(figures) == 2):
        _fail(task, "figures(outputs) must return (figures, captions)")
    figs, caps = figures
    if not all(isinstance(k, str) and isinstance(f, Figure) for k, f in figs.items()):
        _fail(task, "figures(outputs) must return a dict of str to matplotlib Figure")
    if not set(caps) <= set(figs) or not all(isinstance(c, str) for c in caps.values()):
        _fail(task, "figures(outputs): captions must be str, for figures it returns")
    rows = type(task).headline(outputs)
    keys = {"result", "value", "reference", "criterion", "passed"}
    if not isinstance(rows, list) or not all(isinstance(r, dict) and keys <= set(r)
                                             for r in rows):
        _fail(task, f"headline(outputs) must return a list of dicts with keys {sorted(keys)}")
    return outputs


def check_task(task, data, reference=None):
    """Check that a task honours the `~astro_cl.tasks.DownstreamTask` contract.

    Checks: the estimator contract and ``input_kind``; an unfitted task
    refuses to evaluate; ``fit(data, reference)`` (positional) returns
    ``self``; `~astro_cl.tasks.DownstreamTask.result` returns a table or a
    dict, a copy each time; ``evaluate()`` gives the result and
    ``evaluate(data, reference)`` that of a fresh fit; refitting with the same
    parameters gives a result of the same length; and the optional hooks:
    ``galaxy_columns()`` (None or one row per galaxy), ``extra_tables()``
    (tables by new names), ``findings()`` (JSON-able), ``describe()`` (a
    sentence), and the class methods ``figures(outputs)`` (figures and
    captions) and ``headline(outputs)`` (report rows), called with the
    `~astro_cl.tasks.TaskOutputs` the study layer would make.

    Parameters
    ----------
    task : `~astro_cl.tasks.DownstreamTask`
        An unfitted, small configuration (it is fitted here).
    data : `numpy.ndarray`, `~astropy.table.QTable` or maps
        Embeddings (or, for a `~astro_cl.tasks.MapTask`, predicted maps).
    reference : `~astropy.table.QTable` or maps, optional
        The catalogue (or the true maps).
    """
    from astropy.table import Table

    from astro_cl.base import clone
    from astro_cl.tasks.base import DownstreamTask

    check_component(task, DownstreamTask)
    if task.input_kind not in ("embeddings", "maps"):
        _fail(task, f"input_kind must be 'embeddings' or 'maps', got {task.input_kind!r}")
    try:
        clone(task).evaluate()
    except Exception:  # any error will do: the task is not fitted
        pass
    else:
        _fail(task, "evaluate() of an unfitted task must raise")
    if task.fit(data, reference) is not task:
        _fail(task, "fit() must return self")
    result = task.result()
    if not isinstance(result, (Table, dict)):
        _fail(task, f"result() must return a QTable or dict, got {type(result).__name__}")
    meta = result.meta if isinstance(result, Table) else result
    meta["_astro_cl_check"] = True
    again_result = task.result()
    if "_astro_cl_check" in (again_result.meta if isinstance(again_result, Table)
                             else again_result):
        _fail(task, "result() must return a copy: changing it changed the task's result")
    evaluated = task.evaluate()
    if type(evaluated) is not type(again_result) or (
            isinstance(evaluated, Table) and len(evaluated) != len(again_result)):
        _fail(task, "evaluate() must return the fitted task's result()")
    on_data = task.evaluate(data, reference)
    second = type(task)(**task.get_params(deep=False)).fit(data, reference).evaluate()
    if isinstance(result, Table) and not len(again_result) == len(on_data) == len(second):
        _fail(task, "refitting with the same parameters changed the result's length")
    _check_task_hooks(task, data, reference, again_result)
