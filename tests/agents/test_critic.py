"""The critics' regression targets, computed by hand: QGPO's in-support softmax value over the
next state's support actions, and the bootstrap masks (a termination ends the return, a
time-limit truncation bootstraps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.data.device_buffer import DeviceBuffer
from qipo_agents.data.scalers import ObservationNormalizer, RewardScaler
from qipo_agents.generative.paths import OptimalTransportPath
from qipo_agents.qipo import critic as critic_module
from qipo_agents.qipo.config import QIPOConfig
from qipo_agents.qipo.critic import ExpectileQLearning, InSupportSoftmaxQLearning
from qipo_agents.qipo.policy import QIPOPolicy
from qipo_agents.qipo.support import SamplerConfig

GAMMA = 0.9


def _data() -> OfflineBuffer:
    """Three transitions of a 1-d task: the first terminates, the second is truncated by a time
    limit, the third continues."""
    return OfflineBuffer(
        observations=np.array([[0.0], [1.0], [2.0]], dtype=np.float32),
        actions=np.array([[0.1], [0.2], [0.3]], dtype=np.float32),
        rewards=np.array([1.0, 2.0, 3.0], dtype=np.float32),
        next_observations=np.array([[1.0], [2.0], [3.0]], dtype=np.float32),
        terminations=np.array([True, False, False]),
        truncations=np.array([False, True, False]),
        episode_ids=np.array([0, 1, 2]),
    )


def _captured_target(monkeypatch, phase) -> tuple[torch.Tensor, torch.Tensor]:
    """``(row indices, targets)`` of one training step's batch (64 draws of the 3 rows), sorted by row."""
    captured = {}

    def capture(policy, batch, target, tau, precision, extra_loss=None):
        captured["indices"], captured["target"] = batch.indices, target
        return None

    monkeypatch.setattr(critic_module, "fit_q", capture)
    phase.train_step()
    order = torch.argsort(captured["indices"])
    return captured["indices"][order], captured["target"][order]


def _setup(use_value_network: bool = False):
    torch.manual_seed(0)
    policy = QIPOPolicy(
        1,
        1,
        hidden_dims=(8,),
        architecture="mlp",
        embed_dim=4,
        critic_hidden_dims=(8,),
        use_value_network=use_value_network,
    )
    data = DeviceBuffer(_data(), ObservationNormalizer.identity(), RewardScaler("none"), torch.device("cpu"))
    return policy, data


def test_in_support_softmax_target_by_hand(monkeypatch):
    policy, data = _setup()
    alpha = 2.0
    phase = InSupportSoftmaxQLearning(
        policy,
        data,
        SamplerConfig(OptimalTransportPath()),
        QIPOConfig(n_support_actions=3, alpha_q=alpha, gamma=GAMMA, critic_tau=0.005, critic_batch_size=64),
        torch.Generator().manual_seed(0),
        torch.tensor([-1.0]),
        torch.tensor([1.0]),
    )
    support = torch.tensor([[[-0.5], [0.0], [0.5]], [[0.2], [0.4], [0.6]], [[-1.0], [1.0], [0.0]]])
    phase.load_state_dict({"next_support": support})
    indices, target = _captured_target(monkeypatch, phase)
    with torch.no_grad():
        for index, value in zip(indices.tolist(), target.tolist()):
            next_obs = data.next_observations[index].expand(3, 1)
            q = policy.critic_target.min_q(next_obs, support[index])  # (3,)
            v_next = float((torch.softmax(alpha * q, dim=0) * q).sum())
            not_terminated = 0.0 if index == 0 else 1.0  # row 0 terminated; row 1 was truncated: bootstraps
            assert value == pytest.approx(float(data.rewards[index]) + GAMMA * not_terminated * v_next, rel=1e-5)
    assert set(indices.tolist()) == {0, 1, 2}


def test_expectile_target_terminates_only_on_termination(monkeypatch):
    policy, data = _setup(use_value_network=True)
    config = QIPOConfig(expectile=0.7, gamma=GAMMA, critic_tau=0.005, critic_batch_size=64)
    bounds = torch.tensor([-1.0]), torch.tensor([1.0])
    phase = ExpectileQLearning(
        policy, data, SamplerConfig(OptimalTransportPath()), config, torch.Generator().manual_seed(0), *bounds
    )
    indices, target = _captured_target(monkeypatch, phase)
    with torch.no_grad():
        v_next = policy.value(data.next_observations)
    expected = {0: 1.0, 1: 2.0 + GAMMA * float(v_next[1]), 2: 3.0 + GAMMA * float(v_next[2])}
    for index, value in zip(indices.tolist(), target.tolist()):
        assert value == pytest.approx(expected[index], rel=1e-5)
