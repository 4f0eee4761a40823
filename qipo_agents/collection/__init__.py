"""Offline datasets made by acting in an environment, following D4RL's recipes.

This package generates data; it trains no offline agent. :mod:`~qipo_agents.collection.rollouts`
rolls a trained agent out in a Gymnasium env and writes every transition, episode by episode, to
a new Minari dataset (the recipe of D4RL's ``medium`` and ``expert`` sets; ``qipo-zoo collect``
calls it). :mod:`~qipo_agents.collection.rl_zoo` loads agents as rl-baselines3-zoo publishes them
(with their VecNormalize statistics and env wrappers) so that they act as they were trained, and
:mod:`~qipo_agents.collection.sac_medium` trains Stable-Baselines3's SAC until it reaches a third
of the expert's score, then writes its replay buffer as the ``medium-replay`` set.
"""

from qipo_agents.collection.rl_zoo import ActingPolicy, load_rl_zoo_agent
from qipo_agents.collection.rollouts import Collected, EpisodeWriter, collect, load_policy, new_dataset_target
from qipo_agents.collection.sac_medium import (
    SACRecipe,
    SACRun,
    StoppingRule,
    split_replay_buffer,
    stopped_run,
    train_sac_until_medium,
    write_replay_dataset,
)

__all__ = [
    "ActingPolicy",
    "Collected",
    "EpisodeWriter",
    "SACRecipe",
    "SACRun",
    "StoppingRule",
    "collect",
    "load_policy",
    "load_rl_zoo_agent",
    "new_dataset_target",
    "split_replay_buffer",
    "stopped_run",
    "train_sac_until_medium",
    "write_replay_dataset",
]
