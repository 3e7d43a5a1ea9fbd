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

import numpy as np

__all__ = [
    "ACCEPTANCE",
    "acceptance_values",
    "assemble_report",
    "check_acceptance",
    "describe_augmenter",
    "describe_tasks",
    "task_figures",
    "task_headline",
    "write_study_report",
]

#: Short descriptions of the built-in tasks for the report's "what was done".
_TASK_TEXT = {
    "property-correlation": "property ranking by cross-validated kNN score",
    "property-regression": "linear-probe (ridge) and kNN regression of the properties",
    "sfms-clustering": "k-means and Gaussian-mixture clusters against the SFMS classes",
    "environment": "two-sample tests of the embedding between environments",
    "similarity-search": "cosine similarity search",
}


#: Headline checks: name -> (threshold, sense, what is measured, what the study found).
#: The thresholds are met at the demo's default size ("small"); see :doc:`/user_guide/demo`.
ACCEPTANCE = {
    "purity_bc_rs_k2": (0.85, ">=", "blue cloud vs red sequence purity, k-means k=2",
                        "2 clusters separate the blue cloud and the red sequence "
                        "(no purity quoted)"),
    "r2_log_Mass": (0.5, ">=", "CV R^2 of log stellar mass from the embedding",
                    "stellar mass 7th of the properties most correlated with the embedding"),
    "r2_EW_Ha_cen": (0.5, ">=", "CV R^2 of EW(Halpha) from the embedding",
                     "EW(Halpha) the property most correlated with the embedding"),
    "sigma_stellar_mass": (0.10, "<=", "U-Net stellar-mass scatter within 2 R_half (dex)",
                           "0.090 dex (ugriz, 256 px, 17,600 training pairs)"),
}


def acceptance_values(tables):
    """Return the values of the `ACCEPTANCE` checks found in a set of result tables.

    Parameters
    ----------
    tables : dict of str to `~astropy.table.Table`
        Tables by name: ``sfms-clustering`` (purity of k-means, k = 2),
        ``property-regression`` (the better R^2 of its models for ``log_Mass``
        and ``EW_Ha_cen``), ``map-metrics`` (``sigma`` of ``stellar_mass``).

    Returns
    -------
    values : dict of str to float
        NaN for a check whose table or row is missing.
    """
    values = dict.fromkeys(ACCEPTANCE, np.nan)
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
            if str(r["property"]) == "stellar_mass":
                values["sigma_stellar_mass"] = float(getattr(r["sigma"], "value", r["sigma"]))
    return values


def check_acceptance(values, *, thresholds=None):
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


def _check_rows(checks):
    return [{"result": c["description"], "value": c["value"], "reference": c["study"],
             "criterion": f"{c['sense']} {c['threshold']:g}", "passed": c["passed"]}
            for c in checks.values()]


def describe_augmenter(augmenter):
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


def describe_tasks(results):
    """Describe in one paragraph the tasks a `~astro_cl.studies.TaskResults` ran.

    Parameters
    ----------
    results : `~astro_cl.studies.TaskResults`

    Returns
    -------
    text : str
    """
    params = results.config.get("tasks", {})
    parts = []
    for name, p in params.items():
        text = _TASK_TEXT.get(name, name)
        if name == "property-correlation":
            ranking = results.tables.get(name)
            n = len(ranking) if ranking is not None else 0
            text += (f" ({n} properties, {p.get('cv')}-fold, {p.get('n_neighbors')} neighbours, "
                     f"{p.get('n_bootstrap')} bootstrap resamples; "
                     f"{results.info.get('projection') or 'no'} projection)")
        elif name == "property-regression":
            text += f" ({p.get('cv')}-fold)"
        elif name == "sfms-clustering":
            text += f" (k = {', '.join(str(k) for k in p.get('n_clusters', []))})"
        elif name == "environment":
            n_perm = results.info.get("n_permutations", {})
            tests = ", ".join(f"{t} ({n_perm.get(t, '?')} permutations)"
                              for t in p.get("tests", []))
            text += f" of column {p.get('column')!r}: {tests}"
        elif name == "similarity-search":
            text += f" ({p.get('n_neighbors')} neighbours)"
        parts.append(text)
    left_out = results.info.get("left_out", {})
    by_role = {}
    for col, why in left_out.items():
        by_role.setdefault(why, []).append(col)
    text = "; ".join(parts) + "." if parts else "none."
    if by_role:
        text += (" Catalogue columns not ranked as properties (pass them as properties to "
                 "rank them): " + "; ".join(f"{why}: {', '.join(cols)}"
                                            for why, cols in by_role.items()) + ".")
    return text


def task_headline(results):
    """Return the headline rows of a `~astro_cl.studies.TaskResults`.

    Parameters
    ----------
    results : `~astro_cl.studies.TaskResults`

    Returns
    -------
    rows : list of dict
        The embedding's spread (collapse check), the strongest property and
        Kendall's tau against the eCALIFA study's order, and the `ACCEPTANCE`
        checks the tables allow.
    """
    from astro_cl.tasks.correlation import STUDY_ORDER

    rows = []
    emb = results.info.get("embedding")
    if emb:
        rows.append({"result": "embedding spread (relative to the vectors' length)",
                     "value": emb["relative_spread"],
                     "reference": "not collapsed", "criterion": f">= {emb['threshold']:g}",
                     "passed": not emb["collapsed"]})
    ranking = results.tables.get("property-correlation")
    if ranking is not None and len(ranking):
        top = str(ranking["property"][0])
        ew = [c for c in STUDY_ORDER[0][1] if c in set(ranking["property"].astype(str))]
        rows.append({"result": "property the embedding predicts best",
                     "value": f"{top} ({float(ranking['score'][0]):.2f})",
                     "reference": "EW(Halpha)", "criterion": "EW(Halpha) first",
                     "passed": (top in STUDY_ORDER[0][1]) if ew else None})
    comparison = results.tables.get("study-comparison")
    if comparison is not None and np.isfinite(comparison.meta.get("kendall_tau", np.nan)):
        rows.append({"result": (f"Kendall's tau of the ranking vs the study's order "
                                f"({comparison.meta['n_matched']} properties)"),
                     "value": f"{comparison.meta['kendall_tau']:.2f} "
                              f"(p = {comparison.meta['kendall_pvalue']:.2f})",
                     "reference": "1 = the same order", "criterion": "", "passed": None})
    values = acceptance_values(results.tables)
    rows.extend(_check_rows(check_acceptance(
        {k: v for k, v in values.items() if np.isfinite(v) and k != "sigma_stellar_mass"})))
    env = results.tables.get("environment")
    if env is not None and len(env):
        p = np.asarray(env["p_value"], dtype=float)
        i = int(np.argmin(p))
        rows.append({"result": "smallest environment p-value",
                     "value": f"{p[i]:.3g} ({env['group_a'][i]} vs {env['group_b'][i]}, "
                              f"{env['test'][i]}, conditioning: {env['conditioning'][i]})",
                     "reference": "environment shifts the population mix",
                     "criterion": "", "passed": None})
    return rows


def _projection_name(results):
    return results.info.get("projection") or "projection"


def task_figures(results, *, n_columns=9, n_queries=4, queries=None, thumbnail_label=None):
    """Draw the figures of a `~astro_cl.studies.TaskResults`.

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
    from astro_cl.tasks.catalogue import label_column

    tables, galaxies, info = results.tables, results.galaxies, results.info
    figs, caps = {}, {}
    proj = _projection_name(results)
    ranking = tables.get("property-correlation")
    if ranking is not None and len(ranking):
        figs["property ranking"] = F.plot_correlation_ranking(
            ranking, study=tables.get("study-comparison"))
        caps["property ranking"] = (
            "How well the embedding predicts each catalogue property: cross-validated R^2 of "
            "a k-nearest-neighbour regression (numbers, blue) or chance-adjusted balanced "
            "accuracy of a kNN classifier (classes, orange); error bars are bootstrap "
            f"standard deviations. Right: the largest rank correlation with the {proj} axes.")
    xy = results.projection
    if xy is not None and ranking is not None:
        cols = [str(p) for p in ranking["property"] if str(p) in galaxies.colnames][:n_columns]
        if cols:
            name = f"{proj} projection coloured by property"
            figs[name] = F.plot_projection(xy, galaxies, cols, projection=proj)
            caps[name] = (f"The {proj} projection of the embedding to two dimensions, one "
                          f"panel per property, best ranked first; grey: no value.")
    if "sfms_class" in galaxies.colnames and "sfms_columns" in info:
        mass_col, sfr_col = info["sfms_columns"]
        if {mass_col, sfr_col} <= set(galaxies.colnames):
            labels = {"SFMS class": label_column(galaxies, "sfms_class")}
            labels.update({c.removeprefix("cluster_"): np.asarray(galaxies[c])
                           for c in galaxies.colnames if c.startswith("cluster_")})
            figs["clusters on the SFMS plane"] = F.plot_sfms_clusters(
                galaxies, labels, mass_column=mass_col, sfr_column=sfr_col,
                main_sequence=info.get("main_sequence"), thresholds=info.get("sfms_thresholds"))
            caps["clusters on the SFMS plane"] = (
                "Galaxies on the SFR - stellar mass plane, coloured by their class (blue "
                "cloud BC, green valley GV, red sequence RS: distance to the fitted main "
                "sequence, solid; dashed: the class limits) and by the clusters found in the "
                "embedding without labels.")
    for name, table in tables.items():
        if name.startswith("sfms-confusion-"):
            key = name.removeprefix("sfms-confusion-")
            figs[f"confusion {key}"] = F.plot_confusion(table, title=f"{key}: SFMS class vs "
                                                                      "cluster")
    env = tables.get("environment")
    env_col = info.get("environment_column") or results.config.get("tasks", {}).get(
        "environment", {}).get("column", "environment")
    if xy is not None and env is not None and env_col in galaxies.colnames:
        figs["environment"] = F.plot_environment(xy, np.asarray(galaxies[env_col]),
                                                 results=env, projection=proj)
        caps["environment"] = (
            f"Where the galaxies of each environment lie in the {proj} projection, and the "
            "permutation p-values of the two-sample tests of the full embedding (overall and "
            "with labels permuted within stellar-mass bins).")
    neighbours = tables.get("similarity-search")
    thumbs = results.thumbnails
    if thumbs and neighbours is not None and len(neighbours):
        order = queries or list(dict.fromkeys(np.asarray(neighbours["query"]).astype(str)))
        shown = [q for q in order if q in thumbs][:n_queries]
        if shown:
            title = None
            caption = ("Query galaxies (left) and their nearest neighbours in the embedding "
                       "by cosine similarity (number under each id)")
            caption += f"; images: {thumbnail_label}." if thumbnail_label else "."
            if results.collapsed:
                title = ("COLLAPSED EMBEDDING: similarities near 1 carry no information")
                caption += (" These neighbours are not similar galaxies: "
                            + info["embedding"]["message"] + ".")
            figs["similarity search"] = F.plot_similarity_grid(shown, neighbours, thumbs,
                                                               title=title)
            caps["similarity search"] = caption
    for name, hist in results.history.items():
        if hist:
            key = f"training curves: {name}"
            figs[key] = F.plot_training_curves(hist, title=f"training of {name}")
            caps[key] = ("Per-epoch training record: the loss (training and, when held out, "
                         "validation), the learning rate, the epoch time and the throughput.")
    return figs, caps


def assemble_report(parts, *, render=None):
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
    content = {"overview": [], "notes": [], "headline": [], "figures": {}, "captions": {},
               "tables": {}}
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


def write_study_report(directory, parts, *, title="astro_cl report", notes=(), config=None,
                       provenance=None):
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
