"""The `rnnkit` command as a whole: what building its parser costs every verb."""

from __future__ import annotations

import json
import subprocess
import sys

# Each takes 0.2-0.6 s to import; a verb that needs one imports it where it is used, so that
# `rnnkit --help` and every other command start without them.
HEAVY_MODULES = ("matplotlib", "matplotlib.pyplot", "scipy", "scipy.stats", "statsmodels")


def test_building_the_parser_imports_no_plotting_or_statistics_library() -> None:
    code = (
        "import json, sys\n"
        "from rnnkit.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []
