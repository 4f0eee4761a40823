"""The examples run as a new user runs them, with no dataset beyond the package's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_hopper_offline_example_runs_on_the_embedded_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty_store"))
    command = [sys.executable, str(EXAMPLES / "hopper_offline.py"), "--steps", "60", "--save", str(tmp_path / "agent")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "D4RL-normalised score" in done.stdout and (tmp_path / "agent.zip").is_file()
