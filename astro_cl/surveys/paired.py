"""Two surveys of the same galaxies, matched by id: `PairedSurvey` and `SurveySubset`.

Cross-modal models (`~astro_cl.models.clip.CLIPEncoder`) learn from pairs
of records of one galaxy seen by two instruments: an IFU cube and a ugriz
image, say. `PairedSurvey` matches the records of two surveys by their
catalogue ids, whichever order the surveys list them in; it works for any two
surveys, generated (`~astro_cl.surveys.mock.paired_mocks`) or read from
files (SDSS images of eCALIFA galaxies, with ids that agree).

`SurveySubset` is a survey restricted to some ids of another, read lazily;
`PairedSurvey.subset` and `PairedSurvey.train_test_split` use it so that a
held-out split never reads or preprocesses the other galaxies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import SurveyError, ValidationError
from astro_cl.surveys.base import Survey

__all__ = ["PairedSurvey", "SurveySubset"]

#: What `PairedSurvey` does with ids found in one survey only.
_ON_MISSING = ("raise", "drop")


def _show(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return f"[{shown}{', ...' if len(ids) > limit else ''}]"


class SurveySubset(Survey):
    """Some galaxies of a survey, chosen by id and read lazily from it.

    Records and catalogue rows are those of the parent survey, in the order
    of ``ids``. The subset is a survey like any other: it can be preprocessed,
    cached (its fingerprint is the parent's plus the ids) and trained on.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
        The parent survey.
    galaxy_ids : sequence of str
        Galaxy ids of the parent, in the wanted order (no duplicates).

    Raises
    ------
    astro_cl.exceptions.SurveyError
        When opened: if an id is not in the parent (the message names the
        first missing ids) or is repeated.
    """

    name = "subset"
    description = "Some galaxies of another survey, chosen by id and read lazily from it."

    def __init__(self, *, survey=None, galaxy_ids=()):
        self.survey = survey
        self.galaxy_ids = [str(i) for i in galaxy_ids]

    @property
    def default_kind(self) -> str:  # type: ignore[override]
        """str: the parent survey's default kind."""
        return self.survey.default_kind

    @property
    def thread_safe(self) -> bool:  # type: ignore[override]
        """bool: whether the parent survey may be read from several threads."""
        return bool(getattr(self.survey, "thread_safe", False))

    def _open(self):
        if not isinstance(self.survey, Survey):
            msg = (f"SurveySubset.survey: expected a Survey, got "
                   f"{type(self.survey).__name__}")
            raise SurveyError(msg)
        parent = self.survey.catalogue
        index = {str(g): i for i, g in enumerate(np.asarray(parent["id"]).tolist())}
        missing = [g for g in self.galaxy_ids if g not in index]
        if missing:
            msg = (f"survey subset of {self.survey.name!r}: {len(missing)} of "
                   f"{len(self.galaxy_ids)} ids are not in that survey: {_show(missing)}")
            raise SurveyError(msg)
        rows = np.array([index[g] for g in self.galaxy_ids], dtype=int)
        if len(np.unique(rows)) != len(rows):
            uniq, counts = np.unique(np.asarray(self.galaxy_ids), return_counts=True)
            msg = (f"survey subset of {self.survey.name!r}: ids repeated: "
                   f"{_show(uniq[counts > 1].tolist())}")
            raise SurveyError(msg)
        self.__dict__["_rows"] = rows
        cat = parent[rows]
        cat.meta = dict(parent.meta)
        return cat

    def _read_record(self, index):
        _ = self.catalogue
        return self.survey[int(self.__dict__["_rows"][index])]

    def fingerprint(self) -> dict[str, Any] | None:
        """Return the parent's fingerprint and the ids, or None if the parent has none.

        Returns
        -------
        fingerprint : dict or None
        """
        hook = getattr(self.survey, "fingerprint", None)
        parent = hook() if callable(hook) else None
        if parent is None:
            return None
        return {"subset_of": parent, "ids": list(self.galaxy_ids)}

    def source_files(self) -> list:
        """Return the files the parent survey reads (for the preprocessed cache's checksum).

        Returns
        -------
        files : list of `~pathlib.Path`
        """
        from astro_cl.preprocess.cache import source_files_of

        return source_files_of(self.survey)

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("_catalogue_cache", "_index", "_rows"):
            state.pop(key, None)
        return state


class PairedSurvey:
    """Two surveys of the same galaxies, matched by catalogue id.

    Iterating yields ``(first_record, second_record)`` pairs of one galaxy,
    in the order of ``ids``.

    Parameters
    ----------
    first, second : `~astro_cl.surveys.Survey`
        The two surveys (e.g. SDSS-like images and eCALIFA-like cubes).
    on_missing : {"raise", "drop"}, optional
        Ids found in one survey only: an error naming them (``"raise"``, the
        default), or left out (``"drop"``; the pairs are the ids common to
        both, ``missing_`` lists the others).
    ids : sequence of str, optional
        Pair only these galaxies (each must be in both surveys), in this
        order. Default: the common ids, in the order of ``first``.

    Attributes
    ----------
    missing_ : dict of str to list of str
        ``{"first": ids only in first, "second": ids only in second}``
        (filled when the pairs are first listed).

    Raises
    ------
    astro_cl.exceptions.SurveyError
        When the pairs are first listed: with ``on_missing="raise"``, if some
        ids are in one survey only; or if no id is common to both.

    Examples
    --------
    >>> from astro_cl.surveys.mock import paired_mocks
    >>> paired = paired_mocks(n=3, seed=0, cube_size=16, image_size=16)
    >>> len(paired), paired.ids[0]
    (3, 'mock000000')
    >>> image, cube = paired[0]
    >>> image.id == cube.id
    True
    """

    def __init__(self, first, second, *, on_missing="raise", ids=None):
        for label, survey in (("first", first), ("second", second)):
            if not isinstance(survey, Survey):
                msg = (f"PairedSurvey: {label} must be a Survey, got {type(survey).__name__}; "
                       "wrap a list of records in InMemorySurvey(records=...)")
                raise ValidationError(msg)
        if on_missing not in _ON_MISSING:
            msg = f"PairedSurvey: on_missing must be one of {_ON_MISSING}, got {on_missing!r}"
            raise ValidationError(msg)
        self.first = first
        self.second = second
        self.on_missing = on_missing
        self._wanted = None if ids is None else [str(i) for i in ids]
        self._ids = None
        self.missing_ = {"first": [], "second": []}

    # -- matching ---------------------------------------------------------------
    def _match(self) -> list[str]:
        if self._ids is not None:
            return self._ids
        a = [str(i) for i in self.first.ids]
        b = [str(i) for i in self.second.ids]
        in_a, in_b = set(a), set(b)
        if self._wanted is not None:
            lost = {"first": [i for i in self._wanted if i not in in_a],
                    "second": [i for i in self._wanted if i not in in_b]}
            if lost["first"] or lost["second"]:
                parts = [f"{len(v)} missing from the {k} survey ({self._survey(k).name!r}): "
                         f"{_show(v)}" for k, v in lost.items() if v]
                msg = f"PairedSurvey: of the {len(self._wanted)} ids asked for, " \
                      + "; ".join(parts)
                raise SurveyError(msg)
            ids = list(self._wanted)
        else:
            only_a = [i for i in a if i not in in_b]
            only_b = [i for i in b if i not in in_a]
            self.missing_ = {"first": only_a, "second": only_b}
            if (only_a or only_b) and self.on_missing == "raise":
                parts = []
                if only_a:
                    parts.append(f"{len(only_a)} ids of {self.first.name!r} (first) are not in "
                                 f"{self.second.name!r} (second): {_show(only_a)}")
                if only_b:
                    parts.append(f"{len(only_b)} ids of {self.second.name!r} (second) are not "
                                 f"in {self.first.name!r} (first): {_show(only_b)}")
                msg = ("PairedSurvey: the surveys do not hold the same galaxies; "
                       + "; ".join(parts)
                       + ". Pass on_missing='drop' to pair the common ids only")
                raise SurveyError(msg)
            ids = [i for i in a if i in in_b]
        if not ids:
            msg = (f"PairedSurvey: no galaxy id is common to {self.first.name!r} "
                   f"({len(a)} galaxies) and {self.second.name!r} ({len(b)} galaxies)")
            raise SurveyError(msg)
        self._ids = ids
        return ids

    def _survey(self, which: str) -> Survey:
        return self.first if which == "first" else self.second

    @property
    def ids(self) -> list[str]:
        """List of str: the ids of the paired galaxies, in order."""
        return list(self._match())

    def __len__(self) -> int:
        return len(self._match())

    def __getitem__(self, key: int | str) -> tuple[GalaxyRecord, GalaxyRecord]:
        ids = self._match()
        if isinstance(key, (int, np.integer)):
            if not -len(ids) <= key < len(ids):
                msg = f"PairedSurvey: index {key} out of range for {len(ids)} pairs"
                raise IndexError(msg)
            gid = ids[int(key)]
        else:
            gid = str(key)
            if gid not in set(ids):
                msg = f"PairedSurvey: no pair with id {gid!r} ({len(ids)} pairs)"
                raise KeyError(msg)
        return self.first[gid], self.second[gid]

    def __iter__(self) -> Iterator[tuple[GalaxyRecord, GalaxyRecord]]:
        for gid in self._match():
            yield self.first[gid], self.second[gid]

    # -- sides ----------------------------------------------------------------------
    def surveys(self) -> tuple[Survey, Survey]:
        """Return the two surveys restricted to the paired ids, in the same order.

        Returns
        -------
        first, second : `SurveySubset`
            Record ``i`` of both is galaxy ``ids[i]``.
        """
        ids = self._match()
        return (SurveySubset(survey=self.first, galaxy_ids=ids),
                SurveySubset(survey=self.second, galaxy_ids=ids))

    def side(self, kind: str) -> Survey:
        """Return the survey (restricted to the paired ids) whose default kind is ``kind``.

        Parameters
        ----------
        kind : str
            ``"images"`` or ``"cube"`` (a survey's
            `~astro_cl.surveys.Survey.default_kind`).

        Returns
        -------
        survey : `SurveySubset`

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If neither or both surveys have that default kind.
        """
        subsets = self.surveys()
        found = [s for s in subsets if s.default_kind == kind]
        if len(found) != 1:
            kinds = (self.first.default_kind, self.second.default_kind)
            msg = (f"PairedSurvey: expected exactly one survey of default kind {kind!r}; "
                   f"{self.first.name!r} has {kinds[0]!r} and {self.second.name!r} "
                   f"has {kinds[1]!r}")
            raise ValidationError(msg)
        return found[0]

    def subset(self, ids: Sequence[str]) -> PairedSurvey:
        """Return the pairs of some galaxies only.

        Parameters
        ----------
        ids : sequence of str
            Paired ids, in the wanted order.

        Returns
        -------
        paired : `PairedSurvey`

        Raises
        ------
        astro_cl.exceptions.SurveyError
            If an id is not among the pairs.
        """
        ids = [str(i) for i in ids]
        known = set(self._match())
        unknown = [i for i in ids if i not in known]
        if unknown:
            msg = (f"PairedSurvey.subset: {len(unknown)} ids are not among the "
                   f"{len(known)} pairs: {_show(unknown)}")
            raise SurveyError(msg)
        return PairedSurvey(SurveySubset(survey=self.first, galaxy_ids=ids),
                            SurveySubset(survey=self.second, galaxy_ids=ids))

    def train_test_split(self, test_size: float = 0.25, *, seed: int | None = 0
                         ) -> tuple[PairedSurvey, PairedSurvey]:
        """Split the pairs into training and held-out pairs.

        Parameters
        ----------
        test_size : float or int, optional
            Fraction (0-1) or number of held-out pairs.
        seed : int, optional
            Seed of the split.

        Returns
        -------
        train, test : `PairedSurvey`
        """
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(self._match(), test_size=test_size, random_state=seed)
        return self.subset(train), self.subset(test)

    def __repr__(self) -> str:
        # listing the pairs opens both catalogues (a mock simulates them): not in a repr
        n = f"{len(self._ids)} pairs" if self._ids is not None else "pairs (not matched yet)"
        return (f"<PairedSurvey: {n} of {self.first.name!r} (first) and "
                f"{self.second.name!r} (second)>")
