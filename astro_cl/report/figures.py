"""Figures of the analysis report, as functions returning `matplotlib.figure.Figure`.

Figures are built with the object-oriented API (`matplotlib.figure.Figure`),
never through `matplotlib.pyplot`: they do not touch the global figure
manager, need no display, work under any backend and are saved with
``fig.savefig(path)`` (Agg renders PNGs). Nothing here calls ``plt.show``.
"""

import warnings

import numpy as np

__all__ = [
    "plot_confusion",
    "plot_correlation_ranking",
    "plot_environment",
    "plot_map_metrics",
    "plot_map_panels",
    "plot_projection",
    "plot_sfms_clusters",
    "plot_similarity_grid",
    "plot_training_curves",
    "plot_umap",
]


#: Labels drawn as "missing".
_MISSING = frozenset({"", "None", "nan", "--"})


def _figure(nrows=1, ncols=1, *, panel=(4.0, 3.4), **kwargs):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def _values(column):
    """Column -> (float array or None, labels array or None)."""
    from astro_cl.tasks.catalogue import is_categorical

    if is_categorical(column):
        labels = np.asarray(np.ma.getdata(getattr(column, "unmasked", column))).astype(str)
        return None, labels
    mask = np.asarray(getattr(column, "mask", np.zeros(len(column), bool)), bool)
    data = getattr(column, "unmasked", column)
    values = np.array(np.ma.getdata(getattr(data, "value", data)), dtype=float)
    values[np.broadcast_to(mask, values.shape)] = np.nan
    return values, None


def _unit_label(column):
    """`` [unit]`` of a column for a label, or an empty string."""
    unit = getattr(column, "unit", None)
    text = "" if unit is None else str(unit)
    return f" [{text}]" if text and text != "dimensionless" else ""


def _scatter_coloured(ax, xy, column, name, fig, axis_names=("axis 1", "axis 2")):
    from astro_cl.tasks.catalogue import hubble_t_type

    values, labels = _values(column)
    t_type = None
    if labels is not None and len(set(labels) - set(_MISSING)) > 12:
        # too many classes for a legend; Hubble types have a natural order
        t_type = hubble_t_type([None if lab in _MISSING else lab for lab in labels])
    title = name
    if t_type is not None:
        ok = np.isfinite(t_type)
        ax.scatter(xy[~ok, 0], xy[~ok, 1], s=4, color="0.85", lw=0)
        sc = ax.scatter(xy[ok, 0], xy[ok, 1], c=t_type[ok], s=6, cmap="coolwarm_r", lw=0)
        fig.colorbar(sc, ax=ax, label="T-type", shrink=0.85)
        title = f"{name} (as T-type)"
    elif labels is not None:
        cats = [c for c in np.unique(labels) if c not in _MISSING]
        cmap = _cmap("tab20" if len(cats) > 10 else "tab10")
        for i, c in enumerate(cats):
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(i % cmap.N), label=c, lw=0)
        if len(cats) <= 12:
            ax.legend(fontsize=6, markerscale=2, frameon=False, loc="best")
    else:
        ok = np.isfinite(values)
        ax.scatter(xy[~ok, 0], xy[~ok, 1], s=4, color="0.85", lw=0)
        if ok.any():
            lo, hi = np.percentile(values[ok], [2, 98])
            sc = ax.scatter(xy[ok, 0], xy[ok, 1], c=values[ok], s=6, cmap="viridis",
                            vmin=lo, vmax=hi if hi > lo else lo + 1, lw=0)
            fig.colorbar(sc, ax=ax, label=f"{name}{_unit_label(column)}", shrink=0.85)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(axis_names[0], fontsize=7)
    ax.set_ylabel(axis_names[1], fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _cmap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def plot_projection(embedding2d, catalogue, columns, *, projection="UMAP", ncols=3):
    """Draw a 2-D projection of the embedding, one panel per catalogue property.

    Parameters
    ----------
    embedding2d : array-like
        ``(N, 2)`` projection, rows matching ``catalogue``.
    catalogue : `~astropy.table.Table`
        Properties of the same galaxies.
    columns : list of str
        One panel per column (numeric: colour map; categorical: legend, or
        for more than 12 Hubble types, a colour map of their numeric T-type).
    projection : str, optional
        The projection's name (``"UMAP"``, ``"PCA"``), used in the title and
        the axis labels.
    ncols : int, optional
        Panels per row.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    xy = np.asarray(embedding2d, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(catalogue):
        msg = (f"plot_projection: expected a ({len(catalogue)}, 2) projection, "
               f"got shape {xy.shape}")
        raise ValueError(msg)
    columns = list(columns)
    ncols = max(1, min(ncols, len(columns)))
    nrows = max(1, int(np.ceil(len(columns) / ncols)))
    fig, axes = _figure(nrows, ncols)
    for ax in axes.ravel()[len(columns):]:
        ax.set_axis_off()
    axis_names = (f"{projection} 1", f"{projection} 2")
    for ax, name in zip(axes.ravel(), columns, strict=False):
        _scatter_coloured(ax, xy, catalogue[name], name, fig, axis_names)
    fig.suptitle(f"{projection} projection of the embedding, coloured by catalogue property",
                 fontsize=10)
    return fig


def plot_umap(embedding2d, catalogue, columns, *, ncols=3):
    """Draw a UMAP projection coloured by catalogue properties (`plot_projection`).

    Parameters
    ----------
    embedding2d : array-like
        ``(N, 2)`` UMAP projection, rows matching ``catalogue``.
    catalogue : `~astropy.table.Table`
    columns : list of str
    ncols : int, optional

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    return plot_projection(embedding2d, catalogue, columns, projection="UMAP", ncols=ncols)


def plot_correlation_ranking(table, *, study=None):
    """Bar chart of the property ranking with bootstrap error bars.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `~astro_cl.tasks.PropertyCorrelation.evaluate`; with rank
        correlations (``spearman_max``) a second panel shows them.
    study : `~astropy.table.Table`, optional
        Output of `~astro_cl.tasks.compare_with_study`; its Kendall tau is
        shown in the title.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    names = [str(p) for p in table["property"]]
    score = np.asarray(table["score"], dtype=float)
    err = (np.asarray(table["score_err"], dtype=float) if "score_err" in table.colnames
           else None)
    rho = (np.asarray(table["spearman_max"], dtype=float) if "spearman_max" in table.colnames
           else np.full(len(names), np.nan))
    fig, axes = _figure(1, 2 if np.isfinite(rho).any() else 1,
                        panel=(4.2, 0.3 * len(names) + 1.2))
    ax = axes[0, 0]
    y = np.arange(len(names))[::-1]
    kinds = (np.asarray(table["kind"]).astype(str) if "kind" in table.colnames
             else np.full(len(names), "numeric"))
    colours = np.where(kinds == "categorical", "tab:orange", "tab:blue")
    ax.barh(y, score, xerr=None if err is None else np.nan_to_num(err), color=colours)
    ax.set_yticks(y, names, fontsize=7)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("score: kNN CV R$^2$ (blue) or adjusted balanced accuracy (orange)",
                  fontsize=8)
    title = "how well the embedding predicts each property"
    if study is not None and np.isfinite(study.meta.get("kendall_tau", np.nan)):
        title += f"\n(Kendall tau vs the study's order = {study.meta['kendall_tau']:.2f})"
    ax.set_title(title, fontsize=9)
    if axes.shape[1] > 1:
        projection = table.meta.get("projection") or "projection"
        ax2 = axes[0, 1]
        ax2.barh(y, np.nan_to_num(rho), color="tab:green")
        ax2.set_yticks(y, [""] * len(names))
        ax2.set_xlim(0, 1)
        ax2.set_xlabel(f"max |Spearman rho| with the {projection} axes", fontsize=8)
        ax2.set_title(f"rank correlation with the {projection} axes", fontsize=9)
    return fig


def plot_sfms_clusters(catalogue, labels, *, mass_column="log_Mass", sfr_column="log_SFR_Ha",
                       main_sequence=None, thresholds=None):
    """Clusters drawn on the SFR - stellar mass plane.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
        With the mass and SFR columns (log10, dex units accepted).
    labels : array-like or dict of str to array-like
        Cluster labels (or SFMS classes) per galaxy; one panel per entry of a dict.
    mass_column, sfr_column : str, optional
    main_sequence : dict, optional
        A `~astro_cl.tasks.fit_main_sequence` result, drawn as a line.
    thresholds : tuple of float, optional
        Green-valley limits (dex below the main sequence), drawn dashed.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    from astro_cl.tasks.catalogue import float_column

    mass = float_column(catalogue, mass_column)
    sfr = float_column(catalogue, sfr_column)
    panels = labels if isinstance(labels, dict) else {"clusters": labels}
    ncols = min(3, len(panels))
    fig, axes = _figure(int(np.ceil(len(panels) / ncols)), ncols)
    for ax in axes.ravel()[len(panels):]:
        ax.set_axis_off()
    xs = np.linspace(np.nanmin(mass), np.nanmax(mass), 50) if np.isfinite(mass).any() else None
    for ax, (title, lab) in zip(axes.ravel(), panels.items(), strict=False):
        lab = np.asarray(["" if v is None or np.ma.is_masked(v) else str(v) for v in lab])
        cmap = _cmap("tab10")
        for i, c in enumerate(u for u in np.unique(lab) if u not in _MISSING):
            sel = lab == c
            ax.scatter(mass[sel], sfr[sel], s=6, color=cmap(i % 10), label=c, lw=0)
        if main_sequence is not None and xs is not None:
            ms = main_sequence["slope"] * (xs - main_sequence["pivot"]) + main_sequence["intercept"]
            ax.plot(xs, ms, color="k", lw=1, label="SFMS")
            for t in thresholds or ():
                ax.plot(xs, ms + t, color="k", lw=0.8, ls="--")
        ax.set_xlabel(r"log $M_\star$ [M$_\odot$]")
        ax.set_ylabel(r"log SFR [M$_\odot$ yr$^{-1}$]")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, markerscale=2, frameon=False)
    return fig


def plot_confusion(confusion, *, row_labels=None, col_labels=None, title=None):
    """Confusion matrix of SFMS classes against clusters.

    Parameters
    ----------
    confusion : `~astropy.table.Table` or array-like
        A table with a ``class`` column and ``cluster_<i>`` columns (as in
        ``SFMSClustering.confusion_``), or a 2-D count array.
    row_labels, col_labels : list of str, optional
        Labels for an array input.
    title : str, optional

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if hasattr(confusion, "colnames"):
        row_labels = [str(c) for c in confusion["class"]]
        col_labels = [c for c in confusion.colnames if c != "class"]
        counts = np.array([[confusion[c][i] for c in col_labels] for i in range(len(confusion))])
    else:
        counts = np.asarray(confusion)
    nr, nc = counts.shape
    row_labels = row_labels or [str(i) for i in range(nr)]
    col_labels = col_labels or [str(j) for j in range(nc)]
    fig, axes = _figure(1, 1, panel=(0.9 * nc + 2, 0.8 * nr + 1.2))
    ax = axes[0, 0]
    ax.imshow(counts, cmap="Blues")
    for i in range(nr):
        for j in range(nc):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(nc), col_labels, fontsize=7)
    ax.set_yticks(range(nr), row_labels, fontsize=7)
    ax.set_xlabel("cluster (number of galaxies per cell)", fontsize=8)
    ax.set_ylabel("class", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_environment(embedding2d, environments, *, results=None, projection="projection"):
    """Where galaxies of each environment sit in the projection.

    Parameters
    ----------
    embedding2d : array-like
        ``(N, 2)`` projection.
    environments : array-like of str
        Environment label per galaxy.
    results : `~astropy.table.Table`, optional
        Output of `~astro_cl.tasks.EnvironmentTest.evaluate`; the p-values are
        drawn in a third panel.
    projection : str, optional
        The projection's name (``"UMAP"``, ``"PCA"``) for the titles and labels.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    xy = np.asarray(embedding2d, dtype=float)
    env = np.asarray([str(e) for e in environments])
    groups = [g for g in np.unique(env) if g not in _MISSING]
    fig, axes = _figure(1, 3 if results is not None and len(results) else 2)
    cmap = _cmap("tab10")
    bins = np.linspace(np.nanmin(xy[:, 0]), np.nanmax(xy[:, 0]), 25)
    for i, g in enumerate(groups):
        sel = env == g
        axes[0, 0].scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(i % 10), label=g, lw=0)
        axes[0, 1].hist(xy[sel, 0], bins=bins, density=True, histtype="step",
                        color=cmap(i % 10), label=f"{g} ({sel.sum()})")
    axes[0, 0].legend(fontsize=6, markerscale=2, frameon=False)
    axes[0, 0].set_title(f"{projection} projection by environment", fontsize=9)
    axes[0, 0].set_xlabel(f"{projection} 1")
    axes[0, 0].set_ylabel(f"{projection} 2")
    axes[0, 1].set_title(f"distribution along {projection} 1", fontsize=9)
    axes[0, 1].set_xlabel(f"{projection} 1")
    axes[0, 1].set_ylabel("probability density")
    axes[0, 1].legend(fontsize=6, frameon=False, title="environment (galaxies)",
                      title_fontsize=6)
    if axes.shape[1] > 2:
        ax = axes[0, 2]
        labels = [f"{a} vs {b}\n{t}, {c}" for a, b, t, c in
                  zip(results["group_a"], results["group_b"], results["test"],
                      results["conditioning"], strict=True)]
        p = np.asarray(results["p_value"], dtype=float)
        y = np.arange(len(p))[::-1]
        ax.barh(y, -np.log10(p), color="tab:purple")
        ax.axvline(-np.log10(0.05), color="k", ls="--", lw=0.8)
        ax.set_yticks(y, labels, fontsize=5)
        ax.set_xlabel("-log10 permutation p-value (dashed: p = 0.05)")
        ax.set_title("two-sample tests of the embedding", fontsize=9)
    return fig


#: Photometric bands from blue to red: a three-band stack is shown reddest as red.
_BAND_ORDER = "ugrizyJHK"


def _colour_channels(n, bands):
    """Return the indices of the (red, green, blue) display channels of an ``n``-band stack."""
    if n >= 5:
        return [3, 2, 1]  # i, r, g of ugriz
    if n < 3:
        return [0, 0, 0]
    bands = [str(b) for b in bands or ()]
    if len(bands) == n and all(len(b) == 1 and b in _BAND_ORDER for b in bands):
        by_wavelength = sorted(range(n), key=lambda i: _BAND_ORDER.index(bands[i]))
        return by_wavelength[::-1][:3]  # reddest first
    return [2, 1, 0]  # unnamed bands: assumed blue to red, as survey stacks are


def _rgb(image):
    """Display array in [0, 1] from a band stack, an RGB image or a 2-D image.

    A band stack's channels are put in display order by their ``meta["bands"]``
    when it names them (e.g. an ``image-folder`` cutout stores i, r, g, which is
    already red, green, blue).
    """
    data = np.asarray(getattr(image, "data", image), dtype=float)
    meta = getattr(image, "meta", None) or {}
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] not in (3, 4, 5):
        data = np.moveaxis(data[..., :3], -1, 0)
    if data.ndim == 3:
        data = data[_colour_channels(data.shape[0], meta.get("bands"))]
    else:
        data = np.stack([data] * 3)
    data = np.nan_to_num(data)
    if data.max() > 1.0 or data.min() < 0.0:
        scale = np.percentile(np.abs(data), 99.5) or 1.0
        data = np.arcsinh(np.clip(data, 0, None) / (0.1 * scale)) / np.arcsinh(10.0)
    return np.clip(np.moveaxis(data, 0, -1), 0, 1)


def plot_similarity_grid(query_ids, neighbours, images, *, n_neighbors=None, title=None):
    """Thumbnails of query galaxies (left) and their most similar galaxies.

    Parameters
    ----------
    query_ids : list of str
        Queries, one row each.
    neighbours : `~astropy.table.Table`
        Output of `~astro_cl.tasks.SimilaritySearch.query` (``query``,
        ``rank``, ``id``, ``similarity``).
    images : mapping of str to array-like or `~astropy.nddata.NDData`
        Thumbnail per id: a band stack ``(n_band, ny, nx)`` (bands 3, 2, 1 =
        i, r, g of ugriz make the colour image), an ``(ny, nx, 3)`` RGB image or
        a 2-D image. Missing ids are left blank.
    n_neighbors : int, optional
        Neighbours per row (default: all in the table).
    title : str, optional
        Figure title (default: what the grid shows).

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    query_ids = [str(q) for q in query_ids]
    qcol = np.asarray(neighbours["query"]).astype(str)
    k = n_neighbors or max(int(np.sum(qcol == q)) for q in query_ids)
    fig, axes = _figure(len(query_ids), k + 1, panel=(1.4, 1.5))
    for r, q in enumerate(query_ids):
        rows = neighbours[qcol == q]
        rows = rows[np.argsort(np.asarray(rows["rank"]))][:k]
        cells = [(q, "query")] + [(str(i), f"{s:.3f}") for i, s in
                                  zip(rows["id"], rows["similarity"], strict=True)]
        for c in range(k + 1):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.set_axis_off()
                continue
            gid, text = cells[c]
            if gid in images:
                ax.imshow(_rgb(images[gid]), origin="lower")
            ax.set_title(f"{gid}\n{text}", fontsize=6)
    fig.suptitle(title or "query (left) and its nearest galaxies, with their cosine similarity",
                 fontsize=8)
    return fig


def plot_map_panels(true, pred, *, names=None, log=True, border=0):
    """Draw the true, predicted and residual maps of one galaxy, one row per property.

    Parameters
    ----------
    true, pred : mapping of str to array-like or `~astropy.nddata.NDData`
        2-D maps of one galaxy.
    names : list of str, optional
        Properties to show (default: those in both).
    log : bool or sequence of str, optional
        Show log10 of the maps (True: of every map with positive values whose
        unit is not already logarithmic, such as metallicities in ``dex``; a
        sequence: of those names). Residuals are ``log10(true/pred)`` (dex) for
        logged maps and ``true - pred`` otherwise (in dex for ``dex`` maps).
    border : int, optional
        Outer pixels a network was not trained on (the loss's cropped border,
        as in PICASSSO): drawn grey in the predicted and residual panels, and
        left out of their colour scales.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    from astro_cl.tasks.catalogue import is_log_unit

    names = list(names) if names is not None else [n for n in true if n in pred]
    fig, axes = _figure(len(names), 3, panel=(3.0, 2.6))
    for r, name in enumerate(names):
        t = np.array(getattr(getattr(true[name], "data", true[name]), "value",
                             getattr(true[name], "data", true[name])), dtype=float)
        p = np.array(getattr(getattr(pred[name], "data", pred[name]), "value",
                             getattr(pred[name], "data", pred[name])), dtype=float)
        unit = getattr(true[name], "unit", None)
        already_log = is_log_unit(unit)
        use_log = (name in log) if not isinstance(log, bool) else (
            log and not already_log and np.nanmax(t) > 0 and np.nanmin(t) >= 0)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            tv = np.where(t > 0, np.log10(t), np.nan) if use_log else t
            pv = np.where(p > 0, np.log10(p), np.nan) if use_log else p
            res = tv - pv
        if border > 0:
            # not trained there: NaN draws in the colour map's "bad" colour (grey)
            frame = np.ones(pv.shape, bool)
            frame[border:-border, border:-border] = False
            pv, res = np.where(frame, np.nan, pv), np.where(frame, np.nan, res)
        finite = np.concatenate([tv[np.isfinite(tv)], pv[np.isfinite(pv)]])
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0, 1)
        label = f"log10 [{unit}]" if use_log and unit else ("log10" if use_log else str(unit or ""))
        for c, (img, title) in enumerate(((tv, "true"), (pv, "predicted"))):
            im = axes[r, c].imshow(img, origin="lower", vmin=lo, vmax=hi,
                                   cmap=_cmap("viridis").with_extremes(bad="0.75"))
            axes[r, c].set_title(f"{name}: {title}", fontsize=8)
            fig.colorbar(im, ax=axes[r, c], shrink=0.8, label=label)
        lim = np.nanpercentile(np.abs(res), 99) if np.isfinite(res).any() else 1.0
        im = axes[r, 2].imshow(res, origin="lower", vmin=-lim or -1, vmax=lim or 1,
                               cmap=_cmap("RdBu_r").with_extremes(bad="0.75"))
        axes[r, 2].set_title(f"{name}: residual", fontsize=8)
        fig.colorbar(im, ax=axes[r, 2], shrink=0.8, label="dex" if use_log else label)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def plot_map_metrics(table):
    """Bar chart of the maps' scatter beside a constant prediction's and PICASSSO's.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `~astro_cl.tasks.MapMetrics.evaluate` (``property``,
        ``sigma``, ``sigma_constant``, ``sigma_ratio``, ``study_sigma``).

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    def dex(name):
        col = table[name]
        return np.asarray(getattr(col, "value", col), dtype=float)

    names = [str(p) for p in table["property"]]
    sigma, const, study = dex("sigma"), dex("sigma_constant"), dex("study_sigma")
    ratio = np.asarray(table["sigma_ratio"], dtype=float)
    fig, axes = _figure(1, 1, panel=(6.0, 0.45 * len(names) + 1.3))
    ax = axes[0, 0]
    y = np.arange(len(names))[::-1]
    h = 0.27
    ax.barh(y + h, np.nan_to_num(const), h, color="0.7", label="constant prediction")
    ax.barh(y, np.nan_to_num(sigma), h, color="tab:blue", label="this prediction")
    ax.barh(y - h, np.nan_to_num(study), h, color="tab:orange",
            label="PICASSSO (same definition only)")
    for yi, s, rt in zip(y, sigma, ratio, strict=True):
        if np.isfinite(s) and np.isfinite(rt):
            ax.text(s, yi, f" {rt:.2f}", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("scatter sigma of log10(true / predicted) over galaxies [dex]")
    ax.set_title("scatter within 2 half-mass radii (number: sigma / constant's)", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return fig


#: Per-epoch series of the trainers' histories with a label and a unit of their own.
_SERIES = {
    "lr": ("learning rate", ""), "learning_rate": ("learning rate", ""),
    "seconds": ("epoch time", "s"), "val_seconds": ("validation time", "s"),
    "images_per_s": ("throughput", "images/s"),
}


def plot_training_curves(history, *, title=None):
    """Loss and other per-epoch quantities against epoch, one quantity per panel.

    Parameters
    ----------
    history : dict of str to sequence, or sequence of dict, or `~astropy.table.Table`
        Per-epoch values (e.g. ``{"loss": [...], "val_loss": [...], "lr": [...]}``
        or one dict per epoch). Series whose names contain ``loss`` share the
        first panel; every other series gets a panel of its own (the learning
        rate on a log axis; ``seconds`` as the epoch time in s,
        ``images_per_s`` as the throughput in images/s).
    title : str, optional
        Figure title (e.g. the model's name).

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if hasattr(history, "colnames"):
        series = {c: np.asarray(history[c], dtype=float) for c in history.colnames}
    elif isinstance(history, dict):
        series = {k: np.asarray(v, dtype=float) for k, v in history.items()
                  if np.ndim(v) == 1 and np.asarray(v).dtype.kind in "fiu"}
    else:
        keys = list(dict.fromkeys(k for h in history for k in h
                                  if isinstance(h[k], (int, float)) and not isinstance(h[k], bool)))
        series = {k: np.array([np.nan if h.get(k) is None else float(h[k]) for h in history])
                  for k in keys}
    from matplotlib.ticker import MaxNLocator

    series = {k: v for k, v in series.items() if np.isfinite(v).any()}
    epochs = series.pop("epoch", None)
    panels = {}
    losses = {k: v for k, v in series.items() if "loss" in k}
    if losses:
        panels["loss"] = ("loss", "", losses)
    for key, values in series.items():
        if key not in losses:
            label, unit = _SERIES.get(key, (key.replace("_", " "), ""))
            panels[key] = (label, unit, {key: values})
    fig, axes = _figure(1, max(1, len(panels)), panel=(3.4, 2.9))
    for ax, (key, (label, unit, ser)) in zip(axes.ravel(), panels.items(), strict=False):
        for name, v in ser.items():
            x = epochs if epochs is not None and len(epochs) == len(v) else np.arange(1, len(v) + 1)
            ax.plot(x, v, marker="o", ms=3, label=name.replace("_", " "))
        if key in ("lr", "learning_rate"):
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{label} [{unit}]" if unit else label)
        ax.set_title(label, fontsize=9)
        if key == "loss":
            ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
