"""`qipo-zoo collect`: roll out a trained agent into a Minari dataset (D4RL recipe) that trains again."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from qipo_agents.data import make_buffer

from ..zoo.conftest import invoke

# a folder of rl-baselines3-zoo agents (sac-Hopper-v3.zip, ppo-HalfCheetah-v3.zip with its
# ppo-HalfCheetah-v3-vecnormalize.pkl, ...); the tests that roll them out skip without it
AGENTS = Path(os.environ.get("QIPO_RL_ZOO_AGENTS", "rl-zoo-agents-not-set"))
SAC = AGENTS / "sac-Hopper-v3.zip"
TQC = AGENTS / "tqc-Hopper-v3.zip"
PPO_CHEETAH = AGENTS / "ppo-HalfCheetah-v3.zip"


@pytest.mark.skipif(not SAC.is_file(), reason="QIPO_RL_ZOO_AGENTS holds no SAC Hopper agent")
def test_collect_from_an_sb3_sac_agent(minari_root):
    result = invoke("collect", SAC, "--env", "Hopper-v5", "--dataset-id", "local/hopper/sac-tiny-v0", "--steps", "200")
    assert "wrote Minari dataset local/hopper/sac-tiny-v0" in result.output and "200 steps" in result.output
    buffer = make_buffer("local/hopper/sac-tiny-v0", download=False)
    assert len(buffer) == 200 and buffer.observations.shape == (200, 11) and buffer.actions.shape == (200, 3)
    # D4RL recipe: episodes end where the env ends them, the budget truncates the last one
    assert buffer.truncations[-1] and not buffer.terminations[-1]
    inside = buffer.episode_ids[1:] == buffer.episode_ids[:-1]
    np.testing.assert_allclose(buffer.next_observations[:-1][inside], buffer.observations[1:][inside])
    assert (buffer.metadata["ref_min_score"], buffer.metadata["ref_max_score"]) == (-20.272305, 3234.3)
    metadata = json.loads((minari_root / "local/hopper/sac-tiny-v0/data/metadata.json").read_text())
    assert metadata["collection"] == {"model": str(SAC), "seed": 0, "stochastic": True, "steps": 200}
    assert metadata["algorithm_name"] == "stable-baselines3 SAC stochastic rollout"
    # the id is taken now
    result = invoke(
        "collect", SAC, "--env", "Hopper-v5", "--dataset-id", "local/hopper/sac-tiny-v0", "--steps", "5", expect=1
    )
    assert "already exists" in result.output


@pytest.mark.skipif(not TQC.is_file(), reason="QIPO_RL_ZOO_AGENTS holds no TQC Hopper agent")
def test_collect_from_tqc_without_sb3_contrib_says_what_to_install(minari_root, monkeypatch):
    real_import = importlib.import_module

    def without_sb3_contrib(name, *args):
        if name.startswith("sb3_contrib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_sb3_contrib)
    result = invoke(
        "collect", TQC, "--env", "Hopper-v5", "--dataset-id", "local/hopper/tqc-v0", "--steps", "10", expect=1
    )
    assert "TQC agent from sb3_contrib, which is not installed: pip install sb3-contrib" in result.output
    assert "Traceback" not in result.output


def test_collect_from_a_qipo_agent_deterministically(trained_run, minari_root):
    model = trained_run / "hopper-medium-mini.zip"
    reference = ["--ref-min-score", "0", "--ref-max-score", "100"]
    dataset = ["--dataset-id", "qipo/hopper/tiny-v0", "--steps", "60", "--deterministic"]
    result = invoke("collect", model, "--env", "Hopper-v5", *dataset, *reference)
    assert "60 steps" in result.output
    buffer = make_buffer("qipo/hopper/tiny-v0", download=False)
    assert len(buffer) == 60 and (buffer.metadata["ref_min_score"], buffer.metadata["ref_max_score"]) == (0.0, 100.0)


def test_collect_rejects_bad_arguments(tmp_path, minari_root):
    not_an_agent = tmp_path / "agent.zip"
    not_an_agent.write_bytes(b"not a zip")

    def collect(*args, expect=1):
        return invoke("collect", not_an_agent, "--env", "Hopper-v5", *args, expect=expect).output

    assert "not a readable agent zip" in collect("--dataset-id", "a/b-v0", "--steps", "5")
    assert "is not a Minari id" in collect("--dataset-id", "no_version", "--steps", "5")
    assert "give both --ref-min-score and --ref-max-score" in collect(
        "--dataset-id", "a/b-v0", "--ref-min-score", "1", expect=2
    )


@pytest.mark.skipif(not PPO_CHEETAH.is_file(), reason="QIPO_RL_ZOO_AGENTS holds no PPO HalfCheetah agent")
def test_collect_behind_vecnormalize_reaches_the_agents_return(minari_root):
    statistics = AGENTS / "ppo-HalfCheetah-v3-vecnormalize.pkl"
    common = ["--env", "HalfCheetah-v5", "--steps", "3000", "--no-progress"]
    invoke("collect", PPO_CHEETAH, *common, "--vecnormalize", statistics, "--dataset-id", "local/halfcheetah/ppo-v0")
    invoke("collect", PPO_CHEETAH, *common, "--dataset-id", "local/halfcheetah/ppo-raw-v0")
    scaled = make_buffer("local/halfcheetah/ppo-v0", download=False)
    raw = make_buffer("local/halfcheetah/ppo-raw-v0", download=False)
    # three whole 1000-step episodes each; the agent's stochastic return is 2784-5793
    assert scaled.terminations.sum() == 0 and scaled.truncations.sum() == 3
    assert scaled.rewards.sum() / 3 > 4000 and raw.rewards.sum() / 3 < 500


@pytest.mark.skipif(not PPO_CHEETAH.is_file(), reason="QIPO_RL_ZOO_AGENTS holds no PPO HalfCheetah agent")
def test_make_local_datasets_rebuilds_reproducibly(tmp_path, monkeypatch):
    script = Path(__file__).resolve().parents[2] / "scripts" / "make_local_datasets.py"
    spec = importlib.util.spec_from_file_location("make_local_datasets", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_local_datasets", module)
    spec.loader.exec_module(module)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))  # main() points it at --out; restored after the test
    for out in ("a", "b"):
        module.main(
            ["--agents", str(AGENTS), "--out", str(tmp_path / out), "--steps", "1200", "--only", "walker2d-medium"]
        )
    first, second = (
        make_buffer(str(tmp_path / out / "local/walker2d/medium-v0"), download=False) for out in ("a", "b")
    )
    assert len(first) == 1200
    np.testing.assert_array_equal(first.observations, second.observations)
    np.testing.assert_array_equal(first.actions, second.actions)
