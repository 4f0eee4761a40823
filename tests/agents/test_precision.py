"""bf16-mixed training: bfloat16 matrix products, float32 outputs, a saved and checked setting.

That it still learns the exact tilted target is tested with the other bandit tests (test_bandit).
"""

import pytest
import torch

from qipo_agents.common.precision import training_autocast
from qipo_agents.networks.critics import QEnsemble, ValueNetwork
from qipo_agents.networks.field import FieldNetwork

from .conftest import TINY


def test_outputs_stay_float32_under_bf16_autocast_and_near_the_float32_values():
    torch.manual_seed(0)
    obs, action, t = torch.randn(512, 11), torch.rand(512, 3) * 2 - 1, torch.rand(512)
    critic, value = QEnsemble(11, 3, (256, 256)), ValueNetwork(11, (256, 256))
    field = FieldNetwork(3, 11, hidden_dims=(256, 256), architecture="mlp")
    with torch.no_grad():
        critic.layers[-1].bias.fill_(300.0)  # Q values where bfloat16's step is 2
        exact = critic(obs, action), value(obs), field(action, t, condition=obs)
        with training_autocast("bf16-mixed", torch.device("cpu")):
            mixed = critic(obs, action), value(obs), field(action, t, condition=obs)
    for name, a, b in zip(("Q", "V", "field"), exact, mixed):
        assert b.dtype == torch.float32, name
        assert not torch.equal(a, b), name  # the hidden layers did run in bfloat16
    # Q keeps float32 resolution around 300: its error comes from the hidden layers only
    assert (mixed[0] - exact[0]).abs().max() < 0.05
    assert torch.unique(mixed[0]).numel() > 100  # rounded to bfloat16 they would take one or two values


def test_precision_is_saved_and_reloaded(agent_class, bandit_data, tmp_path):
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY, precision="bf16-mixed").learn()
    loaded = agent_class.load(agent.save(tmp_path / "agent"), device="cpu")
    assert loaded.precision == "bf16-mixed"


def test_unknown_precision_is_a_clear_error(agent_class, bandit_data):
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; choose one of 'fp32' or 'bf16-mixed'"):
        agent_class("MlpPolicy", bandit_data, **TINY, precision="fp16")
