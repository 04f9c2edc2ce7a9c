"""HTML building blocks of the report: escaped text, tables, figures, examples and the page itself.

The page is one file: inline CSS, inline SVG figures and base64 thumbnails, no script and no
external reference, so it opens anywhere, offline. Metric cells carry ``data-metric`` and ``data-turn``
attributes so that tools (and the tests) can read the numbers back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from string import Template

from vscn.report.examples import Example, Hit, Thumbnail

METRIC_FORMATS = {"r1": ".2f", "r5": ".2f", "r10": ".2f", "medr": ".1f", "meanr": ".2f", "mrr": ".4f"}
METRIC_TITLES = {"r1": "R@1", "r5": "R@5", "r10": "R@10", "medr": "median rank", "meanr": "mean rank",
                 "mrr": "MRR"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.note { background: #fff8e0; border-left: 4px solid #e0b000; padding: .4em .8em; }
.example { border: 1px solid #ddd; padding: .6em; margin: 1em 0; }
.strip { display: flex; flex-wrap: wrap; gap: .5em; align-items: flex-start; margin: .3em 0; }
.thumb { width: 160px; font-size: .75em; text-align: center; }
.thumb img { max-width: 160px; max-height: 120px; display: block; margin: 0 auto; border: 3px solid transparent; }
.thumb.target img, .thumb.target .missing { border-color: #2a9d3a; }
.missing { width: 154px; height: 114px; border: 3px dashed #aaa; display: flex; align-items: center;
           justify-content: center; color: #777; background: #f4f4f4; }
.turn-label { width: 6em; font-weight: 600; }
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<h1>$title</h1>
$body
</body>
</html>
""")


def text(value: object) -> str:
    return escape(str(value), quote=True)


def fmt_metric(key: str, value: float) -> str:
    return format(float(value), METRIC_FORMATS.get(key, ".4g"))


def attributes(values: Mapping[str, object] | None) -> str:
    return "".join(f' {name}="{text(value)}"' for name, value in (values or {}).items())


def is_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def cell(value: object, tag: str = "td", attrs: Mapping[str, object] | None = None) -> str:
    """One table cell; text that is not a number is left-aligned."""
    css = "" if is_number(value) else ' class="text"'
    return f"<{tag}{css}{attributes(attrs)}>{text(value)}</{tag}>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], attrs: Mapping[str, object] | None = None) -> str:
    """A table from ready-made cell HTML (`cell`) per row."""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table{attributes(attrs)}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def simple_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                 attrs: Mapping[str, object] | None = None) -> str:
    return table(headers, ([cell(value) for value in row] for row in rows), attrs)


def metrics_table(turns: Sequence[Mapping[str, float]], attrs: Mapping[str, object]) -> str:
    """One row per turn; every metric cell carries its name and turn."""
    rows = [[cell(int(row["turn"]))] + [cell(fmt_metric(key, row[key]), attrs={"data-metric": key,
                                                                                "data-turn": int(row["turn"])})
                                        for key in METRIC_FORMATS] for row in turns]
    return table(["turn", *METRIC_TITLES.values()], rows, {"class": "metrics", **attrs})


def note(message: str) -> str:
    return f'<p class="note">{text(message)}</p>'


def paragraph(message: str) -> str:
    return f"<p>{text(message)}</p>"


def section(title: str, content: str, level: int = 2, anchor: str | None = None) -> str:
    anchor_attr = f' id="{text(anchor)}"' if anchor else ""
    return f"<section{anchor_attr}><h{level}>{text(title)}</h{level}>\n{content}\n</section>"


def figure(svg: str, caption: str, anchor: str) -> str:
    """An inline SVG (already markup, from matplotlib) with its caption."""
    return f'<figure id="{text(anchor)}">{svg}<figcaption>{text(caption)}</figcaption></figure>'


def preformatted(content: str) -> str:
    return f"<pre>{text(content)}</pre>"


def thumbnail(thumb: Thumbnail, label: str, is_target: bool) -> str:
    css = "thumb target" if is_target else "thumb"
    if thumb.data_uri is None:
        image = f'<div class="missing" title="{text(thumb.path)}">image {thumb.image_id}<br>{text(thumb.problem)}</div>'
    else:
        image = f'<img src="{thumb.data_uri}" alt="image {thumb.image_id}" title="{text(thumb.path)}">'
    return f'<div class="{css}">{image}{label}</div>'


def hit(item: Hit) -> str:
    marker = " (target)" if item.is_target else ""
    return thumbnail(item.thumbnail, f"#{item.rank} image {item.thumbnail.image_id}{marker}<br>score "
                                     f"{item.score:.3f}", item.is_target)


def example_block(example: Example) -> str:
    queries = "".join(f"<li>{text(query)}</li>" for query in example.queries)
    turns = "".join(f'<div class="strip"><div class="turn-label">after turn {turn.turn}</div>'
                    f"{''.join(hit(item) for item in turn.hits)}</div>" for turn in example.turns)
    target = thumbnail(example.target, f"target: image {example.target.image_id}", True)
    return (f'<div class="example" data-image-id="{example.target.image_id}"><div class="strip">{target}'
            f"<div><b>queries, one per turn</b><ol>{queries}</ol></div></div>{turns}</div>")


def page(title: str, body: str) -> str:
    return PAGE.substitute(title=text(title), style=STYLE, body=body)
