"""FieldNetwork: ``f(x_t, t, condition, guidance)`` shaped like ``x_t``, for both architectures."""

from __future__ import annotations

import pytest
import torch

from qipo_agents.networks.field import FieldNetwork

X_DIM, CONDITION_DIM, BATCH = 3, 5, 8
SMALL = dict(hidden_dims=(32, 16, 8), embed_dim=16)
ARCHITECTURES = ("mlp", "unet")


def make_field(architecture: str, seed: int = 0, **kwargs) -> FieldNetwork:
    torch.manual_seed(seed)
    return FieldNetwork(X_DIM, architecture=architecture, **{"condition_dim": CONDITION_DIM, **SMALL, **kwargs})


def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(BATCH, X_DIM, generator=generator),
        t=torch.rand(BATCH, generator=generator),
        condition=torch.randn(BATCH, CONDITION_DIM, generator=generator),
    )


def assert_changes_every_row(before: torch.Tensor, after: torch.Tensor) -> None:
    assert not torch.isclose(before, after, rtol=0, atol=1e-6).all(dim=-1).any()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("hidden_dims", [(32, 16, 8), (16,), (8, 16)], ids=["narrowing", "one-block", "widening"])
def test_output_has_the_shape_of_x(architecture, hidden_dims):
    field = make_field(architecture, hidden_dims=hidden_dims)
    out = field(**inputs())
    assert out.shape == (BATCH, X_DIM) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_unet_goes_down_and_back_up_the_widths_the_mlp_only_down():
    unet, mlp = make_field("unet"), make_field("mlp")
    assert [block.dense2.out_features for block in unet.down] == [32, 16, 8]
    assert [block.dense2.out_features for block in unet.up] == [16, 32]
    assert (unet.head.in_features, mlp.head.in_features, len(mlp.up)) == (32, 8, 0)


def test_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'transformer'"):
        FieldNetwork(X_DIM, architecture="transformer")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_output_depends_on_x_time_and_condition(architecture):
    field, batch = make_field(architecture), inputs()
    out = field(**batch)
    assert_changes_every_row(out, field(**{**batch, "x": batch["x"] + 0.5}))
    assert_changes_every_row(out, field(**{**batch, "t": 1.0 - batch["t"]}))
    assert_changes_every_row(out, field(**{**batch, "condition": -batch["condition"]}))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_rows_are_independent(architecture):
    field, batch = make_field(architecture), inputs()
    whole = field(**batch)
    one_row = field(**{name: value[2:3] for name, value in batch.items()})
    torch.testing.assert_close(one_row, whole[2:3])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_unconditional_field_takes_no_condition(architecture):
    field, batch = make_field(architecture, condition_dim=0), inputs()
    assert field(batch["x"], batch["t"]).shape == (BATCH, X_DIM)
    assert not hasattr(field, "condition_embedding")


def test_conditional_field_without_its_condition_says_so():
    batch = inputs()
    with pytest.raises(ValueError, match="this network is conditional"):
        make_field("mlp")(batch["x"], batch["t"])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_guidance_conditioned_field_depends_on_its_guidance(architecture):
    field, batch = make_field(architecture, guidance_max=10.0), inputs()
    low, high = torch.full((BATCH,), 1.0), torch.full((BATCH,), 8.0)
    assert_changes_every_row(field(**batch, guidance=low), field(**batch, guidance=high))
    with pytest.raises(ValueError, match="this network is guidance-conditioned"):
        field(**batch)


def test_guidance_is_read_relative_to_guidance_max():
    """The same network with twice the ``guidance_max`` gives at ``2 beta`` what it gave at ``beta``."""
    field, batch = make_field("unet", guidance_max=5.0), inputs()
    doubled = make_field("unet", guidance_max=10.0)
    doubled.load_state_dict(field.state_dict())
    beta = torch.full((BATCH,), 2.0)
    torch.testing.assert_close(doubled(**batch, guidance=2 * beta), field(**batch, guidance=beta))


@pytest.mark.parametrize("guidance_max", [None, 10.0], ids=["plain", "guidance-conditioned"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_gradients_reach_every_parameter(architecture, guidance_max):
    field, batch = make_field(architecture, guidance_max=guidance_max), inputs()
    guidance = None if guidance_max is None else torch.full((BATCH,), 3.0)
    field(**batch, guidance=guidance).square().mean().backward()
    for name, parameter in field.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_fourier_frequencies_are_saved_but_not_trained():
    field = make_field("mlp", guidance_max=10.0)
    buffers = {name for name, _ in field.named_buffers()}
    assert buffers == {"time_embedding.0.frequencies", "guidance_embedding.0.frequencies"}
    assert buffers <= set(field.state_dict()) and not buffers & {name for name, _ in field.named_parameters()}
