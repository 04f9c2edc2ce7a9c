import hashlib
import json
from pathlib import Path

import vscn
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from vscn.data.sources import load_sources
from vscn.evaluation import ABLATIONS, BASELINES


validate(config, schema="../schemas/config.schema.yaml", set_default=True)

RUN = config["run"]
RESULTS = Path(config["results_dir"]) / RUN
DATA_ROOT = Path(config["data"]["root"])
LOGS = RESULTS / "logs"
SPLITS = ["train", "val", "test"]
PACKAGE = Path(vscn.__file__).parent  # the code the rules' `vscn` commands run
CONDA_ENV = "../../environment.yml"  # relative to the rules files; the same pins as requirements.lock
DOWNLOADS = DATA_ROOT / "downloads"
METRICS = RESULTS / "metrics"
REPORT_HTML = Path(config["results_dir"]) / "report.html"
REPORT_FIGURES = RESULTS / "report"
STRICT_PASS = ("strict", *ABLATIONS)  # the ablations come out of the strict protocol's pass


def code_hash(*modules):
    """A digest of the package sources a rule runs, as a param, so that editing them re-runs the rule."""
    digest = hashlib.sha256()
    for module in modules:
        sources = sorted(PACKAGE.glob(module))
        if not sources:
            raise WorkflowError(f"code_hash: no package source matches {PACKAGE / module}")
        for source in sources:
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def as_json(section):
    """A config section as compact JSON: the typed values a `vscn` command receives."""
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def settings(section):
    """A config section as a param. A function of the job, not a string, so that Snakemake leaves
    placeholders in its values (such as an encoder's "{data_root}") alone."""
    text = as_json(section)
    return lambda wildcards: text


# The modules that read and write annotations: the demo writes with them, the scene stage reads.
ANNOTATION_CODE = ("data/records.py", "data/vocab.py", "data/vg.py", "data/vg_release.py", "data/annotations.py",
                   "data/jsonstream.py", "data/errors.py", "io.py")
TRAIN_CODE = code_hash("training/*.py", "model/*.py", "data/features.py", "evaluation/*.py")


def training_state():
    """Where an interrupted training run keeps its resumable state, keyed by what shapes the weights."""
    shaping = as_json({key: config[key] for key in ("model", "train", "scenes")}) + TRAIN_CODE
    return RESULTS / "state" / f"train-{hashlib.sha256(shaping.encode()).hexdigest()[:12]}.pt"


def metrics_files(*names):
    """The JSON and CSV metrics files of evaluations ``names``."""
    return [METRICS / f"{name}.{extension}" for name in names for extension in ("json", "csv")]


def all_metrics():
    return metrics_files(*STRICT_PASS, "paper", *BASELINES)


# The Visual Genome sources the paper setting needs (vscn/data/vg_sources.yaml): the split and
# vocabulary lists with known digests are fetched one by one, the rest by group.
VG_SOURCES = [source for source in load_sources() if not source.optional]
REFERENCE_DIGESTS = {source.name: source.sha256 for source in VG_SOURCES if source.sha256}
FETCHED_GROUPS = sorted({source.group for source in VG_SOURCES if not source.sha256})


def vg_fetched():
    """What must exist before the Visual Genome data directory is complete."""
    if not config["data"]["vg"]["download"]:
        return []
    lists = [DATA_ROOT / "caches" / name for name in REFERENCE_DIGESTS]
    return lists + [DOWNLOADS / f"{group}.done" for group in FETCHED_GROUPS]


def data_ready():
    """The scene stage's input: the rendered demo folder, or the verified Visual Genome folder."""
    return DATA_ROOT if config["data"]["source"] == "demo" else DOWNLOADS / "verified.txt"

