"""The Snakemake workflow: config validation, lint, dry runs and a tiny end-to-end run."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake from the repository root with the environment's programs first on the PATH."""
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(SNAKEMAKE), "--nolock", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_config(path: Path, **sections) -> Path:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/vg.yaml"])
def test_lint_is_clean(configfile):
    result = snakemake("--lint", "--configfile", configfile)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_dry_run_of_the_demo_lists_every_stage(tmp_path):
    config = write_config(tmp_path / "config.yaml", results_dir=str(tmp_path / "results"),
                          data={"root": str(tmp_path / "demo")})
    result = snakemake("-n", "--configfile", str(config))
    stages = ("demo_data", "resolved_config", "scene_db", "features", "train", "evaluate_strict",
              "evaluate_paper", "baseline", "report", "all")
    for rule in stages:
        assert f"rule {rule}:" in result.stdout or f"localrule {rule}:" in result.stdout


def test_dry_run_of_visual_genome_fetches_and_verifies(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "vg.yaml").read_text())
    config["results_dir"], config["data"]["root"] = str(tmp_path / "results"), str(tmp_path / "vg")
    (tmp_path / "vg.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(tmp_path / "vg.yaml"))
    for rule in ("vg_reference_list", "vg_fetch_group", "vg_verify", "scene_db"):
        assert f"rule {rule}:" in result.stdout
    assert "vscn fetch --source vg_test.txt" in result.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"scenes": {"max_turn": 10}}, "'max_turn' was unexpected"),
        ({"data": {"sorce": "demo"}}, "'sorce' was unexpected"),
        ({"colour": "red"}, "'colour' was unexpected"),
        ({"scenes": {"max_turns": 0}}, "0 is less than the minimum of 1"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, change, named):
    config = write_config(tmp_path / "config.yaml", **change)
    result = snakemake("-n", "--configfile", str(config), check=False)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


TINY_RUN = {
    "run": "tiny",
    "data": {"demo": {"n_train": 16, "n_val": 6, "n_test": 6, "seed": 5}},
    "model": {"embed_dim": 16, "num_heads": 2, "ffn_dim": 32, "visual_layers": 1, "crossmodal_layers": 1},
    "train": {"epochs": 2, "batch_size": 8, "warmup_steps": 2, "lr_decay_epochs": 1, "log_every": 1,
              "validation": {"protocol": "strict", "top_k": 3}},
    "evaluate": {"top_k": 3, "shard_size": 3},
}


def test_the_whole_pipeline_runs_end_to_end_on_a_tiny_demo(tmp_path):
    config = write_config(
        tmp_path / "config.yaml",
        results_dir=str(tmp_path / "results"),
        **{**TINY_RUN, "data": {"root": str(tmp_path / "demo"), **TINY_RUN["data"]}},
    )
    snakemake("--cores", "2", "--configfile", str(config))
    run = tmp_path / "results" / "tiny"
    summary = yaml.safe_load((run / "scenes" / "summary.json").read_text())
    assert summary["split_sizes"] == {"train": 16, "val": 6, "test": 6}
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["embed_dim"] == 16 and resolved["model"]["tau"] == 15.0  # defaults filled in
    for name in ("strict", "paper", "s1_only", "g_only", "cosine_mean", "cosine_sum"):
        metrics = yaml.safe_load((run / "metrics" / f"{name}.json").read_text())
        assert [turn["turn"] for turn in metrics["turns"]] == list(range(1, 11)) or metrics.get("skipped")
    assert (tmp_path / "results" / "report.html").stat().st_size > 0
    assert {path.name for path in (run / "logs").iterdir()} >= {"demo_data.log", "scene_db.log", "train.log"}
    rerun = snakemake("-n", "--configfile", str(config))
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    snakemake("--configfile", str(config), "--report", str(tmp_path / "snakemake_report.zip"))
    with zipfile.ZipFile(tmp_path / "snakemake_report.zip") as archive:
        assert any(name.endswith("recall_vs_turn.svg") for name in archive.namelist())


def test_slurm_profile_plans_training_on_a_gpu_partition(tmp_path):
    config = write_config(tmp_path / "config.yaml", results_dir=str(tmp_path / "results"),
                          data={"root": str(tmp_path / "demo")})
    result = snakemake("-n", "--profile", "profiles/slurm", "--configfile", str(config))
    train_job = result.stdout.split("rule train:", 1)[1].split("\n\n", 1)[0]
    assert "slurm_partition=gpu" in train_job and "gpu=1" in train_job
