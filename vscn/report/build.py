"""`write_report`: one self-contained HTML page over one or more runs, and optionally figure files.

Per run the page shows the resolved config, the data summary, training curves, recall against the
turn for every protocol, ablation and baseline, per-turn tables, the paper-against-strict comparison,
published numbers when given, and qualitative examples. Package versions are listed once.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from vscn.io import atomic_write_text
from vscn.report import html
from vscn.report.examples import TOP_SHOWN, build_examples
from vscn.report.figures import (caption_length, captions_per_scene, learning_rate, message_figure,
                                 recall_vs_turn, to_svg, training_loss, validation, write_svg)
from vscn.report.inputs import PAPER, STRICT, Evaluation, ReportInputError, RunData, load_run

logger = logging.getLogger(__name__)

PACKAGES = ("vscn", "torch", "numpy", "h5py", "snakemake")
DEFAULT_EXAMPLES = 4
PUBLISHED_RECALLS = ("r1", "r5", "r10")
TITLE = "vscn: multi-query image retrieval results"


@dataclass(frozen=True)
class FigureSpec:
    name: str  # file stem and anchor
    caption: str
    make: Callable[[RunData, Mapping[str, Any] | None], Figure | None]
    missing: str  # what the page says when ``make`` returns None


FIGURES = (
    FigureSpec("captions_per_scene", "Unique captions per kept scene, by split.",
               lambda run, _: captions_per_scene(run), ""),
    FigureSpec("caption_length", "Caption length in tokens (nltk wordpunct tokenisation), all kept captions.",
               lambda run, _: caption_length(run), ""),
    FigureSpec("training_loss", "Training losses (train_log.csv), each the mean over its logging window.",
               lambda run, _: training_loss(run), ""),
    FigureSpec("learning_rate", "Learning rate against the optimiser step.", lambda run, _: learning_rate(run), ""),
    FigureSpec("validation", "Validation score (model selection) and recalls per epoch (val_log.csv).",
               lambda run, _: validation(run), "no validation log: training ran without validation"),
    FigureSpec("recall_vs_turn", "Test recall against the turn for every protocol, ablation and baseline "
               "(published numbers dashed, when given).",
               lambda run, published: recall_vs_turn(run.evaluations, published), ""),
)
FIGURE_NAMES = tuple(spec.name for spec in FIGURES)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages behind the results, and Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_published(published: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Published numbers ``{label, protocol, turns: [{turn, r1, r5, r10}, ...], source?}``, checked."""
    if published is None:
        return None
    where = "published numbers (config report.published)"
    if not isinstance(published, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(published).__name__}")
    missing = [key for key in ("label", "protocol", "turns") if key not in published]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    turns = published["turns"]
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: 'turns' must be a non-empty list")
    for row in turns:
        if not isinstance(row, Mapping) or "turn" not in row or not any(k in row for k in PUBLISHED_RECALLS):
            raise ValueError(f"{where}: each turn needs 'turn' and at least one of {', '.join(PUBLISHED_RECALLS)}, "
                             f"got {row!r}")
        bad = [k for k in PUBLISHED_RECALLS if k in row and not isinstance(row[k], (int, float))]
        if bad:
            raise ValueError(f"{where}: turn {row['turn']}: {', '.join(bad)} must be numbers")
    return {**published, "turns": sorted((dict(row) for row in turns), key=lambda row: row["turn"])}


# ------------------------------------------------------------------------------------ sections

def provenance_section(versions: Mapping[str, str], runs: Sequence[RunData]) -> str:
    content = html.simple_table(["package", "version"], versions.items(), {"class": "versions"})
    content += "".join(html.section(f"resolved config: {run.name} ({run.path})",
                                    html.preformatted(yaml.safe_dump(run.config, sort_keys=False)), level=3)
                       for run in runs)
    return html.section("Provenance", content, anchor="provenance")


def data_section(run: RunData, figures: Mapping[str, str]) -> str:
    summary = run.summary
    rows = [("scenes read", summary.get("scenes_read", "")), ("split source", summary.get("split_source", "")),
            ("images not found", summary.get("images_not_found", ""))]
    rows += [(f"split size: {split}", size) for split, size in summary.get("split_sizes", {}).items()]
    rows += [(f"kept {kind}", count) for kind, count in summary.get("kept", {}).items()]
    dropped = [(kind, reason, count) for kind, reasons in summary.get("dropped", {}).items()
               for reason, count in reasons.items()]
    content = html.simple_table(["scene database", "value"], rows, {"class": "summary"})
    content += (html.simple_table(["dropped", "reason", "count"], dropped, {"class": "dropped"}) if dropped
                else html.paragraph("Nothing was dropped."))
    content += figures["captions_per_scene"] + figures["caption_length"]
    return html.section("Data", content, level=3)


def training_section(figures: Mapping[str, str]) -> str:
    return html.section("Training", figures["training_loss"] + figures["learning_rate"] + figures["validation"],
                        level=3)


def evaluation_tables(run: RunData) -> str:
    parts = []
    for evaluation in run.evaluations.values():
        title = f"{evaluation.name} ({evaluation.kind}): {evaluation.label}"
        sizes = f"{evaluation.n_queries} query sets, gallery of {evaluation.n_gallery} images."
        if evaluation.skipped:
            body = html.note(f"skipped: {evaluation.skipped}")
        else:
            body = html.paragraph(sizes) + html.metrics_table(
                evaluation.turns, {"data-run": run.name, "data-evaluation": evaluation.name})
        parts.append(html.section(title, body, level=4))
    return "".join(parts)


def difference_phrase(paper: float, strict: float) -> str:
    difference = paper - strict
    if difference == 0:
        return "the same as"
    return f"{abs(difference):.2f} points {'higher' if difference > 0 else 'lower'} than"


def paper_strict_sentence(strict: Evaluation, paper: Evaluation) -> str:
    """What the two protocols' numbers say, computed from them."""
    common = sorted({int(r["turn"]) for r in strict.turns} & {int(r["turn"]) for r in paper.turns})
    if not common:
        return "The paper and strict protocols share no evaluated turn, so they cannot be compared."
    first, last = common[0], common[-1]
    said = []
    for turn in dict.fromkeys((first, last)):
        s, p = strict.at_turn(turn)["r1"], paper.at_turn(turn)["r1"]
        said.append(f"at turn {turn} the paper protocol reports R@1 {p:.2f}% against {s:.2f}% under the strict "
                    f"protocol, {difference_phrase(p, s)} strict")
    gap = paper.at_turn(first)["r1"] - strict.at_turn(first)["r1"]
    shard, covered, total = paper.extra.get("shard_size"), paper.n_gallery, strict.n_gallery
    why = (f"Same model, same test scenes; only the scoring differs. The paper protocol contextualises each "
           f"gallery image with the query set at its position in a shard of {shard}, so in the diagonal shards "
           "the target image has seen its own queries (a query leak); it adds local scores [query, image] to the "
           "global score [image, query] (mixed orientation)")
    why += (f"; and it ranks only the {covered} of {total} images that fill whole shards." if covered < total
            else f"; it ranks all {covered} images.")
    why += " The strict protocol ranks every image, each seeing only the query set it is scored against."
    if gap > 0:
        verdict = ("The paper protocol's higher numbers therefore measure the leak as well as the model: they are "
                   "not comparable with strict numbers, only with other paper-protocol numbers.")
    elif gap < 0:
        verdict = ("Here the leak does not make up for the mixed orientation: the paper protocol scores lower, "
                   "so its numbers understate this model under a correct scoring.")
    else:
        verdict = "Here the differences cancel at turn 1."
    numbers = "; ".join(said)
    return f"{numbers[0].upper()}{numbers[1:]}. {why} {verdict}"


def comparison_table(rows: Sequence[tuple[int, Mapping[str, float] | None, Mapping[str, float] | None]],
                     names: tuple[str, str], attrs: Mapping[str, object]) -> str:
    """R@1/5/10 of two sources side by side per turn, with their differences (second minus first)."""
    headers = ["turn"] + [f"{name} {html.METRIC_TITLES[k]}" for name in names for k in PUBLISHED_RECALLS]
    headers += [f"difference {html.METRIC_TITLES[k]}" for k in PUBLISHED_RECALLS]
    body = []
    for turn, first, second in rows:
        cells = [html.cell(turn)]
        for source in (first, second):
            cells += [html.cell(html.fmt_metric(k, source[k]) if source and k in source else "-") for k in PUBLISHED_RECALLS]
        cells += [html.cell(f"{second[k] - first[k]:+.2f}" if first and second and k in first and k in second else "-")
                  for k in PUBLISHED_RECALLS]
        body.append(cells)
    return html.table(headers, body, {"class": "comparison", **attrs})


def paper_strict_section(run: RunData) -> str:
    strict, paper = run.evaluations.get(STRICT), run.evaluations.get(PAPER)
    if paper is None or paper.skipped or not paper.turns:
        return html.section("Paper protocol against strict", html.note(
            "No paper-protocol metrics for this run (metrics/paper.json absent or skipped), so no comparison."), level=3)
    turns = sorted({int(r["turn"]) for r in strict.turns} | {int(r["turn"]) for r in paper.turns})
    rows = [(turn, strict.at_turn(turn), paper.at_turn(turn)) for turn in turns]
    content = html.paragraph(paper_strict_sentence(strict, paper))
    content += comparison_table(rows, (STRICT, PAPER), {"data-run": run.name, "data-comparison": "paper-strict"})
    return html.section("Paper protocol against strict", content, level=3)


def published_section(run: RunData, published: Mapping[str, Any] | None) -> str:
    title = "Published numbers"
    if published is None:
        return html.section(title, html.note("No published numbers given (config report.published)."), level=3)
    protocol = published["protocol"]
    ours = run.evaluations.get(protocol)
    if ours is None or not ours.turns:
        ours = run.evaluations[STRICT]
        said = (f"Published: {published['label']}, under the {protocol} protocol. This run has no {protocol} "
                f"metrics, so they stand beside ours under the strict protocol: not the same scoring.")
    else:
        said = f"Published: {published['label']}, under the {protocol} protocol, beside ours under the same protocol."
    if published.get("source"):
        said += f" Source: {published['source']}."
    by_turn = {int(row["turn"]): row for row in published["turns"]}
    rows = [(turn, by_turn[turn], ours.at_turn(turn)) for turn in sorted(by_turn)]
    content = html.paragraph(said) + comparison_table(
        rows, (f"published ({protocol})", f"ours ({ours.name})"), {"data-run": run.name, "data-comparison": "published"})
    return html.section(title, content, level=3)


def examples_section(run: RunData, count: int) -> str:
    title = "Qualitative examples"
    examples = build_examples(run, count)
    if not examples:
        reason = "no strict rankings (metrics/strict_rankings.npz)" if run.rankings is None else "none requested"
        return html.section(title, html.note(f"No examples: {reason}."), level=3)
    intro = html.paragraph(f"{len(examples)} test scenes spread evenly over the split: the target (green frame), "
                           f"its queries, and the top {TOP_SHOWN} images of the strict protocol after the turns "
                           "shown.")
    return html.section(title, intro + "".join(html.example_block(e) for e in examples), level=3)


def overview_section(runs: Sequence[RunData]) -> str:
    """Strict R@1/5/10 at the first and last turn of each run."""
    rows = []
    for run in runs:
        strict = run.evaluations[STRICT]
        for row in (strict.turns[0], strict.turns[-1]) if strict.turns else ():
            rows.append([run.name, int(row["turn"])] + [html.fmt_metric(k, row[k]) for k in PUBLISHED_RECALLS])
    headers = ["run", "turn"] + [f"strict {html.METRIC_TITLES[k]}" for k in PUBLISHED_RECALLS]
    return html.section("Overview", html.simple_table(headers, rows, {"class": "overview"}), anchor="overview")


# ------------------------------------------------------------------------------------ figures

def figure_path(figures_dir: Path, run: RunData, name: str, several_runs: bool) -> Path:
    """``<dir>/<name>.svg`` for one run, ``<dir>/<run>-<name>.svg`` for several."""
    return figures_dir / (f"{run.name}-{name}.svg" if several_runs else f"{name}.svg")


def run_figures(run: RunData, published: Mapping[str, Any] | None, figures_dir: Path | None,
                several_runs: bool) -> dict[str, str]:
    """Every figure of a run as page HTML (a note when unavailable), also written to ``figures_dir``."""
    blocks = {}
    for spec in FIGURES:
        made = spec.make(run, published)
        anchor = f"figure-{run.name}-{spec.name}"
        if made is None:
            blocks[spec.name] = html.note(spec.missing)
        else:
            blocks[spec.name] = html.figure(to_svg(made, anchor), spec.caption, anchor)
        if figures_dir is not None:
            # A rule declares every figure file, so an unavailable one is a figure saying why.
            write_svg(made if made is not None else message_figure(spec.missing), anchor,
                      figure_path(figures_dir, run, spec.name, several_runs))
    return blocks


def run_section(run: RunData, published: Mapping[str, Any] | None, figures_dir: Path | None,
                n_examples: int, several_runs: bool) -> str:
    figures = run_figures(run, published, figures_dir, several_runs)
    notes = "".join(html.note(message) for message in run.notes)
    content = (notes + data_section(run, figures) + training_section(figures)
               + html.section("Retrieval", figures["recall_vs_turn"] + evaluation_tables(run), level=3)
               + paper_strict_section(run) + published_section(run, published) + examples_section(run, n_examples))
    return html.section(f"Run {run.name}", content, anchor=f"run-{run.name}")


def write_report(runs: Sequence[Path | str] | Path | str, out_html: Path | str, figures_dir: Path | str | None = None,
                 published: Mapping[str, Any] | None = None, n_examples: int = DEFAULT_EXAMPLES) -> Path:
    """Write the report over ``runs`` (run directories, ``results/<run>``) to ``out_html`` and return it.

    ``figures_dir``: also write every figure there as SVG (see `figure_path`; `FIGURE_NAMES`).
    ``published``: published numbers to set beside ours (see `check_published`). ``n_examples``:
    qualitative examples per run. A missing required input raises `ReportInputError` naming it.
    """
    run_dirs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(run) for run in runs]
    if not run_dirs:
        raise ReportInputError("no run directory given")
    if n_examples < 0:
        raise ValueError(f"n_examples must be >= 0, got {n_examples}")
    published = check_published(published)
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    names = [run.name for run in loaded]
    if len(set(names)) != len(names):
        raise ReportInputError(f"runs {', '.join(map(str, run_dirs))} have repeated names {names}")
    figures_dir = Path(figures_dir) if figures_dir is not None else None
    body = overview_section(loaded)
    body += "".join(run_section(run, published, figures_dir, n_examples, len(loaded) > 1) for run in loaded)
    body += provenance_section(package_versions(), loaded)
    out_html = Path(out_html)
    atomic_write_text(out_html, html.page(TITLE, body))
    logger.info("wrote %s (%d run(s))", out_html, len(loaded))
    return out_html
