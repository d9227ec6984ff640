"""HTML assembly of the report pages (the standard library only).

Pages are self-contained: images are ``data:`` URIs, the style sheet is inline, and nothing
refers to the network. Every text that comes from a file is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

import pandas as pd

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; } h4 { font-size: 0.95em; margin-bottom: 0.2em; }
img { max-width: 100%; display: block; margin: 0.3em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.3em 0.6em; }
.methods { background: #f7f7f7; padding: 0.6em; }
nav a { margin-right: 1em; }
"""


def page(title: str, sections: Sequence[str], *, nav: Iterable[tuple[str, str]] = ()) -> str:
    """A whole HTML document: title, a navigation bar (``(href, text)``), the sections."""
    links = "".join(f'<a href="{escape(href)}">{escape(text)}</a>' for href, text in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<nav>{links}</nav>\n<h1>{escape(title)}</h1>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def section(section_id: str, title: str, *parts: str, level: int = 2) -> str:
    """A ``<section>`` with an id (the browser test looks sections up by it)."""
    body = "\n".join(parts)
    return (
        f'<section id="{escape(section_id)}">\n<h{level}>{escape(title)}</h{level}>\n'
        f"{body}\n</section>"
    )


def paragraph(text: str, css: str | None = None) -> str:
    cls = f' class="{css}"' if css else ""
    return f"<p{cls}>{escape(text)}</p>"


def heading(text: str, level: int = 4) -> str:
    return f"<h{level}>{escape(text)}</h{level}>"


def figure(uri: str, alt: str) -> str:
    """An embedded image (``uri`` is a ``data:`` URI from :mod:`.figures`)."""
    if not uri.startswith("data:image/"):
        raise ValueError(f"report images must be embedded data URIs, got {uri[:40]!r}")
    return f'<img src="{uri}" alt="{escape(alt)}">'


def svg(markup: str) -> str:
    """An inline SVG figure (made by :mod:`.figures`, its texts escaped there)."""
    if not markup.startswith("<svg ") or "http://www.w3.org/2000/svg" not in markup:
        raise ValueError("inline figures must be SVG documents made by glmflow.core.report")
    return f'<div class="figure">{markup}</div>'


def warnings_list(notes: Sequence[str]) -> str:
    """The warnings of a section, or a line saying there are none."""
    if not notes:
        return '<p class="warnings-none">No warnings.</p>'
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f'<div class="warning"><ul>{items}</ul></div>'


def _cell(value) -> tuple[str, str]:
    if isinstance(value, float):
        return ("", "n/a" if pd.isna(value) else f"{value:.4g}")
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ("", "n/a")
    return ("" if isinstance(value, int) else ' class="text"', escape(str(value)))


def table(frame: pd.DataFrame, *, css: str = "", empty: str = "None.") -> str:
    """A DataFrame as an HTML table (numbers to 4 significant digits), or ``empty``."""
    if frame.empty:
        return paragraph(empty)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(f"<td{cls}>{text}</td>" for cls, text in map(_cell, record))
        rows.append(f"<tr>{cells}</tr>")
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def link_list(links: Sequence[tuple[str, str]]) -> str:
    """A bulleted list of links ``(href, text)``."""
    if not links:
        return paragraph("None.")
    items = "".join(f'<li><a href="{escape(h)}">{escape(t)}</a></li>' for h, t in links)
    return f"<ul>{items}</ul>"
