"""What the report of a study says: the text, the headline checks and the figures.

A report is assembled from *parts*: a `~astro_cl.studies.TaskResults`, an
`~astro_cl.studies.ECALIFAStudy` or a `~astro_cl.studies.PicassoStudy`. Each
part says what was done (``overview()``), what to warn about (``notes()``), its
headline results beside the studies' numbers (``headline()``), its figures
(``figures()``) and tables (``report_tables()``); `write_study_report` puts
one or several parts on one page with `~astro_cl.report.html.write_report`.

The headline checks (`ACCEPTANCE`) are the toolkit's reading of the two
studies' findings as numbers; `check_acceptance` marks them passed or missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import os
    from pathlib import Path

    from astropy.table import QTable, Table
    from matplotlib.figure import Figure

    from astro_cl.augment.base import Augmenter
    from astro_cl.tasks.base import DownstreamTask, TaskOutputs

__all__ = [
    "ACCEPTANCE",
    "ACCEPTANCE_MEDIUM",
    "MAP_CHECKS",
    "acceptance_values",
    "assemble_report",
    "check_acceptance",
    "describe_augmenter",
    "describe_tasks",
    "task_figures",
    "task_headline",
    "write_study_report",
]

class _TaskResults(Protocol):
    """What the report reads of a `~astro_cl.studies.TaskResults` (which imports this module)."""

    tables: dict[str, QTable]
    galaxies: QTable
    info: dict[str, Any]
    config: dict[str, Any]
    history: dict[str, Any]
    thumbnails: dict[str, np.ndarray]

    @property
    def projection(self) -> np.ndarray | None: ...

    @property
    def collapsed(self) -> bool: ...

    def task_names(self) -> list[str]: ...

    def task_class(self, name: str) -> type[DownstreamTask]: ...

    def outputs(self, name: str, **options: Any) -> TaskOutputs: ...


class _Part(Protocol):
    """A part of a report page (see `assemble_report`)."""

    def overview(self) -> list[tuple[str, str]]: ...

    def notes(self) -> list[tuple[str, str]]: ...

    def headline(self) -> list[dict[str, Any]]: ...

    def figures(self) -> tuple[dict[str, Figure], dict[str, str]]: ...

    def report_tables(self) -> dict[str, QTable]: ...


#: Headline checks: name -> (threshold, sense, what is measured, what the study found).
#: The thresholds are those of the demo's default size ("small"), met at seeds 0-4
#: with margin; `ACCEPTANCE_MEDIUM` adds the science checks of
#: ``astro-cl demo --size medium``. See :doc:`/user_guide/demo`.
ACCEPTANCE: dict[str, tuple[float, str, str, str]] = {
    "purity_bc_rs_k2": (0.85, ">=", "blue cloud vs red sequence purity, k-means k=2",
                        "2 clusters separate the blue cloud and the red sequence "
                        "(no purity quoted)"),
    "r2_log_Mass": (0.5, ">=", "CV R^2 of log stellar mass from the embedding",
                    "stellar mass 7th of the properties most correlated with the embedding"),
    "r2_EW_Ha_cen": (0.5, ">=", "CV R^2 of EW(Halpha) from the embedding",
                     "EW(Halpha) the property most correlated with the embedding"),
    "sigma_stellar_mass": (0.15, "<=", "U-Net stellar-mass scatter within 2 R_half (dex)",
                           "0.204 dex at 64 px; 0.090 dex at 256 px (ugriz, 17,600 "
                           "training pairs)"),
    "bias_stellar_mass": (0.05, "<=", "U-Net stellar-mass |bias| within 2 R_half (dex)",
                          "+0.103 dex at 256 px"),
}

#: The science checks of the demo's ``medium`` size (and ``study``): `ACCEPTANCE`
#: with PICASSSO's stellar-mass scatter at 256 px and the mock-physics goal of a
#: 2x skill over a constant prediction in mass-weighted age and metallicity
#: (which even a better-informed estimator misses on SDSS-depth mock images:
#: ``docs/science/map_skill_ceiling.py``).
ACCEPTANCE_MEDIUM: dict[str, tuple[float, str, str, str]] = {
    **ACCEPTANCE,
    "sigma_stellar_mass": (0.10, "<=", ACCEPTANCE["sigma_stellar_mass"][2],
                           ACCEPTANCE["sigma_stellar_mass"][3]),
    "skill_age_mw": (0.5, "<=", "U-Net mass-weighted age scatter within 2 R_half over a "
                                "constant prediction's",
                     "no constant baseline published; PICASSSO's age x mass: 0.086 dex"),
    "skill_metallicity": (0.5, "<=", "U-Net mass-weighted metallicity scatter within 2 "
                                     "R_half over a constant prediction's",
                          "no constant baseline published; PICASSSO's metal mass: 0.143 dex"),
}

#: The `ACCEPTANCE` checks of the maps study (`~astro_cl.studies.PicassoStudy`); the
#: others are the contrastive study's.
MAP_CHECKS = ("sigma_stellar_mass", "bias_stellar_mass", "skill_age_mw", "skill_metallicity")


def acceptance_values(tables: Mapping[str, Table]) -> dict[str, float]:
    """Return the values of the `ACCEPTANCE` checks found in a set of result tables.

    Parameters
    ----------
    tables : dict of str to `~astropy.table.Table`
        Tables by name: ``sfms-clustering`` (purity of k-means, k = 2),
        ``property-regression`` (the better R^2 of its models for ``log_Mass``
        and ``EW_Ha_cen``), ``map-metrics`` (``sigma`` of ``stellar_mass``;
        ``sigma_ratio``, the scatter over a constant prediction's, of the
        mass-weighted means ``age_mw`` and ``metallicity``).

    Returns
    -------
    values : dict of str to float
        NaN for a check whose table or row is missing.
    """
    values = dict.fromkeys(ACCEPTANCE_MEDIUM, np.nan)
    clus = tables.get("sfms-clustering")
    if clus is not None:
        for r in clus:
            if str(r["method"]) == "kmeans" and int(r["n_clusters"]) == 2:
                values["purity_bc_rs_k2"] = float(r["purity"])
    reg = tables.get("property-regression")
    if reg is not None:
        for key, prop in (("r2_log_Mass", "log_Mass"), ("r2_EW_Ha_cen", "EW_Ha_cen")):
            r2 = [float(r["r2"]) for r in reg if str(r["property"]) == prop]
            if r2:
                values[key] = max(r2)
    maps = tables.get("map-metrics")
    if maps is not None:
        for r in maps:
            name = str(r["property"])
            if name == "stellar_mass":
                values["sigma_stellar_mass"] = float(getattr(r["sigma"], "value", r["sigma"]))
                values["bias_stellar_mass"] = abs(float(getattr(r["mu"], "value", r["mu"])))
            elif name in ("age_mw", "metallicity") and "sigma_ratio" in maps.colnames:
                values[f"skill_{name}"] = float(r["sigma_ratio"])
    return values


def check_acceptance(values: Mapping[str, float], *,
                     thresholds: Mapping[str, tuple[float, str, str, str]] | None = None,
                     ) -> dict[str, dict[str, Any]]:
    """Mark each check passed or missed.

    Parameters
    ----------
    values : dict of str to float
        Output of `acceptance_values` (checks absent here are left out).
    thresholds : dict, optional
        Checks in the form of `ACCEPTANCE` (default: `ACCEPTANCE`).

    Returns
    -------
    checks : dict of str to dict
        Per check: ``description``, ``value``, ``sense``, ``threshold``,
        ``passed`` (False for a NaN value), ``study`` (the study's finding).
    """
    thresholds = ACCEPTANCE if thresholds is None else thresholds
    checks = {}
    for name, (threshold, sense, text, study) in thresholds.items():
        if name not in values:
            continue
        v = float(values[name])
        ok = bool(np.isfinite(v) and (v >= threshold if sense == ">=" else v <= threshold))
        checks[name] = {"description": text, "value": v, "sense": sense,
                        "threshold": threshold, "passed": ok, "study": study}
    return checks


def _check_rows(checks: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"result": c["description"], "value": c["value"], "reference": c["study"],
             "criterion": f"{c['sense']} {c['threshold']:g}", "passed": c["passed"]}
            for c in checks.values()]


def describe_augmenter(augmenter: Augmenter | None) -> str:
    """Describe an augmenter chain in one line.

    Parameters
    ----------
    augmenter : `~astro_cl.augment.Augmenter` or None

    Returns
    -------
    text : str
        Each step with its parameters and the probability it is applied.
    """
    if augmenter is None:
        return "none"
    steps = getattr(augmenter, "steps", None)
    if not steps:
        return repr(augmenter)
    parts = []
    for step in steps:
        aug, p = step if isinstance(step, (tuple, list)) else (step, 1.0)
        parts.append(f"{aug!r}" + ("" if float(p) == 1.0 else f" with probability {p:g}"))
    return "; ".join(parts)


def describe_tasks(results: _TaskResults) -> str:
    """Describe in one paragraph the tasks a `~astro_cl.studies.TaskResults` ran.

    Each task says what it did (its ``describe`` hook, kept in ``run.json``).

    Parameters
    ----------
    results : `~astro_cl.studies.TaskResults`

    Returns
    -------
    text : str
    """
    entries = results.info.get("tasks", {})
    parts = [str(entries.get(name, {}).get("description") or name)
             for name in results.task_names()]
    left_out = results.info.get("left_out", {})
    by_role: dict[str, list[str]] = {}
    for col, why in left_out.items():
        by_role.setdefault(why, []).append(col)
    text = "; ".join(parts) + "." if parts else "none."
    if by_role:
        text += (" Catalogue columns not analysed as properties (pass them as properties to "
                 "analyse them): " + "; ".join(f"{why}: {', '.join(cols)}"
                                              for why, cols in by_role.items()) + ".")
    return text


def _task_classes(results: _TaskResults) -> list[tuple[str, type[DownstreamTask]]]:
    """``(name, class)`` of the tasks of a run whose class is at hand (fitted or installed)."""
    from astro_cl.exceptions import UnknownComponentError

    out = []
    for name in results.task_names():
        try:
            out.append((name, results.task_class(name)))
        except UnknownComponentError:  # said in TaskResults.notes
            continue
    return out


def task_headline(results: _TaskResults) -> list[dict[str, Any]]:
    """Return the headline rows of a `~astro_cl.studies.TaskResults`.

    Parameters
    ----------
    results : `~astro_cl.studies.TaskResults`

    Returns
    -------
    rows : list of dict
        The embedding's spread (collapse check), each task's rows (its
        ``headline`` hook), and the contrastive study's `ACCEPTANCE` checks
        the tables allow.
    """
    rows: list[dict[str, Any]] = []
    emb = results.info.get("embedding")
    if emb:
        rows.append({"result": "embedding spread (relative to the vectors' length)",
                     "value": emb["relative_spread"],
                     "reference": "not collapsed", "criterion": f">= {emb['threshold']:g}",
                     "passed": not emb["collapsed"]})
    for name, cls in _task_classes(results):
        rows.extend(cls.headline(results.outputs(name)))
    values = acceptance_values(results.tables)
    rows.extend(_check_rows(check_acceptance(
        {k: v for k, v in values.items() if np.isfinite(v) and k not in MAP_CHECKS})))
    return rows


def task_figures(results: _TaskResults, *, n_columns: int = 9, n_queries: int = 4,
                 queries: Sequence[str] | None = None, thumbnail_label: str | None = None,
                 ) -> tuple[dict[str, Figure], dict[str, str]]:
    """Draw the figures of a `~astro_cl.studies.TaskResults`.

    Each task draws its own (its ``figures`` hook, from what it left in the
    run: `~astro_cl.studies.TaskResults.outputs`); then the training curves.

    Parameters
    ----------
    results : `~astro_cl.studies.TaskResults`
    n_columns : int, optional
        Properties drawn on the projection (best ranked first).
    n_queries : int, optional
        Query galaxies in the similarity grid.
    queries : list of str, optional
        The queries to show (default: the first of the similarity table).
    thumbnail_label : str, optional
        What the thumbnails show, for the caption (e.g. "log luminosity").

    Returns
    -------
    figures : dict of str to `matplotlib.figure.Figure`
    captions : dict of str to str
    """
    from astro_cl.report import figures as F

    options = {"n_columns": n_columns, "n_queries": n_queries, "queries": queries,
               "thumbnail_label": thumbnail_label}
    figs: dict[str, Figure] = {}
    caps: dict[str, str] = {}
    for name, cls in _task_classes(results):
        task_figs, task_caps = cls.figures(results.outputs(name, **options))
        for key, fig in task_figs.items():
            title = key if key not in figs else f"{key} ({name})"
            figs[title] = fig
            if key in task_caps:
                caps[title] = task_caps[key]
    for name, hist in results.history.items():
        if hist:
            key = f"training curves: {name}"
            figs[key] = F.plot_training_curves(hist, title=f"training of {name}")
            caps[key] = ("Per-epoch training record: the loss (training and, when held out, "
                         "validation), the learning rate, the epoch time and the throughput.")
    return figs, caps


def assemble_report(parts: dict[str, _Part] | Iterable[_Part], *,
                    render: Callable[[Figure], Any] | None = None) -> dict[str, Any]:
    """Collect what one report page shows from one or several study parts.

    Parameters
    ----------
    parts : dict of str to part, or list of parts
        `~astro_cl.studies.TaskResults`, `~astro_cl.studies.ECALIFAStudy`,
        `~astro_cl.studies.PicassoStudy` or anything with ``overview()``,
        ``notes()``, ``headline()``, ``figures()`` and ``report_tables()``;
        with a dict, the names prefix each part's "what was done" items.
    render : callable, optional
        Called on each figure as it is drawn (e.g.
        `~astro_cl.report.html.figure_png`, so that a pipeline can render and
        free the figures, and time it); its result replaces the figure.

    Returns
    -------
    content : dict
        ``overview``, ``notes``, ``headline``, ``figures``, ``captions`` and
        ``tables``: keyword arguments of `~astro_cl.report.html.write_report`.
    """
    named = parts.items() if isinstance(parts, dict) else [(None, p) for p in parts]
    content: dict[str, Any] = {"overview": [], "notes": [], "headline": [], "figures": {},
                               "captions": {}, "tables": {}}
    for label, part in named:
        content["overview"].extend((f"{label}: {k}" if label else k, v)
                                   for k, v in part.overview())
        content["notes"].extend(part.notes())
        content["headline"].extend(part.headline())
        figs, caps = part.figures()
        for name, fig in figs.items():
            content["figures"][name] = render(fig) if render is not None else fig
        content["captions"].update(caps)
        content["tables"].update(part.report_tables())
    return content


def write_study_report(directory: str | os.PathLike[str],
                       parts: dict[str, _Part] | Iterable[_Part], *,
                       title: str = "astro_cl report",
                       notes: Iterable[str | tuple[str, str]] = (),
                       config: Mapping[str, Any] | None = None,
                       provenance: Mapping[str, Any] | None = None) -> Path:
    """Write one report page from one or several study parts.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Report folder.
    parts : dict of str to part, or list of parts
        See `assemble_report`.
    title : str, optional
    notes : list, optional
        Notes shown before the parts' own (see `~astro_cl.report.html.write_report`).
    config, provenance : dict, optional
        Shown in the provenance section.

    Returns
    -------
    index : `~pathlib.Path`
        The report's ``index.html``.

    Examples
    --------
    >>> from astro_cl.studies import write_study_report
    >>> write_study_report("out/report", {"cubes": cubes, "maps": maps})   # doctest: +SKIP
    """
    from astro_cl.report.html import write_report

    content = assemble_report(parts)
    content["notes"] = list(notes or ()) + content["notes"]
    return write_report(directory, title=title, config=config, provenance=provenance,
                        **content)
