"""docs/tutorial.md runs as written (with a few hundred gradient steps instead of the recipe's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.slow
def test_tutorial_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty_store"))
    code = "\n".join(python_blocks(TUTORIAL.read_text()))
    assert "STEPS = 135_000" in code
    code = code.replace("STEPS = 135_000", "STEPS = 400")
    exec(compile(code, str(TUTORIAL), "exec"), {"__name__": "tutorial"})
    run = tmp_path / "tutorial_run"
    for name in ("hopper_flow.zip", "evaluations.npz", "learning_curve.png", "hopper.gif"):
        assert (run / name).is_file(), name
