"""The `Preprocessor` interface: a fitted transformation saved as plain npz + JSON.

A preprocessor turns raw survey data (cubes, images) into model inputs. It is
fitted once (``fit``), applied to training and inference data alike
(``transform``) and saved beside the model (``save`` / ``load``) so that
inference uses exactly the training transformation. The saved form is a
directory holding ``preprocessor.json`` (name, parameters, versions, a
checksum of the arrays) and ``state.npz`` (the fitted arrays); no pickle.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeAlias, TypeVar, cast

import numpy as np

from astro_cl.base import Component
from astro_cl.exceptions import CheckpointError, UnknownComponentError, ValidationError
from astro_cl.utils.io import atomic_write

if TYPE_CHECKING:
    import os

    from numpy.typing import ArrayLike, NDArray

    from astro_cl.data.record import GalaxyRecord
    from astro_cl.surveys.base import Survey

    # what fit / transform take: a survey, records, or arrays the subclass accepts
    Inputs: TypeAlias = Survey | GalaxyRecord | Sequence[GalaxyRecord] | ArrayLike
    # what transform returns: data, mask (True = bad) and std (or None)
    Arrays: TypeAlias = tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.float32] | None]

__all__ = ["FORMAT_VERSION", "Preprocessor", "get_preprocessor_class", "register_preprocessor"]

#: Version of the saved layout; bumped when it changes incompatibly.
FORMAT_VERSION = 1

_P = TypeVar("_P", bound="Preprocessor")


def register_preprocessor(cls: type[_P]) -> type[_P]:
    """Register a `Preprocessor` subclass under its ``name``, at run time (usable as a decorator).

    A thin wrapper of `~astro_cl.plugins.registry.register_component` for
    classes defined in a script or a notebook: the class joins the one
    component registry, beside the preprocessors the plugins register
    through the ``astro_cl_register_preprocessors`` hook. A package should
    implement that hook instead (see :doc:`/plugins`).

    Parameters
    ----------
    cls : type
        A `Preprocessor` subclass with a unique ``name``.

    Returns
    -------
    cls : type

    Raises
    ------
    astro_cl.exceptions.PluginError
        If ``cls`` is not a named `Preprocessor` subclass or its name is taken.
    """
    from astro_cl.plugins.registry import register_component

    return register_component("preprocessor", cls)


def get_preprocessor_class(name: str) -> type[Preprocessor]:
    """Return the preprocessor class registered as ``name``.

    A thin wrapper of `~astro_cl.plugins.registry.get_component_class`
    (``kind="preprocessor"``) raising `~astro_cl.exceptions.ValidationError`,
    as a bad configuration value does.

    Parameters
    ----------
    name : str

    Returns
    -------
    cls : type

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If no plugin registered a preprocessor of that name; the message lists
        the available ones.
    """
    from astro_cl.plugins.registry import available_components, get_component_class

    try:
        # the registry checked at registration that it subclasses Preprocessor
        return cast("type[Preprocessor]", get_component_class("preprocessor", name))
    except UnknownComponentError:
        msg = (f"unknown preprocessor {name!r}; available preprocessors: "
               f"{', '.join(available_components('preprocessor')) or 'none'}")
        raise ValidationError(msg) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _arrays_digest(arrays: Mapping[str, ArrayLike]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


class Preprocessor(Component):
    """Base class of fitted preprocessing steps (scikit-learn style).

    Subclasses implement `_fit_records` and `transform_record` (and, when
    they can work on plain arrays, `_fit_arrays` / `_transform_arrays`), and
    list their fitted array attributes in ``_state_arrays`` (names ending in
    an underscore). Parameters must be JSON-serialisable.
    """

    #: Names of the fitted array attributes saved by `save`.
    _state_arrays: ClassVar[tuple[str, ...]] = ()
    #: Version of this preprocessor's algorithm; a saved state with another
    #: version is refused on load.
    version: ClassVar[int] = 1
    #: Whether a fitted instance may transform records from several threads
    #: at once (see `~astro_cl.preprocess.PreprocessedCache.get_or_build`).
    thread_safe: ClassVar[bool] = False

    # -- fitting -----------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """bool: whether `fit` has been called (or a state loaded)."""
        return all(getattr(self, name, None) is not None for name in self._state_arrays)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            msg = f"{type(self).__name__} is not fitted; call fit() or load() first"
            raise ValidationError(msg)

    def fit(self, X: Inputs, **kwargs: Any) -> Self:
        """Learn the transformation from training data.

        Parameters
        ----------
        X : `~astro_cl.surveys.base.Survey`, sequence of `~astro_cl.data.GalaxyRecord` or array
            Training data: a survey or records, or arrays the subclass accepts.
        **kwargs
            Passed to the subclass (e.g. per-galaxy redshifts for arrays).

        Returns
        -------
        self : `Preprocessor`
        """
        records = _as_records(X)
        if records is not None:
            self._fit_records(records)
        else:
            self._fit_arrays(X, **kwargs)
        return self

    def _fit_records(self, records: Iterable[GalaxyRecord]) -> None:
        raise NotImplementedError

    def _fit_arrays(self, X: Inputs, **kwargs: Any) -> None:
        msg = f"{type(self).__name__} cannot be fitted on {type(X).__name__}; give a survey"
        raise ValidationError(msg)

    # -- applying ----------------------------------------------------------
    def transform_record(self, record: GalaxyRecord) -> Arrays:
        """Transform one galaxy.

        Parameters
        ----------
        record : `~astro_cl.data.GalaxyRecord`

        Returns
        -------
        data : `numpy.ndarray` of float32
            ``(C, H, W)`` model input.
        mask : `numpy.ndarray` of bool
            ``(C, H, W)`` or ``(1, H, W)``, True where bad.
        std : `numpy.ndarray` of float32 or None
            One-sigma uncertainty of ``data``, if known.
        """
        raise NotImplementedError

    def transform(self, X: Inputs, **kwargs: Any) -> Arrays:
        """Apply the fitted transformation.

        Parameters
        ----------
        X : `~astro_cl.surveys.base.Survey`, sequence of records, or array
            Data to transform.
        **kwargs
            Passed to the subclass for array input.

        Returns
        -------
        data, mask, std : `numpy.ndarray`
            Stacked ``(N, C, H, W)`` outputs (``std`` may be None).
        """
        self._check_fitted()
        records = _as_records(X)
        if records is None:
            return self._transform_arrays(X, **kwargs)
        outs = [self.transform_record(rec) for rec in records]
        data = np.stack([o[0] for o in outs])
        mask = np.stack([o[1] for o in outs])
        std = (None if any(o[2] is None for o in outs)
               else np.stack([o[2] for o in outs if o[2] is not None]))
        return data, mask, std

    def _transform_arrays(self, X: Inputs, **kwargs: Any) -> Arrays:
        msg = f"{type(self).__name__} cannot transform {type(X).__name__}; give a survey or records"
        raise ValidationError(msg)

    def fit_transform(self, X: Inputs, **kwargs: Any) -> Arrays:
        """Fit, then transform the same data.

        Parameters
        ----------
        X : survey, records or array
        **kwargs
            Passed to `fit` and `transform`.

        Returns
        -------
        data, mask, std : `numpy.ndarray`
        """
        return self.fit(X, **kwargs).transform(X, **kwargs)

    # -- persistence --------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return the plain state: JSON-able header and the fitted arrays.

        Returns
        -------
        header : dict
            ``name``, ``class``, ``version``, ``format_version``, ``params``,
            ``astro_cl_version`` and ``arrays_sha256``.
        arrays : dict of str to `numpy.ndarray`
        """
        from astro_cl import __version__

        self._check_fitted()
        arrays = {name: np.asarray(getattr(self, name)) for name in self._state_arrays}
        header = {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": self.version,
            "format_version": FORMAT_VERSION,
            "params": _jsonable(self.get_params(deep=False)),
            "astro_cl_version": __version__,
            "arrays_sha256": _arrays_digest(arrays),
        }
        return header, arrays

    @classmethod
    def from_state(cls, header: Mapping[str, Any], arrays: Mapping[str, ArrayLike], *,
                   source: str = "state") -> Self:
        """Rebuild a fitted preprocessor from `state_dict` output.

        Parameters
        ----------
        header : dict
        arrays : mapping of str to `numpy.ndarray`
        source : str, optional
            Where the state came from, for error messages.

        Returns
        -------
        preprocessor : `Preprocessor`

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            If the name, version or format do not match, or the arrays are
            missing or corrupt.
        """
        name = header.get("name")
        if cls is Preprocessor:
            try:
                # a header without a name fails the lookup as an unknown name does
                found = get_preprocessor_class(name)  # type: ignore[arg-type]
                # when called on Preprocessor itself, Self is Preprocessor
                cls = cast("type[Self]", found)
            except ValidationError as exc:
                msg = f"{source}: {exc}"
                raise CheckpointError(msg) from None
        elif name != cls.name:
            msg = f"{source}: holds a {name!r} preprocessor, not {cls.name!r}"
            raise CheckpointError(msg)
        if header.get("format_version") != FORMAT_VERSION:
            msg = (f"{source}: format version {header.get('format_version')!r}; "
                   f"this astro_cl reads version {FORMAT_VERSION}")
            raise CheckpointError(msg)
        if header.get("version") != cls.version:
            msg = (f"{source}: {name!r} version {header.get('version')!r} was saved, "
                   f"this astro_cl implements version {cls.version}; refit the preprocessor")
            raise CheckpointError(msg)
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        missing = [k for k in cls._state_arrays if k not in arrays]
        if missing:
            msg = f"{source}: missing fitted arrays {missing}"
            raise CheckpointError(msg)
        if header.get("arrays_sha256") != _arrays_digest(arrays):
            msg = f"{source}: the fitted arrays do not match their checksum (corrupt file)"
            raise CheckpointError(msg)
        try:
            obj = cls(**header.get("params", {}))
        except TypeError as exc:
            msg = f"{source}: parameters do not fit {cls.__name__}: {exc}"
            raise CheckpointError(msg) from None
        for key in cls._state_arrays:
            setattr(obj, key, arrays[key])
        return obj

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the fitted preprocessor to a directory (JSON + npz, written atomically).

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Directory to create (or overwrite the two files in).

        Returns
        -------
        path : `~pathlib.Path`
        """
        path = Path(path)
        header, arrays = self.state_dict()
        buf = io.BytesIO()
        # (numpy's stub fears a key named allow_pickle; the keys are _state_arrays)
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        with atomic_write(path / "state.npz", "wb") as fh:
            fh.write(buf.getvalue())
        with atomic_write(path / "preprocessor.json") as fh:
            json.dump(header, fh, indent=2, sort_keys=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Load a preprocessor saved with `save`.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            The directory written by `save`.

        Returns
        -------
        preprocessor : `Preprocessor`

        Raises
        ------
        astro_cl.exceptions.CheckpointError
            If the files are missing, unreadable, corrupt, or hold another
            preprocessor or version.
        """
        path = Path(path)
        meta = path / "preprocessor.json"
        try:
            header = json.loads(meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            msg = f"{meta}: no saved preprocessor here"
            raise CheckpointError(msg) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            msg = f"{meta}: not valid JSON ({exc})"
            raise CheckpointError(msg) from None
        try:
            with np.load(path / "state.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            msg = f"{path / 'state.npz'}: cannot read the fitted arrays ({exc})"
            raise CheckpointError(msg) from None
        return cls.from_state(header, arrays, source=str(path))

    def fingerprint(self) -> str:
        """Return a hash of the configuration and fitted state (a cache key part).

        Returns
        -------
        digest : str
        """
        header, _ = self.state_dict()
        text = json.dumps({"name": header["name"], "version": header["version"],
                           "params": header["params"], "arrays": header["arrays_sha256"]},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _as_records(X: object) -> Iterable[GalaxyRecord] | None:
    """Return an iterable of records for a survey or record sequence, else None."""
    from astro_cl.data.record import GalaxyRecord
    from astro_cl.surveys.base import Survey

    if isinstance(X, Survey):
        return X
    if isinstance(X, GalaxyRecord):
        return [X]
    if isinstance(X, (list, tuple)) and X and all(isinstance(r, GalaxyRecord) for r in X):
        return X
    return None
