"""The analysis report: PNG figures, ECSV tables and a self-contained ``index.html``.

`write_report` writes every figure as a PNG and every table as ECSV into a
folder, and an ``index.html`` that says what was done, gives the headline
results beside the studies' numbers, then embeds the same figures (base64
data URIs) and tables, and ends with the run's configuration and provenance,
so that the page can be opened or mailed on its own. Every file is written
atomically.
"""

import base64
import datetime
import html
import io
import json
import re

import numpy as np

from astro_cl.utils.io import atomic_path, atomic_write

__all__ = ["figure_png", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; vertical-align: top; }
th { background: #eee; } td.s, th.s { text-align: left; }
.scroll { overflow-x: auto; max-width: 100%; }
img { max-width: 100%; border: 1px solid #ddd; }
figure { margin: 1em 0 2em 0; } figcaption { font-size: 0.9em; color: #444; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
dl.done { display: grid; grid-template-columns: max-content 1fr; gap: 0.3em 1em; }
dl.done dt { font-weight: bold; } dl.done dd { margin: 0; }
.note { border-left: 4px solid #3b7dd8; background: #eef4fc; padding: 0.5em 1em; margin: 1em 0; }
.note.warning { border-color: #d8893b; background: #fdf3e8; }
.pass { color: #16702e; font-weight: bold; } .miss { color: #b3261e; font-weight: bold; }
td.mark { white-space: nowrap; }
.meta { color: #666; font-size: 0.85em; }
"""

#: How `write_report` marks a headline row: passed -> (css class, text).
_MARKS = {True: ("pass", "\u2714 pass"), False: ("miss", "\u2718 miss"), None: ("", "")}


def _slug(name):
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._")
    return slug or "item"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _format(value):
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _table_html(table, max_rows):
    cols = [c for c in table.colnames if getattr(table[c], "ndim", 1) == 1]
    head = "".join(
        f"<th>{html.escape(c)}"
        + (f"<br><span class='meta'>[{html.escape(str(table[c].unit))}]</span>"
           if getattr(table[c], "unit", None) not in (None, "") else "")
        + "</th>" for c in cols)
    body = []
    for row in table[:max_rows]:
        cells = []
        for c in cols:
            value = row[c]
            value = getattr(value, "value", value)
            cls = " class='s'" if isinstance(value, (str, np.str_)) else ""
            cells.append(f"<td{cls}>{html.escape(_format(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f"<p class='meta'>showing {max_rows} of {len(table)} rows</p>"
            if len(table) > max_rows else "")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>{more}"


def _flatten(content, prefix=""):
    """Nested dicts -> ``[(dotted key, value)]``; other values are kept as they are."""
    rows = []
    for key, value in content.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def _value_text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)):
        return _format(value)
    return json.dumps(value, default=_json_default)


def _key_value_html(content):
    rows = "".join(f"<tr><td class='s'>{html.escape(k)}</td>"
                   f"<td class='s'>{html.escape(_value_text(v))}</td></tr>"
                   for k, v in _flatten(content))
    return f"<div class='scroll'><table>{rows}</table></div>"


def _headline_html(rows):
    head = ("<tr><th class='s'>result</th><th>this run</th><th class='s'>the study</th>"
            "<th class='s'>criterion</th><th class='s'>mark</th></tr>")
    body = []
    for row in rows:
        cls, mark = _MARKS[row.get("passed")]
        value = row.get("value")
        value = _format(value) if isinstance(value, (float, np.floating)) else str(value)
        body.append(
            f"<tr><td class='s'>{html.escape(str(row.get('result', '')))}</td>"
            f"<td>{html.escape(value)}</td>"
            f"<td class='s'>{html.escape(str(row.get('reference', '')))}</td>"
            f"<td class='s'>{html.escape(str(row.get('criterion', '')))}</td>"
            f"<td class='s mark {cls}'>{html.escape(mark)}</td></tr>")
    return f"<div class='scroll'><table>{head}{''.join(body)}</table></div>"


def figure_png(fig, *, dpi=110):
    """Render a figure as PNG bytes.

    Rendering is the slow part of a report; a pipeline can render its figures
    when they are ready, free them, and hand the bytes to `write_report`.

    Parameters
    ----------
    fig : `matplotlib.figure.Figure`
    dpi : int, optional
        Resolution.

    Returns
    -------
    png : bytes
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_report(directory, *, figures=None, tables=None, config=None, provenance=None,
                 title="astro_cl report", overview=None, headline=None, notes=None,
                 captions=None, max_rows=50, dpi=110):
    """Write an HTML report folder that explains itself.

    The page reads top down: notes (warnings such as a collapsed embedding),
    **what was done** (``overview``), the **headline results** beside the
    studies' numbers with pass/miss marks (``headline``), the **figures**, the
    **tables** (wide ones scroll sideways) and the **provenance** (the
    configuration and provenance as key-value tables). Figures are embedded
    as PNG data URIs and the page loads nothing from elsewhere, so it can be
    opened or mailed on its own.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Output folder (created). Receives ``figures/<name>.png``,
        ``tables/<name>.ecsv``, ``config.json``, ``provenance.json`` and
        ``index.html``.
    figures : dict of str to `matplotlib.figure.Figure` or bytes, optional
        Figures by name (in display order), or their PNG files as bytes
        (`figure_png`; ``dpi`` then does not apply).
    tables : dict of str to `~astropy.table.Table`, optional
        Tables by name (in display order); their ``meta`` is kept in the ECSV,
        and ``meta["description"]`` and ``meta["warning"]`` are shown above the
        table.
    config : dict, optional
        The run's configuration (shown, and written as JSON).
    provenance : dict, optional
        Versions, inputs and checksums (shown, and written as JSON); the
        report's creation time is added.
    title : str, optional
        Page title.
    overview : dict of str to str or list of (str, str), optional
        What was done, item by item (data, preprocessing, augmentations,
        model, training, tasks), in display order.
    headline : list of dict, optional
        Headline results, one dict per row: ``result`` (what), ``value`` (this
        run), ``reference`` (the study's number or finding), ``criterion``
        and ``passed`` (True, False or None when there is no criterion).
    notes : list of str or of (str, str), optional
        Notes shown first; ``("warning", text)`` for a warning, ``("info",
        text)`` or a plain string otherwise.
    captions : dict of str to str, optional
        A caption per figure name.
    max_rows : int, optional
        Rows of each table shown in the page (the ECSV files are complete).
    dpi : int, optional
        Resolution of the PNGs.

    Returns
    -------
    index : `~pathlib.Path`
        Path of ``index.html``.
    """
    from pathlib import Path

    directory = Path(directory)
    (directory / "figures").mkdir(parents=True, exist_ok=True)
    (directory / "tables").mkdir(parents=True, exist_ok=True)
    figures = dict(figures or {})
    tables = dict(tables or {})
    config = dict(config or {})
    provenance = dict(provenance or {})
    captions = dict(captions or {})
    overview = list(overview.items() if isinstance(overview, dict) else overview or [])
    provenance.setdefault("report_created",
                          datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    try:
        from astro_cl import __version__
        provenance.setdefault("astro_cl_version", __version__)
    except ImportError:  # pragma: no cover
        pass

    sections = [f"<h1>{html.escape(title)}</h1>"]
    nav = []
    for note in notes or ():
        level, text = note if isinstance(note, (tuple, list)) else ("info", note)
        cls = "note warning" if level == "warning" else "note"
        sections.append(f"<div class='{cls}'>{html.escape(str(text))}</div>")
    if overview:
        items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                        for k, v in overview)
        sections.append(f"<h2 id='done'>What was done</h2><dl class='done'>{items}</dl>")
        nav.append("<a href='#done'>what was done</a>")
    if headline:
        sections.append("<h2 id='results'>Headline results</h2>" + _headline_html(headline))
        nav.append("<a href='#results'>results</a>")
    if figures:
        sections.append("<h2 id='figures'>Figures</h2>")
        nav.append("<a href='#figures'>figures</a>")
    for name, fig in figures.items():
        fname = f"figures/{_slug(name)}.png"
        png = fig if isinstance(fig, bytes) else figure_png(fig, dpi=dpi)
        with atomic_write(directory / fname, "wb") as fh:
            fh.write(png)
        data = base64.b64encode(png).decode("ascii")
        caption = (f"<figcaption>{html.escape(captions[name])}</figcaption>"
                   if captions.get(name) else "")
        sections.append(f"<figure><h3>{html.escape(name)}</h3>"
                        f"<a href='{fname}'><img alt='{html.escape(name)}' "
                        f"src='data:image/png;base64,{data}'></a>{caption}</figure>")
    if tables:
        sections.append("<h2 id='tables'>Tables</h2>")
        nav.append("<a href='#tables'>tables</a>")
    for name, table in tables.items():
        fname = f"tables/{_slug(name)}.ecsv"
        with atomic_path(directory / fname) as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        sections.append(f"<h3>{html.escape(name)}</h3>")
        desc = table.meta.get("description") or table.meta.get("definition")
        if desc:
            sections.append(f"<p class='meta'>{html.escape(str(desc))}</p>")
        if table.meta.get("warning"):
            sections.append(f"<div class='note warning'>{html.escape(str(table.meta['warning']))}"
                            "</div>")
        sections.append(_table_html(table, max_rows))
        sections.append(f"<p class='meta'><a href='{fname}'>{html.escape(fname)}</a></p>")
    sections.append("<h2 id='provenance'>Provenance</h2>")
    nav.append("<a href='#provenance'>provenance</a>")
    for label, content, fname in (("Configuration", config, "config.json"),
                                  ("Provenance", provenance, "provenance.json")):
        text = json.dumps(content, indent=2, default=_json_default, sort_keys=True)
        with atomic_write(directory / fname) as fh:
            fh.write(text + "\n")
        sections.append(f"<h3>{label}</h3>" + _key_value_html(content)
                        + f"<p class='meta'><a href='{fname}'>{fname}</a></p>")
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<p class='meta'>{' | '.join(nav)}</p>" + "\n".join(sections) + "</body></html>\n"
    )
    index = directory / "index.html"
    with atomic_write(index) as fh:
        fh.write(page)
    return index
