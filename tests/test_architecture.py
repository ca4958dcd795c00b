"""The package keeps its own architecture: the import contracts in ``.importlinter`` hold.

Stages import only upstream, the data stages never import TensorFlow/Keras, and no
library module imports the command line; function-level imports count too.
"""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    exe = str(exe) if exe.is_file() else shutil.which("lint-imports")
    assert exe, "lint-imports not found: pip install -r requirements-dev.txt (import-linter)"
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
