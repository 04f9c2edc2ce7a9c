"""Write requirements.lock and environment.yml from the packages installed in .venv.

Both files carry the same exact pins, so pip users and conda users get the same environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.11"
HEADER = "# Exact pins of every package `make` installs; regenerate with `make lock`.\n"


def frozen_pins() -> list[str]:
    """`pip freeze` without the project itself and without local build tags (torch's `+cpu`)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    pins = [line.split("+", 1)[0] for line in frozen if "==" in line and not line.lower().startswith("vscn==")]
    return sorted(pins, key=str.lower)


def main() -> None:
    pins = frozen_pins()
    (ROOT / "requirements.lock").write_text(HEADER + "\n".join(pins) + "\n")
    environment = [
        HEADER.rstrip(),
        "name: vscn",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={PYTHON_VERSION}",
        "  - pip",
        "  - pip:",
        *[f"      - {pin}" for pin in pins],
        "      - --editable .",
    ]
    (ROOT / "environment.yml").write_text("\n".join(environment) + "\n")


if __name__ == "__main__":
    main()
