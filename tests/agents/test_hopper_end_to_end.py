"""A tiny Hopper-v5 Minari dataset made in the test runs all phases end to end for both agents."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from qipo_agents.common.callbacks import CheckpointCallback, EvalCallback
from qipo_agents.common.evaluation import evaluate
from qipo_agents.errors import SpaceMismatchError

from ..conftest import DATASET_ID
from .conftest import TINY


@pytest.fixture
def trained_on_hopper(agent_class, minari_dataset, tmp_path):
    agent = agent_class("MlpPolicy", DATASET_ID, tensorboard_log=str(tmp_path / "tb"), **TINY)
    agent.set_logger(configure(str(tmp_path / "logs"), ["csv"]))
    evaluation = EvalCallback("Hopper-v5", eval_freq=70, n_eval_episodes=1, log_path=tmp_path / "eval")
    checkpoints = CheckpointCallback(save_freq=50, save_path=tmp_path / "ckpt", keep=2)
    agent.learn(callback=[evaluation, checkpoints], log_interval=35)
    return agent, evaluation, tmp_path


def test_all_phases_run_and_evaluate(trained_on_hopper):
    agent, evaluation, tmp_path = trained_on_hopper
    assert agent.num_timesteps == 140 and agent.current_phase == "policy"
    assert agent.dataset_metadata["env_id"] == "Hopper-v5"
    # SB3's own evaluation helper works on the agent unchanged
    mean_reward, _ = evaluate_policy(agent, gym.make("Hopper-v5"), n_eval_episodes=1)
    assert np.isfinite(mean_reward)
    # periodic evaluation logged the D4RL-normalised score (the dataset carries reference scores)
    assert evaluation.last_result.normalized_mean is not None
    header = (tmp_path / "logs" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "eval/normalized_score" in header and "eval/mean_reward" in header
    assert (tmp_path / "eval" / "evaluations.jsonl").read_text().count("\n") == 2


def test_checkpoints_keep_the_latest_and_load(trained_on_hopper, agent_class):
    agent, _, tmp_path = trained_on_hopper
    files = CheckpointCallback.checkpoints(tmp_path / "ckpt")
    assert [f.name for f in files] == ["qipo_50_steps.zip", "qipo_100_steps.zip"]
    restored = agent_class.load(CheckpointCallback.latest(tmp_path / "ckpt"), device="cpu")
    assert restored.num_timesteps == 100


def test_evaluation_env_with_other_spaces_is_refused(trained_on_hopper):
    agent, _, _ = trained_on_hopper

    with pytest.raises(SpaceMismatchError, match=r"\(17,\)"):
        evaluate(agent, gym.make("HalfCheetah-v5"), n_episodes=1)


def test_parallel_evaluation_runs_the_same_episodes(trained_on_hopper):
    agent, _, _ = trained_on_hopper
    one = evaluate(agent, gym.make("Hopper-v5"), n_episodes=4, deterministic=True, seed=5)
    four = evaluate(agent, gym.make("Hopper-v5"), n_episodes=4, deterministic=True, seed=5, n_envs=4)
    # deterministic actions and seeded resets: episode i is the same episode in both
    np.testing.assert_allclose(four.returns, one.returns, rtol=1e-5)
    assert four.lengths == one.lengths
    with pytest.raises(ValueError, match="spec"):
        evaluate(agent, gym.make("Hopper-v5").unwrapped.__class__(), n_episodes=2, n_envs=2)
