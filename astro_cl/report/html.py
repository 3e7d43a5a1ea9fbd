"""The analysis report: PNG figures, ECSV tables and a self-contained ``index.html``.

`write_report` writes every figure as a PNG and every table as ECSV into a
folder, and an ``index.html`` that embeds the same figures (base64 data URIs)
and tables, with the run's configuration and provenance, so that the page can
be opened or mailed on its own. Every file is written atomically.
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
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; } td.s { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.meta { color: #666; font-size: 0.85em; }
"""


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
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


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
                 title="astro_cl report", max_rows=50, dpi=110):
    """Write an HTML report folder.

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
        Tables by name (in display order); their ``meta`` is kept in the ECSV.
    config : dict, optional
        The run's configuration (shown, and written as JSON).
    provenance : dict, optional
        Versions, inputs and checksums (shown, and written as JSON); the
        report's creation time is added.
    title : str, optional
        Page title.
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
    provenance.setdefault("report_created",
                          datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    try:
        from astro_cl import __version__
        provenance.setdefault("astro_cl_version", __version__)
    except ImportError:  # pragma: no cover
        pass

    sections = [f"<h1>{html.escape(title)}</h1>"]
    nav = []
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
        sections.append(_table_html(table, max_rows))
        sections.append(f"<p class='meta'><a href='{fname}'>{html.escape(fname)}</a></p>")
    if figures:
        sections.append("<h2 id='figures'>Figures</h2>")
        nav.append("<a href='#figures'>figures</a>")
    for name, fig in figures.items():
        fname = f"figures/{_slug(name)}.png"
        png = fig if isinstance(fig, bytes) else figure_png(fig, dpi=dpi)
        with atomic_write(directory / fname, "wb") as fh:
            fh.write(png)
        data = base64.b64encode(png).decode("ascii")
        sections.append(f"<h3>{html.escape(name)}</h3>"
                        f"<a href='{fname}'><img alt='{html.escape(name)}' "
                        f"src='data:image/png;base64,{data}'></a>")
    for label, content in (("configuration", config), ("provenance", provenance)):
        text = json.dumps(content, indent=2, default=_json_default, sort_keys=True)
        with atomic_write(directory / f"{label if label == 'provenance' else 'config'}.json") as fh:
            fh.write(text + "\n")
        sections.append(f"<h2 id='{label}'>{label.capitalize()}</h2><pre>{html.escape(text)}</pre>")
        nav.append(f"<a href='#{label}'>{label}</a>")
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<p class='meta'>{' | '.join(nav)}</p>" + "\n".join(sections) + "</body></html>\n"
    )
    index = directory / "index.html"
    with atomic_write(index) as fh:
        fh.write(page)
    return index
