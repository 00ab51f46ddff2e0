"""The report page: one index.html beside its PNG/SVG charts, no outside
resources (inline CSS, relative links only), so the folder can be copied or
uploaded as a CI artifact and still open."""
import html
import math
import os

SAFETY_CLASS_CSS = {"clean": "#c8e6c9", "unsupported": "#eeeeee", "interrupted": "#ffe0b2",
                    "violation": "#ffcdd2", "failed": "#e1bee7"}

CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;max-width:1900px}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.pair{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
figure{margin:0;flex:0 1 auto;max-width:62%} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555}
.tbl{flex:1 1 420px;overflow-x:auto;max-height:900px;overflow-y:auto}
table{border-collapse:collapse;font-size:.78em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0} td.l,th.l{text-align:left}
.note{background:#fff8e1;border-left:4px solid #ffb300;padding:.4em .8em;margin:.6em 0}
.confirmed{background:#c8e6c9;font-weight:bold} .refuted{background:#ffcdd2;font-weight:bold}
.met{background:#c8e6c9;font-weight:bold} .missed{background:#ffcdd2;font-weight:bold}
td.wrap{white-space:normal;text-align:left;max-width:60em}
@media (max-width:1100px){figure{max-width:100%}}
"""


def esc(x):
    return html.escape(str(x), quote=True)


def num(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e9:
        return f"{x / 1e9:.{digits}g} G"
    if a >= 1e6:
        return f"{x / 1e6:.{digits}g} M"
    if a >= 1e3:
        return f"{x / 1e3:.{digits}g} k"
    if a >= 0.001:
        return f"{x:.{digits}g}"
    return f"{x:.2e}"


def table(headers, rows, left=1):
    """headers: list of str; rows: list of lists of already-escaped cell HTML.
    The first `left` columns are names (left-aligned)."""
    th = "".join(f'<th class="l">{esc(h)}</th>' if i < left else f"<th>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r in rows:
        tds = []
        for i, c in enumerate(r):
            if isinstance(c, tuple):  # (html, attrs)
                tds.append(f"<td {c[1]}>{c[0]}</td>")
            else:
                tds.append(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(names, alt, caption=""):
    png, svg = names
    return (f'<figure><a href="{esc(svg)}"><img src="{esc(png)}" alt="{esc(alt)}"></a>'
            f'<figcaption>{esc(caption)} <a href="{esc(png)}">PNG</a> · <a href="{esc(svg)}">SVG</a></figcaption></figure>')


def section(anchor, title, intro, body):
    intro_html = f"<p>{intro}</p>" if intro else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{intro_html}{body}</section>'


def note(text):
    return f'<p class="note">{esc(text)}</p>'


def pair(fig_html, table_html):
    return f'<div class="pair">{fig_html}<div class="tbl">{table_html}</div></div>'


def page(title, parts):
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write(out_dir, text):
    path = os.path.join(out_dir, "index.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
