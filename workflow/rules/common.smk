import hashlib
import json
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml", set_default=True)

RUN = config["run"]
RESULTS = Path(config["results_dir"]) / RUN
DATA_ROOT = Path(config["data"]["root"])
LOGS = RESULTS / "logs"
SPLITS = ["train", "val", "test"]
PACKAGE = Path(workflow.basedir).parent / "vscn"
CONDA_ENV = "../../environment.yml"  # relative to the rules files; the same pins as requirements.lock


DOWNLOADS = DATA_ROOT / "downloads"
METRICS = RESULTS / "metrics"
REPORT_HTML = Path(config["results_dir"]) / "report.html"
REPORT_FIGURES = RESULTS / "report"
BASELINES = ["cosine_mean", "cosine_sum"]


def code_hash(*modules):
    """A digest of the package sources a rule runs, as a param, so that editing them re-runs the rule."""
    digest = hashlib.sha256()
    for module in modules:
        for source in sorted((PACKAGE / module).parent.glob((PACKAGE / module).name)):
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def settings(section):
    """A config section as compact JSON: the typed values a `vscn` command receives."""
    return json.dumps(section, sort_keys=True, separators=(",", ":"))




def metrics_files(*names):
    """The JSON and CSV metrics files of evaluations ``names``."""
    return [METRICS / f"{name}.{extension}" for name in names for extension in ("json", "csv")]


def all_metrics():
    return metrics_files("strict", "s1_only", "g_only", "paper", *BASELINES)


def vg_sources():
    """The Visual Genome sources the paper setting needs (vscn/data/vg_sources.yaml)."""
    from vscn.data.sources import load_sources

    return [source for source in load_sources() if not source.optional]


REFERENCE_DIGESTS = {source.name: source.sha256 for source in vg_sources() if source.sha256}
FETCHED_GROUPS = sorted({source.group for source in vg_sources() if not source.sha256})


def vg_fetched():
    """What must exist before the Visual Genome data directory is complete."""
    if not config["data"]["vg"]["download"]:
        return []
    lists = [DATA_ROOT / "caches" / name for name in REFERENCE_DIGESTS]
    return lists + [DOWNLOADS / f"{group}.done" for group in FETCHED_GROUPS]


def data_ready():
    """The scene stage's input: the rendered demo folder, or the verified Visual Genome folder."""
    return DATA_ROOT if config["data"]["source"] == "demo" else DOWNLOADS / "verified.txt"

