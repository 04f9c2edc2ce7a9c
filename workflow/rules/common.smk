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


