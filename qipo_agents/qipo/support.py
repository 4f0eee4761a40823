"""Support actions: M actions per state sampled from a (behaviour or current) policy.

Sampling is batched in chunks of states so memory stays bounded for 10^6 states; each chunk is
one call of the path's sampler on ``chunk * M`` (state, noise) pairs. A draw can take minutes on a
CPU, so a Ctrl-C or SIGTERM is honoured between two chunks: the draw stops part-way and
:func:`rewind_on_interrupt` puts the random generator back where the draw found it, so the step that
drew is redone whole, with the same noise, when training resumes.

Samples are returned as the model draws them, not clipped to the action bounds: the refinement
trains the policy on its own support, and clipped samples would move the mass the model puts past
a bound onto the bound itself, a little more at every renewal. Whoever scores or executes an
action clips it first (:func:`clip_actions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from qipo_agents.common.interrupts import TrainingSignal
from qipo_agents.generative.paths import ProbabilityPath
from qipo_agents.networks.field import FieldNetwork


@dataclass
class SamplerConfig:
    """How actions are drawn from a field network: the path, its solver and step count."""

    path: ProbabilityPath
    n_steps: int | None = None
    solver: str | None = None

    @torch.inference_mode()
    def sample(
        self,
        network: FieldNetwork,
        observations: torch.Tensor,
        noise: torch.Tensor,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Actions ``(B, action_dim)`` for ``observations (B, obs_dim)`` from ``noise (B, action_dim)``."""
        guidance_input = None
        if network.guidance_max is not None:
            guidance_input = torch.full((observations.shape[0],), float(guidance), device=observations.device)

        def field(x, t):
            return network(x, t, condition=observations, guidance=guidance_input)

        return self.path.sample(field, noise, n_steps=self.n_steps, solver=self.solver)


@torch.inference_mode()
def sample_support_actions(
    network: FieldNetwork,
    sampler: SamplerConfig,
    observations: torch.Tensor,
    n_actions: int,
    generator: torch.Generator,
    chunk_size: int = 16_384,
    guidance: float | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> torch.Tensor:
    """``n_actions`` actions per state, as sampled (unclipped).

    Args:
        network: the policy's field network (conditioned on observations).
        observations: normalised states ``(N, obs_dim)``.
        n_actions: ``M``, actions per state.
        chunk_size: (state, action) pairs per sampler call.
        guidance: guidance scale for a guidance-conditioned network.
        check_interrupt: called before each chunk; it raises
            :class:`~qipo_agents.common.interrupts.TrainingSignal` to stop the draw there (the
            caller rewinds ``generator``, :func:`rewind_on_interrupt`).

    Returns:
        ``(N, M, action_dim)`` actions.
    """
    n_states, action_dim = observations.shape[0], network.x_dim
    out = torch.empty(n_states, n_actions, action_dim, device=observations.device)
    states_per_chunk = max(1, chunk_size // n_actions)
    for start in range(0, n_states, states_per_chunk):
        if check_interrupt is not None:
            check_interrupt()
        obs = observations[start : start + states_per_chunk]
        repeated = obs.repeat_interleave(n_actions, dim=0)
        noise = torch.randn(repeated.shape[0], action_dim, device=obs.device, generator=generator)
        actions = sampler.sample(network, repeated, noise, guidance=guidance)
        out[start : start + obs.shape[0]] = actions.view(obs.shape[0], n_actions, action_dim)
    return out


@contextmanager
def rewind_on_interrupt(generator: torch.Generator) -> Iterator[None]:
    """Put ``generator`` back in the state it had on entering the block when a
    :class:`~qipo_agents.common.interrupts.TrainingSignal` leaves it: a draw stopped between two
    chunks then leaves no trace, and the draw redone on resume uses the noise the uninterrupted run
    used. The block must change nothing else before its last chunk (assign its results after it)."""
    state = generator.get_state()
    try:
        yield
    except TrainingSignal:
        generator.set_state(state)
        raise


def clip_actions(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``actions (..., action_dim)`` clipped to the bounds ``low, high (action_dim,)``."""
    return torch.maximum(torch.minimum(actions, high), low)
