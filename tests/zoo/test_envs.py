"""The evaluation env of a task: ``gym.make(env)``, or the dataset's own through Minari."""

from __future__ import annotations

import pytest

from qipo_agents.errors import ConfigError
from qipo_agents.zoo.envs import make_env

from ..conftest import DATASET_ID


def test_env_from_dataset_is_minaris_eval_env(minari_dataset):
    """``env_from_dataset`` builds the env Minari's ``recover_environment(eval_env=True)`` gives,
    with the task's ``env_kwargs`` passed on to ``gym.make``."""
    env = make_env("ignored-when-the-dataset-gives-it", env_kwargs={"max_episode_steps": 17}, dataset_source=DATASET_ID)
    assert env.spec.id == "Hopper-v5"
    assert env.spec.max_episode_steps == 17
    env.reset(seed=0)
    steps = 0
    truncated = terminated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample() * 0.0)
        steps += 1
    assert steps <= 17


def test_unknown_env_id_names_the_env():
    with pytest.raises(ConfigError, match="cannot create the evaluation environment 'NoSuchEnv-v0'"):
        make_env("NoSuchEnv-v0")
