"""Torch stays optional: `import sweep`, the CLI's spec validation of a neural spec and the
statistical families never import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sweep_and_spec_parsing_do_not_import_torch():
    """In a fresh interpreter, importing sweep, analysis and every family, and validating a vae
    and a wgan spec, leaves torch out of sys.modules."""
    code = (
        "import sys, sweep, sweep.runner, sweep.families, analysis\n"
        "from sweep.spec import parse_spec\n"
        "for name in ('vae', 'wgan'):\n"
        "    parse_spec({'name': 't', 'generations': 2, 'replicates': 2, 'family': {'name': name},\n"
        "                'grid': {'n': [100], 'policy': ['replace']}})\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert out.stdout.strip() == "False"
