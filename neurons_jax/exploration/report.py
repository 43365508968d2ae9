"""``report.html``: the exploration figures as one offline page (no scripts, fonts or CDN).

Tables come from ``stats.json``'s records; histograms are inline SVG bars; the pictures are the
PNGs written beside the page, referenced by relative path (:func:`referenced_files` lists every
``src``/``href`` of a page, and the tests check each exists).

Example:
    >>> html = page({"datasets": {}, "settings": {}})
    >>> html.startswith("<!DOCTYPE html>") and "<script" not in html
    True
    >>> referenced_files('<img src="a.png"><a href="#x">x</a><a href="b/c.png">c</a>')
    ['a.png', 'b/c.png']
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Sequence

from ..rules import UNION_CLASSES

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:19px;border-bottom:2px solid #ccc;padding-top:10px}
h3{font-size:16px;margin-bottom:4px}
table{border-collapse:collapse;margin:6px 0 14px;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 5px;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}.note{color:#666;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.err{color:#a00}img{image-rendering:pixelated;border:1px solid #ccc}
"""
CLASS_CSS = ("#000000", "#3c82ff", "#ff3c3c", "#3cdc5a", "#ffc828")


def esc(v) -> str:
    return _html.escape(str(v))


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.3e}"
    return esc(v)


def svg_bars(counts: Sequence[float], labels: tuple[str, str], title: str, log: bool = False,
             width: int = 300, height: int = 90, colour: str = "#4a7bd0") -> str:
    """A small inline-SVG bar chart (``log``: bar heights on a log10(1 + count) scale)."""
    import math

    if not counts:
        return f'<div class="note">{esc(title)}: no values</div>'
    vals = [math.log10(1 + c) if log else float(c) for c in counts]
    top = max(vals) or 1.0
    bw = width / len(vals)
    bars = "".join(
        f'<rect x="{i * bw:.2f}" y="{height - v / top * height:.2f}" width="{max(bw - 0.5, 0.5):.2f}" '
        f'height="{v / top * height:.2f}" fill="{colour}"/>' for i, v in enumerate(vals))
    scale = " (log scale)" if log else ""
    return (f'<figure style="margin:0"><figcaption class="note">{esc(title)}{scale}</figcaption>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}" '
            f'viewBox="0 0 {width} {height + 14}"><rect width="{width}" height="{height}" fill="#f7f7f7"/>'
            f'{bars}<text x="0" y="{height + 12}" font-size="10">{esc(labels[0])}</text>'
            f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">{esc(labels[1])}</text></svg></figure>')


def class_bar(classes: dict, width: int = 300) -> str:
    """One stacked bar of the union-class shares."""
    x, parts = 0.0, []
    for c, colour in zip(UNION_CLASSES, CLASS_CSS):
        share = classes.get(c, {}).get("share", 0.0)
        if share > 0:
            parts.append(f'<rect x="{x:.2f}" y="0" width="{share * width:.2f}" height="14" fill="{colour}">'
                         f'<title>{c} {share:.2%}</title></rect>')
            x += share * width
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="14">{"".join(parts)}</svg>'


def volume_table(rows: Sequence[dict], key: str = "name") -> str:
    head = (f'<tr><th class="l">{esc(key)}</th><th>shape (z,y,x)</th><th>voxel nm</th><th>extent µm</th>'
            "<th>dtype</th><th>p1</th><th>p50</th><th>p99</th>"
            + "".join(f"<th>{c}</th>" for c in UNION_CLASSES)
            + "<th>classes</th><th>instances</th><th>median µm³</th><th>boundary</th></tr>")
    body = []
    for r in rows:
        it = r["intensity"]["percentiles"]
        shape = "×".join(str(n) for n in r["shape"]) if "shape" in r else f"{len(r.get('volumes', []))} volumes"
        extent = "×".join(f"{e:.2f}" for e in r["extent_um"]) if "extent_um" in r else fmt(r["volume_um3"]) + " µm³"
        cls = r.get("classes", {})
        shares = "".join(f"<td>{cls[c]['share']:.1%}</td>" if c in cls else "<td>–</td>" for c in UNION_CLASSES)
        inst = r.get("instances", {})
        med = [v["um3"]["median"] for v in inst.get("by_class", {}).values() if "um3" in v]
        b = r.get("boundary")
        bfrac = f"{b['fraction']:.1%}" if b else "–"
        body.append(
            f'<tr><td class="l">{esc(r.get(key, ""))}</td><td>{shape}</td>'
            f'<td>{"×".join(f"{v:g}" for v in r["voxel_size_nm"])}</td><td>{extent}</td>'
            f'<td>{esc(r["dtype"].get("image"))}/{esc(r["dtype"].get("label") or "–")}</td>'
            f'<td>{fmt(it["1"])}</td><td>{fmt(it["50"])}</td><td>{fmt(it["99"])}</td>{shares}'
            f'<td>{class_bar(cls, 120) if cls else "–"}</td><td>{inst.get("count", "–")}</td>'
            f'<td>{fmt(med[0]) if med else "–"}</td><td>{bfrac}</td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def volume_details(r: dict) -> str:
    it = r["intensity"]
    hist = it["histogram"]
    lo, hi = (fmt(hist["edges"][0]), fmt(hist["edges"][-1])) if hist["edges"] else ("", "")
    how = "exact" if it["exact"] else f"approximate, within {fmt(it['abs_error'])}"
    parts = [svg_bars(hist["counts"], (lo, hi), f"intensity ({how}; {it['non_finite']} non-finite)", log=True)]
    for c, s in r.get("instances", {}).get("by_class", {}).items():
        lh = s.get("log_histogram", {})
        if lh.get("counts"):
            parts.append(svg_bars(lh["counts"], ("1", f"{lh['edges_voxels'][-1]} voxels"),
                                  f"{c}: {s['count']} instances, sizes in 2^k voxels", colour="#3c9a5a"))
    pics = "".join(f'<img src="{esc(p)}" alt="{esc(p)}">' for p in r.get("pictures", []))
    return f'<h3>{esc(r["name"])}</h3><div class="row">{"".join(parts)}</div><div class="row">{pics}</div>'


def page(stats: dict, title: str = "neurons_jax dataset exploration") -> str:
    """The whole report page for the dict ``explore`` returns."""
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"]
    settings = stats.get("settings", {})
    if settings:
        out.append('<p class="note">' + esc("; ".join(f"{k}: {v}" for k, v in settings.items())) + "</p>")
    overview = [{**r, "name": f"{name} / {split} / {r['name']}"}
                for name, ds in stats.get("datasets", {}).items()
                for split, sp in ds["splits"].items() for r in sp.get("volumes", [])]
    if overview:
        out.append('<h2>Overview</h2><p class="note">every dataset / split / volume; details below</p>'
                   + volume_table(overview, key="name"))
    for name, ds in stats.get("datasets", {}).items():
        out.append(f'<h2 id="{esc(name)}">{esc(name)} <span class="note">{esc(ds["kind"])} at '
                   f'{esc(ds["root"])}</span></h2>')
        for split, sp in ds["splits"].items():
            if "error" in sp:
                out.append(f'<p class="err">{esc(split)}: unavailable ({esc(sp["error"])})</p>')
                continue
            out.append(f"<h3>{esc(split)}</h3>" + volume_table(sp["volumes"]))
            if sp.get("groups"):
                out.append('<p class="note">one row per cell type (its volumes merged):</p>'
                           + volume_table(sp["groups"], key="group"))
            out.extend(volume_details(r) for r in sp["volumes"])
    out.append('<p class="note">percentiles: exact for integer images, a streaming histogram for float '
               "images; boundary: share of labelled voxels with a 6-neighbour of another native id; "
               "instance sizes: voxels and µm³ per instance.</p></body></html>")
    return "\n".join(out)


def referenced_files(html: str) -> list[str]:
    """Every ``src``/``href`` of ``html`` that is a file (not an ``#anchor``), in order."""
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    return [r for r in refs if r and not r.startswith("#")]
