"""Production config never loads the simulators, checked at run time (the import rules
themselves are tools/check_architecture.py's, run by make lint and tests/test_architecture.py)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_plant_config_does_not_load_the_simulator() -> None:
    probe = (
        "import json, sys\nimport gateway.plant.config\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('gateway.sim'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
