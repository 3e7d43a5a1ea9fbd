"""A survey held in memory: records built by a script, a generator or a test."""

from astropy.table import QTable

from astro_cl.data.record import GalaxyRecord
from astro_cl.exceptions import SurveyError
from astro_cl.surveys.base import Survey

__all__ = ["InMemorySurvey"]


class InMemorySurvey(Survey):
    """A survey over a list of `~astro_cl.data.GalaxyRecord` objects.

    Parameters
    ----------
    records : sequence of `~astro_cl.data.GalaxyRecord`
        The galaxies, with unique ids.
    table : `~astropy.table.QTable`, optional
        One row per record with an ``id`` column; default: built from each
        record's ``properties``.
    default_kind : {"images", "cube", "maps"}, optional
        Field stacked by `to_tensors`.
    """

    name = "in-memory"
    thread_safe = True
    description = "Galaxy records held in memory (built by a script or a generator)."

    def __init__(self, *, records=(), table=None, default_kind="images"):
        self.records = records
        self.table = table
        self.default_kind = default_kind  # shadows the class default on purpose

    def _open(self):
        records = list(self.records)
        for i, rec in enumerate(records):
            if not isinstance(rec, GalaxyRecord):
                msg = (f"in-memory survey: records[{i}] is a {type(rec).__name__}, "
                       "not a GalaxyRecord")
                raise SurveyError(msg)
        self._records = {rec.id: rec for rec in records}
        if self.table is not None:
            cat = QTable(self.table, copy=True)
        else:
            rows = [{"id": rec.id, **rec.properties} for rec in records]
            cat = QTable(rows=rows) if rows else QTable({"id": []})
        missing = [i for i in map(str, cat["id"]) if i not in self._records] if len(cat) else []
        if missing:
            msg = f"in-memory survey: catalogue ids without a record: {missing[:10]}"
            raise SurveyError(msg)
        return cat

    def _read_record(self, index):
        return self._records[str(self.catalogue["id"][index])]
