"""The `vscn` command: thin drivers over the library, one subcommand per pipeline step.

Snakemake rules call these with paths and one JSON object of settings (a config section); each
subcommand turns the settings into the library's typed values and calls one library function.
Library modules are imported inside the subcommands so that `vscn --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("vscn")

Run = Callable[[argparse.Namespace], None]
AddArguments = Callable[[argparse.ArgumentParser], None]
COMMANDS: dict[str, tuple[Run, AddArguments, str]] = {}


def command(name: str, help: str, arguments: AddArguments) -> Callable[[Run], Run]:
    """Register a subcommand: `arguments` declares its options, the decorated function runs it."""

    def register(run: Run) -> Run:
        COMMANDS[name] = (run, arguments, help)
        return run

    return register


def settings_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=json.loads, default={}, help="config section as a JSON object")


def threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def use_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------- provenance


def _write_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="YAML file to write")
    settings_arg(parser)


@command("write-config", "save the resolved configuration (defaults filled) beside the results", _write_config_args)
def run_write_config(args: argparse.Namespace) -> None:
    import yaml

    from vscn.io import atomic_write_text

    atomic_write_text(args.out, yaml.safe_dump(args.settings, sort_keys=False))


# ---------------------------------------------------------------- data


def _demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="folder to write the demo dataset to")
    settings_arg(parser)


@command("demo", "render the demo dataset in Visual Genome's per-image layout", _demo_args)
def run_demo(args: argparse.Namespace) -> None:
    from vscn.data.demo import generate_demo

    generate_demo(args.root, **args.settings)


def _fetch_args(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--group", help="fetch every required source of this group (vg_sources.yaml)")
    what.add_argument("--source", help="fetch this one source, by name")
    parser.add_argument("--data-root", type=Path, required=True, help="the Visual Genome data directory")
    parser.add_argument("--downloads", type=Path, required=True, help="where downloads and their manifest are kept")
    parser.add_argument("--retries", type=int, default=3)


@command("fetch", "download, verify and unpack Visual Genome sources", _fetch_args)
def run_fetch(args: argparse.Namespace) -> None:
    from vscn.data.sources import fetch_group, load_sources

    sources = load_sources()
    if args.source is not None:
        sources = [source for source in sources if source.name == args.source]
        if not sources:
            raise ValueError(f"unknown source {args.source!r}")
    group = args.group or sources[0].group
    manifest = args.downloads / "manifest.json"
    for path in fetch_group(group, args.data_root, args.downloads, manifest, args.retries, sources=sources):
        log.info("ready: %s", path)


def _verify_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", type=Path, required=True, help="the Visual Genome data directory")
    parser.add_argument("--report", type=Path, help="write the list of what was checked here when complete")


@command("verify-data", "list exactly what a Visual Genome data directory lacks", _verify_args)
def run_verify_data(args: argparse.Namespace) -> None:
    from vscn.data.datadir import VG_LAYOUT, VG_SPLIT_LISTS, verify_data_dir
    from vscn.io import atomic_write_text

    verify_data_dir(args.data_root, split_lists=VG_SPLIT_LISTS)
    if args.report is not None:
        atomic_write_text(args.report, "complete:\n" + "".join(f"  {item}\n" for item in VG_LAYOUT))
    log.info("%s: complete", args.data_root)


def _scenes_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", type=Path, required=True, help="folder with the per-image annotations")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the scene database to")
    parser.add_argument("--layout", type=json.loads, default={}, help="data.layout section as a JSON object")
    parser.add_argument("--seed", type=int, default=0, help="seed of derived splits")
    settings_arg(parser)


@command("scenes", "filter and split the annotated scenes into the scene database", _scenes_args)
def run_scenes(args: argparse.Namespace) -> None:
    from vscn.data.layout import DataLayout, build_scenes

    summary = build_scenes(args.data_root, DataLayout(**args.layout), args.out, seed=args.seed, **args.settings)
    log.info("kept %s; dropped %s", summary.kept, summary.dropped)


def _features_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", type=Path, required=True, help="the scene database folder")
    parser.add_argument("--split", required=True, help="train, val or test")
    parser.add_argument("--data-root", type=Path, required=True, help="the data folder (images, precomputed features)")
    parser.add_argument("--out", type=Path, required=True, help="HDF5 file to write")
    threads_arg(parser)
    settings_arg(parser)


@command("features", "encode one split into an HDF5 feature file", _features_args)
def run_features(args: argparse.Namespace) -> None:
    from vscn.data.feature_step import FeatureSettings, encode_split

    use_threads(args.threads)
    encode_split(args.scenes, args.split, args.data_root, FeatureSettings.from_dict(args.settings), args.out)


# ---------------------------------------------------------------- training


def _train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, required=True, help="HDF5 feature file of the train split")
    parser.add_argument("--val", type=Path, required=True, help="HDF5 feature file of the val split")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for model.pt and the CSV logs")
    parser.add_argument("--state", type=Path, required=True, help="resumable state; an existing one is resumed")
    parser.add_argument("--max-turns", type=int, required=True, help="query slots per scene (T)")
    parser.add_argument("--model", type=json.loads, default={}, help="model section as a JSON object")
    threads_arg(parser)
    settings_arg(parser)


@command("train", "train VSCN, validating every epoch and keeping the best model", _train_args)
def run_train(args: argparse.Namespace) -> None:
    from vscn.training import train_with_validation

    use_threads(args.threads)
    result = train_with_validation(
        args.train, args.val, args.out_dir, args.state, args.model, args.settings, args.max_turns
    )
    log.info("%s", result)


# ---------------------------------------------------------------- evaluation


def _evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="model.pt of a training run")
    parser.add_argument("--features", type=Path, required=True, help="HDF5 feature file of the gallery split")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for <name>.json|csv")
    parser.add_argument("--names", nargs="+", required=True, help="protocols and ablations: strict paper s1_only g_only")
    threads_arg(parser)
    settings_arg(parser)


@command("evaluate", "rank the gallery turn by turn under the given protocols", _evaluate_args)
def run_evaluate(args: argparse.Namespace) -> None:
    from vscn.evaluation import evaluate_model, write_metrics
    from vscn.training import load_model, resolve_device

    use_threads(args.threads)
    settings = dict(args.settings)
    model, _ = load_model(args.model, map_location=resolve_device(settings.pop("device", "auto")))
    for name, result in evaluate_model(model, args.features, args.names, **settings).items():
        write_metrics(result, args.out_dir, name)
        log.info("%s: %s", name, result.turns[-1] if result.turns else "skipped")


def _baseline_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", type=Path, required=True, help="HDF5 feature file of the gallery split")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for <name>.json|csv")
    parser.add_argument("--name", required=True, help="cosine_mean or cosine_sum")
    parser.add_argument("--max-turns", type=int, required=True)


@command("baseline", "zero-shot ranking from the feature file alone", _baseline_args)
def run_baseline(args: argparse.Namespace) -> None:
    from vscn.evaluation import evaluate_baseline, write_metrics

    write_metrics(evaluate_baseline(args.features, args.name, args.max_turns), args.out_dir, args.name)


# ---------------------------------------------------------------- report and search


def _report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run result folders (results/<run>)")
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    parser.add_argument("--figures", type=Path, help="also write every figure as an SVG file into this folder")
    settings_arg(parser)


@command("report", "write the self-contained HTML results report", _report_args)
def run_report(args: argparse.Namespace) -> None:
    from vscn.report import write_report

    write_report(args.runs, args.out, figures_dir=args.figures, **args.settings)


def _search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", dest="run_dir", type=Path, required=True, help="a trained run's results folder, e.g. results/demo"
    )
    parser.add_argument("--split", default="test", help="the split whose images are searched (default: test)")
    parser.add_argument("--top", type=int, default=10, help="images listed per turn (default: 10)")
    parser.add_argument("--rescore", type=int, default=100, help="images rescored with the fused score per turn")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="one JSON object per turn instead of a table")
    parser.add_argument(
        "queries", nargs="*", metavar="QUERY", help="one query per turn; without any, read them from stdin, one per line"
    )


@command("search", "multi-turn retrieval over a trained run's images with free-text queries", _search_args)
def run_search(args: argparse.Namespace) -> None:
    from vscn.search import SearchSession, format_ranking, interactive

    session = SearchSession(args.run_dir, args.split, top_k=args.rescore, device=args.device)
    if args.queries:
        for ranking in session.search(args.queries):
            print(format_ranking(ranking, args.top, args.json), flush=True)
        return
    if sys.stdin.isatty():
        print(
            f"one query per line, {session.max_turns} at most; ':reset' starts again, ':quit' or Ctrl-D ends",
            file=sys.stderr,
        )
    for output in interactive(session, sys.stdin, args.top, args.json):
        print(output.text, file=sys.stderr if output.is_message else sys.stdout, flush=True)


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vscn", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (run, add_arguments, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.run(args)
    except (OSError, ValueError, KeyError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
