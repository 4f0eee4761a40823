"""`qipo-zoo collect` on agents as rl-baselines3-zoo publishes them: VecNormalize statistics, env
wrappers from config.yml, pickles of the old gym package; raw observations recorded."""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from qipo_agents.data import make_buffer

from ..zoo.conftest import invoke

sb3_contrib = pytest.importorskip("sb3_contrib")
from sb3_contrib.common.wrappers import TimeFeatureWrapper  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize  # noqa: E402

ENV_ID = "Pendulum-v1"  # 3 observations; TimeFeatureWrapper adds a fourth
MEAN, VAR = np.array([0.5, -0.2, 1.0, 0.3]), np.array([0.04, 0.25, 4.0, 0.09])


def _gym_era_pickle(obj, monkeypatch) -> bytes:
    """Pickle ``obj`` with its observation space's class named as the old ``gym`` package names it."""
    names = ("gym", "gym.spaces", "gym.spaces.box")
    modules = {name: types.ModuleType(name) for name in names}
    box = type("Box", (gym.spaces.Box,), {"__module__": "gym.spaces.box"})
    modules["gym.spaces.box"].Box = box
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    space = obj.observation_space
    obj.observation_space = box(space.low, space.high, dtype=space.dtype)
    data = pickle.dumps(obj)
    for name in names:
        monkeypatch.delitem(sys.modules, name)
    return data


@pytest.fixture
def rl_zoo_agent(tmp_path, monkeypatch) -> Path:
    """An untrained PPO saved in rl-trained-agents' layout: ppo/Pendulum-v1_1/Pendulum-v1.zip and
    Pendulum-v1/{vecnormalize.pkl, config.yml}, trained behind TimeFeatureWrapper and VecNormalize."""
    venv = VecNormalize(DummyVecEnv([lambda: TimeFeatureWrapper(gym.make(ENV_ID))]), norm_reward=False)
    venv.obs_rms.mean, venv.obs_rms.var = MEAN.copy(), VAR.copy()
    model = PPO("MlpPolicy", venv, n_steps=64, seed=0, device="cpu")
    folder = tmp_path / "ppo" / f"{ENV_ID}_1"
    (folder / ENV_ID).mkdir(parents=True)
    model.save(folder / f"{ENV_ID}.zip")
    (folder / ENV_ID / "vecnormalize.pkl").write_bytes(_gym_era_pickle(venv, monkeypatch))
    config = OrderedDict([("env_wrapper", "sb3_contrib.common.wrappers.TimeFeatureWrapper"), ("normalize", True)])
    (folder / ENV_ID / "config.yml").write_text(yaml.dump(config))  # rl-zoo's format: an OrderedDict dump
    return folder / f"{ENV_ID}.zip"


def test_rl_zoo_agent_acts_behind_its_statistics_and_wrapper_while_raw_observations_are_recorded(
    rl_zoo_agent, minari_root
):
    args = ["--env", ENV_ID, "--dataset-id", "zoo/pendulum/ppo-v0", "--steps", "250", "--deterministic"]
    result = invoke("collect", rl_zoo_agent, *args, "--no-progress")
    assert "250 steps" in result.output
    buffer = make_buffer("zoo/pendulum/ppo-v0", download=False)
    assert buffer.observations.shape == (250, 3)  # the env's own observations, no time feature
    # the agent acted on clip((TimeFeature(obs) - mean) / sqrt(var + eps)): replay it on the recorded data
    model = PPO.load(rl_zoo_agent, device="cpu")
    step_in_episode = np.arange(250) % 200  # Pendulum's time limit
    time_feature = 1.0 - step_in_episode / 200
    seen = np.concatenate([buffer.observations, time_feature[:, None]], axis=1)
    scaled = np.clip((seen - MEAN) / np.sqrt(VAR + 1e-8), -10.0, 10.0).astype(np.float32)
    expected, _ = model.predict(scaled, deterministic=True)
    expected = np.clip(expected, -2.0, 2.0)
    np.testing.assert_allclose(buffer.actions, expected, atol=1e-5)
    assert buffer.truncations[199] and buffer.truncations[-1]


def test_rl_zoo_agent_without_its_wrapper_or_with_foreign_statistics_is_a_clear_error(
    rl_zoo_agent, tmp_path, minari_root
):
    lone = tmp_path / "lone.zip"
    lone.write_bytes(rl_zoo_agent.read_bytes())  # no rl-zoo folder beside it
    args = ["--env", ENV_ID, "--steps", "5", "--algo", "ppo"]
    output = invoke("collect", lone, *args, "--dataset-id", "zoo/a-v0", expect=1).output
    assert "expects observations of shape (4,)" in output and "TimeFeatureWrapper" in output
    assert "Traceback" not in output
    foreign = tmp_path / "foreign.pkl"
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("MountainCarContinuous-v0")]))
    foreign.write_bytes(pickle.dumps(venv))
    config = rl_zoo_agent.parent / ENV_ID / "config.yml"
    output = invoke(
        "collect",
        lone,
        *args,
        "--agent-config",
        config,
        "--vecnormalize",
        foreign,
        "--dataset-id",
        "zoo/b-v0",
        expect=1,
    ).output
    assert "are for observations of shape (2,)" in output and "the policy receives (4,)" in output
    assert not (minari_root / "zoo").exists()  # a failed collection writes nothing
