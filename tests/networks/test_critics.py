"""The batched Q ensemble against the layout it replaced: one ``nn.Linear`` MLP per member."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qipo_agents.networks.critics import QEnsemble

OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS = 5, 2, (16, 8), 3


def reference_members(seed: int) -> list[nn.Sequential]:
    """The per-member layout, built from plain ``nn.Linear`` layers: member 1, then member 2..."""
    torch.manual_seed(seed)
    members = []
    for _ in range(N_CRITICS):
        widths = [OBS_DIM + ACTION_DIM, *HIDDEN, 1]
        layers: list[nn.Module] = []
        for in_width, out_width in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(in_width, out_width), nn.ReLU()]
        members.append(nn.Sequential(*layers[:-1]))
    return members


def reference_q(members: list[nn.Sequential], obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    x = torch.cat([obs, action], dim=-1)
    return torch.stack([member(x).squeeze(-1) for member in members])


def member_layout_state_dict(members: list[nn.Sequential]) -> dict[str, torch.Tensor]:
    return {
        f"q{index}.{key}": value
        for index, member in enumerate(members, 1)
        for key, value in member.state_dict().items()
    }


def batch(seed: int, n: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS_DIM, generator=generator)
    action = torch.rand(n, ACTION_DIM, generator=generator) * 2 - 1
    return obs, action, torch.randn(n, generator=generator)


def test_members_start_from_the_per_member_layouts_weights():
    members = reference_members(seed=3)
    torch.manual_seed(3)
    ensemble = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS)
    for index, member in enumerate(members):
        linears = [module for module in member if isinstance(module, nn.Linear)]
        for layer, linear in zip(ensemble.layers, linears, strict=True):
            assert torch.equal(layer.weight[index], linear.weight.T)
            assert torch.equal(layer.bias[index, 0], linear.bias)


def test_outputs_losses_and_adam_steps_match_the_per_member_layout():
    members = reference_members(seed=0)
    torch.manual_seed(0)
    ensemble = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS)
    reference_params = [p for member in members for p in member.parameters()]
    optimizers = (
        torch.optim.Adam(ensemble.parameters(), lr=1e-2, fused=True),
        torch.optim.Adam(reference_params, lr=1e-2, fused=True),
    )
    for step in range(5):
        obs, action, target = batch(step)
        qs = ensemble(obs, action), reference_q(members, obs, action)
        assert qs[0].shape == (N_CRITICS, len(obs))
        torch.testing.assert_close(qs[0], qs[1], rtol=0, atol=1e-5)
        torch.testing.assert_close(ensemble.min_q(obs, action), qs[1].min(dim=0).values, rtol=0, atol=1e-5)
        losses = [F.mse_loss(q, target.expand_as(q)) for q in qs]
        torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-5)
        for optimizer, loss in zip(optimizers, losses):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    for index, member in enumerate(members):
        linears = [module for module in member if isinstance(module, nn.Linear)]
        for layer, linear in zip(ensemble.layers, linears, strict=True):
            torch.testing.assert_close(layer.weight[index], linear.weight.T, rtol=0, atol=1e-5)
            torch.testing.assert_close(layer.bias[index, 0], linear.bias, rtol=0, atol=1e-5)


def test_a_per_member_state_dict_loads_and_gives_the_same_q_values():
    members = reference_members(seed=1)
    ensemble = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS)
    ensemble.load_state_dict(member_layout_state_dict(members))
    obs, action, _ = batch(7)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(obs, action), reference_q(members, obs, action), rtol=0, atol=1e-5)
    assert set(ensemble.state_dict()) == {f"layers.{layer}.{name}" for layer in range(3) for name in ("weight", "bias")}


def test_a_per_member_state_dict_with_other_members_is_refused():
    state = member_layout_state_dict(reference_members(seed=1))
    one_more_member = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS + 1)
    with pytest.raises(RuntimeError, match="q1.0.weight"):
        one_more_member.load_state_dict(state)


def test_a_per_member_optimiser_state_is_stacked_like_the_weights():
    members = reference_members(seed=2)
    value = nn.Linear(OBS_DIM, 1)
    optimizer = torch.optim.Adam([*(p for member in members for p in member.parameters()), *value.parameters()])
    obs, action, target = batch(0)
    (F.mse_loss(reference_q(members, obs, action), target.expand(N_CRITICS, -1)) + value(obs).pow(2).mean()).backward()
    optimizer.step()
    ensemble = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS)
    ensemble.load_state_dict(member_layout_state_dict(members))
    stacked_optimizer = torch.optim.Adam([*ensemble.parameters(), *value.parameters()])
    stacked_optimizer.load_state_dict(ensemble.stack_member_optimizer_state(optimizer.state_dict()))
    for layer_index, layer in enumerate(ensemble.layers):
        for index, member in enumerate(members):
            linear = member[2 * layer_index]
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(
                    stacked_optimizer.state[layer.weight][key][index], optimizer.state[linear.weight][key].T
                )
                assert torch.equal(
                    stacked_optimizer.state[layer.bias][key][index, 0], optimizer.state[linear.bias][key]
                )
    for p in value.parameters():
        assert torch.equal(stacked_optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg"])
