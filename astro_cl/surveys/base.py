"""The `Survey` interface: a catalogue plus lazily read galaxy records."""

from __future__ import annotations

import reprlib
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from astropy.table import QTable

from astro_cl.base import Component
from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import CatalogueError, SurveyError, ValidationError

if TYPE_CHECKING:
    from astro_cl.data.batch import TensorBatch

__all__ = ["Survey"]


def _warn_renamed(cls: type, old: str, new: str, *, stacklevel: int) -> None:
    # stacklevel counts from the caller of this function
    from astro_cl.exceptions import AstroCLDeprecationWarning

    warnings.warn(f"{cls.__name__} (survey {getattr(cls, 'name', '')!r}): the parameter "
                  f"{old}= is deprecated; use {new}= (in Python, configuration files and "
                  "--set alike)", AstroCLDeprecationWarning, stacklevel=stacklevel + 1)


class Survey(Component):
    """A collection of galaxies: a `~astropy.table.QTable` catalogue and one record per row.

    Subclasses implement `_open` (read headers and the catalogue, not the
    data) and `_read_record` (read one galaxy). Opening is lazy and cached: the
    first access to `catalogue` calls `_open`; `open` forces it, which
    `astro_cl.get_survey` does so that bad paths fail at once.

    The catalogue's first column is ``id`` (str), unique per galaxy.
    """

    #: Field of `GalaxyRecord` that `to_tensors` stacks by default.
    default_kind: ClassVar[str] = "images"
    #: Whether records may be read from several threads at once (see
    #: `~astro_cl.preprocess.PreprocessedCache.get_or_build`). False by default:
    #: readers that silence warnings or enable units change process-wide state.
    thread_safe: ClassVar[bool] = False
    #: Former parameter names, old -> new. The constructor keeps each old name as
    #: a keyword defaulting to None and passes it to `_renamed_param`; `set_params`
    #: accepts it too. Both warn with `~astro_cl.exceptions.AstroCLDeprecationWarning`.
    #: An old name is not a parameter (`get_params` lists the new one only).
    renamed_params: ClassVar[dict[str, str]] = {}

    # -- parameters ------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        # a former name stays in __init__'s signature as an alias, not as a parameter
        return [n for n in super()._param_names() if n not in cls.renamed_params]

    def _renamed_param(self, old: str, old_value: Any, new_value: Any) -> Any:
        """Return the value of a renamed parameter given under either name (for ``__init__``).

        Parameters
        ----------
        old : str
            The former name (a key of `renamed_params`).
        old_value, new_value : object
            The values passed under the former and the current name (None: not given).

        Returns
        -------
        value : object
            ``new_value``, or ``old_value`` with a deprecation warning.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If both names were given.
        """
        if old_value is None:
            return new_value
        new = self.renamed_params[old]
        if new_value is not None:
            msg = (f"{type(self).__name__}: {old}= is the former name of {new}=; give only "
                   f"{new}= (got {old}={old_value!r} and {new}={new_value!r})")
            raise ValidationError(msg)
        _warn_renamed(type(self), old, new, stacklevel=3)
        return old_value

    def set_params(self, **params: Any) -> Self:
        """Set configuration parameters (former names of `renamed_params` too, with a warning).

        Parameters
        ----------
        **params : dict
            Parameter names and new values.

        Returns
        -------
        self : `Survey`
            This survey; its opened catalogue is forgotten.

        Raises
        ------
        ValueError
            If a name is not a parameter of this survey.
        """
        for old in [k for k in params if k in self.renamed_params]:
            new = self.renamed_params[old]
            if new in params:
                msg = (f"{type(self).__name__}.set_params: {old}= is the former name of "
                       f"{new}=; give only {new}=")
                raise ValidationError(msg)
            _warn_renamed(type(self), old, new, stacklevel=2)
            params[new] = params.pop(old)
        return super().set_params(**params)

    # -- to implement ----------------------------------------------------
    def _open(self) -> QTable:
        """Read headers and the catalogue.

        Returns
        -------
        catalogue : `~astropy.table.QTable`
            One row per galaxy, with an ``id`` column.
        """
        raise NotImplementedError

    def _read_record(self, index: int) -> GalaxyRecord:
        """Read the galaxy at catalogue row ``index``.

        Parameters
        ----------
        index : int
            Row number in `catalogue`.

        Returns
        -------
        record : `~astro_cl.data.GalaxyRecord`
        """
        raise NotImplementedError

    # -- provided --------------------------------------------------------
    def open(self) -> Self:
        """Open the survey now (read its catalogue) and return it.

        Returns
        -------
        self : `Survey`
        """
        _ = self.catalogue
        return self

    @property
    def catalogue(self) -> QTable:
        """`~astropy.table.QTable`: one row per galaxy, ``id`` first."""
        cat = self.__dict__.get("_catalogue_cache")
        if cat is None:
            cat = self._open()
            if not isinstance(cat, QTable):
                msg = (f"survey {self.name!r}: _open() must return a QTable, "
                       f"got {type(cat).__name__}")
                raise SurveyError(msg)
            if "id" not in cat.colnames:
                msg = f"survey {self.name!r}: catalogue has no 'id' column; columns: {cat.colnames}"
                raise CatalogueError(msg)
            cat["id"] = np.asarray(cat["id"]).astype(str)
            ids = np.asarray(cat["id"])
            uniq, counts = np.unique(ids, return_counts=True)
            if np.any(counts > 1):
                dup = uniq[counts > 1][:10].tolist()
                msg = f"survey {self.name!r}: catalogue ids are not unique, e.g. {dup}"
                raise CatalogueError(msg)
            self.__dict__["_catalogue_cache"] = cat
            self.__dict__["_index"] = {k: i for i, k in enumerate(ids.tolist())}
        return cat

    def _reset_derived(self) -> None:
        # a parameter changed: the opened catalogue and its index are stale
        for key in ("_catalogue_cache", "_index", "_reader_cache"):
            self.__dict__.pop(key, None)

    @property
    def ids(self) -> list[str]:
        """List of str: galaxy ids in catalogue order."""
        return list(np.asarray(self.catalogue["id"]).tolist())

    def fingerprint(self) -> dict[str, Any] | None:
        """Return what fully determines this survey's galaxies, if that is cheap to say.

        An optional hook for the preprocessed cache
        (`~astro_cl.preprocess.PreprocessedCache`): when it returns a value,
        the cache keys on that value alone instead of listing the ids (which
        opens the catalogue) and hashing the files or the data. A generated
        survey returns its parameters, seed and generator version; a survey
        reading files returns None (the default), and the cache checksums the
        files.

        Returns
        -------
        fingerprint : dict or None
            JSON-serialisable, and different whenever the ids or any record
            would differ.
        """
        return None

    @property
    def meta(self) -> dict[str, Any]:
        """dict: survey-level metadata (pixel scale, bands, provenance)."""
        return dict(self.catalogue.meta)

    def __len__(self) -> int:
        return len(self.catalogue)

    def __iter__(self) -> Iterator[GalaxyRecord]:
        for i in range(len(self)):
            yield self[i]

    def __contains__(self, galaxy_id: object) -> bool:
        _ = self.catalogue
        return str(galaxy_id) in self.__dict__["_index"]

    def index_of(self, galaxy_id: str) -> int:
        """Return the catalogue row of a galaxy id.

        Parameters
        ----------
        galaxy_id : str

        Returns
        -------
        index : int

        Raises
        ------
        KeyError
            If the id is not in the survey.
        """
        _ = self.catalogue
        try:
            return self.__dict__["_index"][str(galaxy_id)]
        except KeyError:
            msg = f"survey {self.name!r} has no galaxy with id {galaxy_id!r} ({len(self)} galaxies)"
            raise KeyError(msg) from None

    def __getitem__(self, key: int | np.integer | str) -> GalaxyRecord:
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                msg = f"survey {self.name!r}: index {key} out of range for {n} galaxies"
                raise IndexError(msg)
            index = int(key) % n
        else:
            index = self.index_of(key)
        record = self._read_record(index)
        if not isinstance(record, GalaxyRecord):
            msg = f"survey {self.name!r}: _read_record must return a GalaxyRecord"
            raise SurveyError(msg)
        return record

    def record(self, galaxy_id: str | int) -> GalaxyRecord:
        """Return the record of one galaxy, by id or row number.

        Parameters
        ----------
        galaxy_id : str or int

        Returns
        -------
        record : `~astro_cl.data.GalaxyRecord`
        """
        return self[galaxy_id]

    def to_tensors(self, ids: Sequence[str] | None = None, *, kind: str | None = None,
                   map_names: Sequence[str] | None = None, targets: str | None = None,
                   target_names: Sequence[str] | None = None) -> TensorBatch:
        """Read records and stack them into a `~astro_cl.data.batch.TensorBatch`.

        Parameters
        ----------
        ids : sequence of str, optional
            Which galaxies (default: all).
        kind : {"images", "cube", "maps"}, optional
            Field to use as input channels (default: `default_kind`).
        map_names : sequence of str, optional
            Maps to stack when ``kind="maps"``.
        targets : {"maps"}, optional
            Also stack property maps as regression targets.
        target_names : sequence of str, optional
            Which maps are targets (default: all).

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
            Data, mask (True = bad), uncertainty where every record has one,
            ids, and targets if asked for. With ``kind="cube"``, ``meta``
            holds the spectral axis (``wavelength``, ``rest_frame``,
            ``flux_unit``) and the per-galaxy ``redshift`` where every record
            has one (see `~astro_cl.data.batch.cube_meta`).
        """
        import torch

        from astro_cl.data.batch import TensorBatch, cube_axis, cube_meta

        kind = kind or self.default_kind
        ids = self.ids if ids is None else [str(i) for i in ids]
        datas, masks, stds, tgts, tmasks, stars = [], [], [], [], [], []
        axes = []  # kind="cube": each cube's spectral axis and redshift, for batch.meta
        for gid in ids:
            rec = self[gid]
            if kind == "cube" and rec.cube is not None:
                axes.append(cube_axis(rec))
            d, m, s = rec.as_arrays(kind, map_names=map_names)
            datas.append(d)
            masks.append(m)
            stds.append(s)
            if rec.star_mask is not None:
                stars.append(rec.star_mask[None])
            if targets is not None:
                t, tm, _ = rec.as_arrays(targets, map_names=target_names)
                tgts.append(t)
                tmasks.append(tm)
        shapes = {d.shape for d in datas}
        if len(shapes) > 1:
            msg = (f"survey {self.name!r}: records have different shapes {sorted(shapes)}; "
                   "resample them to a common grid first")
            raise SurveyError(msg)
        data = np.stack(datas)
        good = ~np.stack(masks)
        data = np.where(good, data, 0.0).astype(np.float32)
        std = None if any(s is None for s in stds) else np.stack([s for s in stds if s is not None])
        extra = {}
        if targets is not None:
            extra["targets"] = torch.from_numpy(np.stack(tgts))
            extra["target_mask"] = torch.from_numpy(np.stack(tmasks))
        if len(stars) == len(ids) and ids:
            extra["star_mask"] = torch.from_numpy(np.stack(stars))
        return TensorBatch(
            data=torch.from_numpy(data), mask=torch.from_numpy(~good), ids=ids,
            uncertainty=None if std is None else torch.from_numpy(std),
            meta={"survey": self.name, "kind": kind, **cube_meta(axes)}, **extra,
        )

    def batches(self, batch_size: int, *, ids: Sequence[str] | None = None, shuffle: bool = False,
                seed: int | np.random.Generator | None = None, drop_last: bool = False,
                **kwargs: Any) -> Iterator[TensorBatch]:
        """Iterate over the survey in batches of tensors.

        Parameters
        ----------
        batch_size : int
            Galaxies per batch.
        ids : sequence of str, optional
            Which galaxies (default: all).
        shuffle : bool, optional
            Shuffle the order (needs ``seed`` for a reproducible order).
        seed : int or `numpy.random.Generator`, optional
            Seed of the shuffle.
        drop_last : bool, optional
            Drop a last, smaller batch.
        **kwargs
            Passed to `to_tensors`.

        Yields
        ------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        if int(batch_size) < 1:
            msg = f"batch_size: expected a positive integer, got {batch_size!r}"
            raise ValueError(msg)
        order = np.asarray(self.ids if ids is None else [str(i) for i in ids])
        if shuffle:
            order = np.random.default_rng(seed).permutation(order)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            yield self.to_tensors(order[start:start + batch_size].tolist(), **kwargs)

    def train_test_split(self, test_size: float = 0.2, *, seed: int | None = None,
                         stratify: str | None = None) -> tuple[list[str], list[str]]:
        """Split the galaxy ids into train and test lists.

        Parameters
        ----------
        test_size : float or int, optional
            Fraction (0-1) or number of test galaxies.
        seed : int, optional
            Random seed.
        stratify : str, optional
            Catalogue column to stratify on.

        Returns
        -------
        train_ids, test_ids : list of str
        """
        from sklearn.model_selection import train_test_split

        strat = None if stratify is None else np.asarray(self.catalogue[stratify])
        train, test = train_test_split(self.ids, test_size=test_size, random_state=seed,
                                       stratify=strat)
        return list(train), list(test)

    def __repr__(self) -> str:
        n: int | str
        try:
            n = len(self)
        except Exception:
            n = "?"
        short = reprlib.Repr()  # keyword arguments need Python 3.12
        short.maxstring = short.maxother = 60
        short.maxlist = 3
        params = ", ".join(f"{k}={short.repr(v)}" for k, v in self.get_params(deep=False).items())
        return f"<{type(self).__name__} {self.name!r}: {n} galaxies ({params})>"
