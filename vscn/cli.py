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

    verify_data_dir(args.data_root, split_lists=VG_SPLIT_LISTS)
    if args.report is not None:
        args.report.write_text("complete:\n" + "".join(f"  {item}\n" for item in VG_LAYOUT))
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
