"""`python -m backend` itself: what it says when asked for help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import clean_environment


def test_help_says_where_settings_come_from_and_starts_nothing(tmp_path: Path) -> None:
    # No secrets anywhere: without --help this prints a refusal of its settings and exits 1.
    result = subprocess.run(
        [sys.executable, "-m", "backend", "--help"],
        cwd=tmp_path,
        env=clean_environment({}),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert "usage: python -m backend" in result.stdout
    assert "Settings come from the environment, then from ./.env" in result.stdout
    assert result.stderr == ""
