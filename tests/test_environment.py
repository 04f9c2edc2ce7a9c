"""The pinned environment: the lock file, environment.yml and pyproject.toml tell the same story."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {name.lower(): version for name, version in pins}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_lock_line_is_an_exact_pin():
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-]+", line), line


def test_environment_yml_has_the_same_pins_as_the_lock_file():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_pins = dict(pin.split("==") for pin in pip_section if "==" in pin)
    assert {name.lower(): version for name, version in conda_pins.items()} == lock_pins()
    assert "python=3.11" in environment["dependencies"]


def test_every_direct_dependency_is_pinned_in_the_lock_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {normalise(name) for name in lock_pins()}
    for requirement in project["dependencies"]:
        name = normalise(re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0])
        assert name in pinned, f"{name} is a dependency but not pinned in requirements.lock"
    assert lock_pins()["torch"] == "2.13.0"
