"""bandit over the app finds nothing of high severity. (Its medium B608 findings are SQL built from
constant column lists with every value a $n parameter: see docs/decisions.md.)"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_bandit_reports_no_high_severity_issue():
    bandit = Path(sys.executable).with_name("bandit")
    result = subprocess.run([bandit, "-q", "-r", ROOT / "app", "--severity-level", "high", "-f", "txt"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
