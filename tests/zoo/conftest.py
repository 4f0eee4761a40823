"""Fixtures for the qipo-zoo tests: tiny budgets, the in-process command runner, a tiny task file.

The shared trained run (``trained_run``) lives in the top-level conftest: the collection tests roll it out too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from qipo_agents.zoo.cli import main

from ..conftest import DATASET_ID

# Budgets of a few dozen gradient steps on tiny networks: every phase runs, in seconds.
TINY = [
    "behavior_steps=40",
    "critic_steps=30",
    "policy_steps=30",
    "distill_steps=0",
    "extraction_alpha=null",  # the CPU recipe's extraction shapes a one-step policy, which these runs skip
    "extraction_trust_limit=null",
    "extraction_trust_concentration=null",
    "behavior_batch_size=64",
    "critic_batch_size=64",
    "policy_batch_size=64",
    "n_support_actions=4",
    "renew_interval=20",
    "n_support_states=256",
    "n_sampling_steps=2",
    "policy_kwargs={hidden_dims: [32, 32], architecture: mlp, embed_dim: 16, critic_hidden_dims: [32, 32]}",
    "eval_freq=50",
    "n_eval_episodes=1",
    "n_final_eval_episodes=1",
    "checkpoint_freq=40",
    "log_interval=50",
]
TINY_STEPS = 100


def invoke(*args: str, expect: int | None = 0):
    """Run ``qipo-zoo ARGS`` in-process; check the exit code unless ``expect`` is None."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def train_args(task: str, log_folder: Path, *extra: str) -> list[str]:
    return ["train", task, "--device", "cpu", "--log-folder", str(log_folder), *extra, "--hyperparams", *TINY]


@pytest.fixture
def tiny_task_file(tmp_path: Path, minari_dataset) -> Path:
    """A zoo YAML with one task on the tiny random Hopper dataset of the test's Minari store."""
    path = tmp_path / "tiny.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "default": {"hyperparams": {"reward_scaling": "locomotion"}},
                "tiny-hopper": {
                    "description": "random Hopper-v5 episodes made by the test",
                    "datasets": [DATASET_ID],
                    "env": "Hopper-v5",
                    "reference_scores": [-20.272305, 3234.3],
                },
            }
        )
    )
    return path


def bar_container(axes):
    """The bars of a plot's ``axes`` (one ``bar`` call), each with its error bar in ``.errorbar``."""
    from matplotlib.container import BarContainer

    (bars,) = [container for container in axes.containers if isinstance(container, BarContainer)]
    return bars


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """The matplotlib figures the test writes to files, in order, to read what they show."""
    from matplotlib.figure import Figure

    figures = []
    savefig = Figure.savefig

    def recording_savefig(figure, *args, **kwargs):
        figures.append(figure)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    return figures
