"""The report's figures, as inline SVG text or files.

Figures are built as bare matplotlib `Figure` objects, never through pyplot, so no GUI backend is
ever chosen or needed and nothing global has to be closed.

Each figure function takes loaded run data and returns a matplotlib `Figure`, or None when the run
lacks what it shows. SVG ids are prefixed with the figure's name so that several figures inlined in
one page never share an id; ids are salted with a constant and output carries no date, so the same
inputs give the same bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from nltk.tokenize import wordpunct_tokenize

from vscn.io import atomic_write_text
from vscn.report.inputs import Evaluation, RunData

FIGURE_SIZE = (7.0, 3.2)  # inches; the page scales figures to its width
WIDE_FIGURE_SIZE = (9.0, 3.2)
RECALL_KEYS = (("r1", "R@1"), ("r5", "R@5"), ("r10", "R@10"))
LOSS_PREFIX = "loss"
VALIDATION_RECALL_PREFIX = "t"  # t{turn}_r{k} columns of val_log.csv
SVG_HASH_SALT = "vscn"  # fixed: matplotlib salts its SVG ids with a random value otherwise
SVG_ID = re.compile(r'\sid="([^"]+)"')
SVG_ID_OR_REFERENCE = re.compile(r'(\sid="|url\(#|href="#)([^")]+)')


def new_figure(size: tuple[float, float] = FIGURE_SIZE, columns: int = 1) -> tuple[Figure, list[Any]]:
    """A figure not registered with pyplot (nothing global to close) and its axes."""
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def message_figure(message: str) -> Figure:
    """A figure that only says why the real one is missing (for figure files a rule declares)."""
    figure, (axis,) = new_figure()
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return figure


def captions_per_scene(run: RunData) -> Figure:
    """Histogram of kept (unique) captions per scene, stacked by split."""
    counts = run.regions.groupby("image_id").size().rename("captions").reset_index()
    counts = counts.merge(run.scenes[["image_id", "split"]], on="image_id", how="left")
    counts["split"] = counts["split"].fillna("unknown")
    figure, (axis,) = new_figure()
    splits = sorted(counts["split"].unique())
    bins = np.arange(counts["captions"].min(), counts["captions"].max() + 2) - 0.5
    axis.hist([counts.loc[counts["split"] == s, "captions"] for s in splits], bins=bins, stacked=True,
              label=splits)
    axis.set(xlabel="captions per scene (after the duplicate filter)", ylabel="scenes")
    axis.legend(title="split")
    return figure


def caption_lengths(captions: Sequence[str]) -> np.ndarray:
    """Tokens per caption by nltk's ``wordpunct_tokenize`` (a regex: needs no downloaded nltk data)."""
    return np.fromiter((len(wordpunct_tokenize(caption)) for caption in captions), dtype=np.int64,
                       count=len(captions))


def caption_length(run: RunData) -> Figure:
    lengths = caption_lengths(run.regions["caption"].tolist())
    figure, (axis,) = new_figure()
    bins = np.arange(lengths.min(), lengths.max() + 2) - 0.5
    axis.hist(lengths, bins=bins)
    axis.set(xlabel="tokens per caption (nltk wordpunct)", ylabel="captions")
    axis.axvline(float(np.median(lengths)), color="black", linestyle="--", label=f"median {np.median(lengths):g}")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.legend()
    return figure


def training_loss(run: RunData) -> Figure:
    """Every loss column of train_log.csv that holds finite values, against the global step."""
    log = run.train_log
    figure, (axis,) = new_figure()
    for column in (c for c in log.columns if c.startswith(LOSS_PREFIX)):
        values = pd.to_numeric(log[column], errors="coerce")
        if np.isfinite(values).any():
            axis.plot(log["step"], values, label=column, linewidth=2.0 if column == LOSS_PREFIX else 1.0)
    axis.set(xlabel="step", ylabel="loss (mean over the logging window)")
    axis.legend(fontsize="small", ncols=2)
    return figure


def learning_rate(run: RunData) -> Figure:
    figure, (axis,) = new_figure()
    axis.plot(run.train_log["step"], run.train_log["lr"])
    axis.set(xlabel="step", ylabel="learning rate")
    axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    return figure


def validation(run: RunData) -> Figure | None:
    """The model-selection score and the logged recalls against the epoch; None without a val log."""
    if run.val_log is None or run.val_log.empty:
        return None
    log = run.val_log
    figure, (score_axis, recall_axis) = new_figure(WIDE_FIGURE_SIZE, columns=2)
    score_axis.plot(log["epoch"], log["score"], marker="o")
    score_axis.set(xlabel="epoch", ylabel="validation score", title="model-selection score")
    best = int(log["score"].idxmax())
    score_axis.axvline(float(log["epoch"][best]), color="grey", linestyle=":", label="best (model.pt)")
    score_axis.legend(fontsize="small")
    for axis in (score_axis, recall_axis):
        axis.xaxis.get_major_locator().set_params(integer=True)
    for column in (c for c in log.columns if c.startswith(VALIDATION_RECALL_PREFIX) and "_r" in c):
        recall_axis.plot(log["epoch"], log[column], marker=".", label=column)
    recall_axis.set(xlabel="epoch", ylabel="recall (%)", title="validation recalls (turn_metric)")
    recall_axis.legend(fontsize="small", ncols=2)
    return figure


def recall_vs_turn(evaluations: Mapping[str, Evaluation], published: Mapping[str, Any] | None) -> Figure:
    """R@1, R@5 and R@10 against the turn for every evaluation, and the published numbers when given."""
    figure, axes = new_figure(WIDE_FIGURE_SIZE, columns=len(RECALL_KEYS))
    for axis, (key, title) in zip(axes, RECALL_KEYS):
        for evaluation in evaluations.values():
            if evaluation.turns:
                turns = [row["turn"] for row in evaluation.turns]
                axis.plot(turns, [row[key] for row in evaluation.turns], marker=".", label=evaluation.name,
                          linewidth=2.0 if evaluation.kind == "protocol" else 1.0)
        if published is not None:
            rows = [row for row in published["turns"] if key in row]
            axis.plot([row["turn"] for row in rows], [row[key] for row in rows], color="black",
                      linestyle="--", marker="s", label=f"{published['label']} ({published['protocol']})")
        axis.set(xlabel="turn", ylabel=f"{title} (%)", title=title)
        axis.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize="small")
    return figure


def prefix_ids(svg: str, prefix: str) -> str:
    """Every id of ``svg`` and every reference to one (``url(#id)``, ``href="#id"``) prefixed, so
    that figures inlined in one page never share an id (matplotlib numbers ``axes_1`` in each)."""
    ids = set(SVG_ID.findall(svg))
    return SVG_ID_OR_REFERENCE.sub(
        lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0), svg)


def to_svg(figure: Figure, name: str) -> str:
    """The figure as an ``<svg>`` element for inlining (no XML prolog), its ids prefixed with ``name``."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return prefix_ids(text[text.index("<svg"):], name)


def write_svg(figure: Figure, name: str, path: Path) -> Path:
    """The figure as a standalone SVG file (with its XML prolog), written atomically."""
    atomic_write_text(path, '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + to_svg(figure, name))
    return path
