"""The batched Q ensemble against the layout it replaced: one ``nn.Linear`` MLP per member."""

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


def test_layer_norm_members_match_per_member_linear_layer_norm_relu_and_stay_bounded_far_from_the_data():
    torch.manual_seed(1)
    ensemble = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS, layer_norm=True)
    with torch.no_grad():  # distinct gains and shifts per member, so a shared one would fail
        for norm in ensemble.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    obs, action, _ = batch(0)

    def member_q(index: int, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        h = torch.cat([obs, action], dim=-1)
        for layer, norm in zip(ensemble.layers[:-1], ensemble.norms, strict=True):
            h = F.linear(h, layer.weight[index].T, layer.bias[index, 0])
            h = F.layer_norm(h, (h.shape[-1],), norm.weight[index, 0], norm.bias[index, 0]).relu()
        last = ensemble.layers[-1]
        return F.linear(h, last.weight[index].T, last.bias[index, 0]).squeeze(-1)

    expected = torch.stack([member_q(index, obs, action) for index in range(N_CRITICS)])
    torch.testing.assert_close(ensemble(obs, action), expected, rtol=0, atol=1e-5)
    # the linear layers draw the same weights as without layer norm
    torch.manual_seed(1)
    plain = QEnsemble(OBS_DIM, ACTION_DIM, HIDDEN, N_CRITICS)
    for layer, plain_layer in zip(ensemble.layers, plain.layers, strict=True):
        assert torch.equal(layer.weight, plain_layer.weight)
    # far from the data a plain critic's Q grows with the action's norm. The normalised one cannot:
    # a normalised feature vector has norm sqrt(width); gains <= 1.5 and shifts <= 0.5 in size bound
    # it by 2 sqrt(width), and the ReLU only shrinks it, so |Q| <= ||w_last|| 2 sqrt(width) + |b_last|
    far = action * 1e4
    last = ensemble.layers[-1]
    bound = max(last.weight[i].norm() * 2 * HIDDEN[-1] ** 0.5 + last.bias[i].abs().max() for i in range(N_CRITICS))
    assert ensemble(obs, far).abs().max() <= bound
    assert plain(obs, far).abs().max() > 10 * bound
