"""Phase 3 — Q-weighted iterative policy optimisation (QIPO, the paper's Algorithm 2, K3).

Every ``renew_interval`` steps the support set is redrawn from the **current** policy: M actions
per state (plus, optionally, the dataset action), scored once by the critic. Between renewals the
policy is fitted with the energy-weighted loss, each support action weighted by
``g_ij = softmax_j(beta Q(s_i, a_ij))`` over its state's group (energy ``E = -Q``). Because the
support comes from the policy being refined, after ``l`` renewals the target is
``mu(a|s) exp((l + 1) beta Q(s, a))`` (paper, eq. 5.4): the guidance scale rises step by step.

With ``min_effective_support`` set, each state's inverse temperature is lowered from ``beta`` until
its weights keep that fraction of the group as effective samples (a chi-square trust region per
renewal, :func:`~qipo_agents.generative.weights.trust_region_beta`): the tilt cannot collapse onto
the one support action a wrong critic over-values, whatever the scale of Q.

A guidance-conditioned actor (``guidance_max`` set) learns a family of policies at once: the
support is drawn at label ``b = 0`` and each pair is weighted by ``softmax(b Q)`` at a random
label ``b``, so label ``b`` targets ``mu(a|s) exp(b Q(s, a)) / Z`` for every ``b`` in
``[0, guidance_max]`` (``docs/method.md``); renewals redraw fresh behaviour samples.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from qipo_agents.common.precision import training_autocast
from qipo_agents.generative.losses import energy_weighted_loss
from qipo_agents.generative.weights import effective_sample_size, energy_weights, trust_region_beta
from qipo_agents.qipo.phase import Phase
from qipo_agents.qipo.support import clip_actions, rewind_on_interrupt, sample_support_actions


@dataclass(frozen=True)
class PolicyLoss:
    policy_loss: torch.Tensor
    weight_max: torch.Tensor
    effective_support: torch.Tensor
    support_q_mean: torch.Tensor
    beta_mean: torch.Tensor


@dataclass
class SupportSet:
    """Support actions of ``n`` states: ``state_indices (n,)`` rows of the dataset,
    ``actions (n, K, action_dim)`` as sampled (the policy trains on them) and the critic values
    of their clipped versions, the actions an environment would execute, ``q_values (n, K)``;
    ``betas (n,)`` is the inverse temperature each state's group is weighted with (``beta``, or less
    under the trust region)."""

    state_indices: torch.Tensor
    actions: torch.Tensor
    q_values: torch.Tensor
    betas: torch.Tensor


class QWeightedRefinement(Phase):
    """The refinement phase: ``actor`` is trained at ``policy_learning_rate`` on
    ``policy_batch_size`` (state, support action) pairs per step; ``actor_ema`` (rate ``policy_tau``)
    acts and draws the support, ``n_support_actions`` actions per state (plus the dataset action with
    ``include_dataset_action``), weighted at ``beta`` (or lower, under ``min_effective_support``).

    A guidance-conditioned actor (``guidance_max`` set; paper, Appendix F.2) draws its support at
    the label ``b = 0``, and each (state, action) pair gets a label ``b ~ U[0, guidance_max]`` and
    the weights ``softmax(b Q)``, so the target at label ``b`` is ``pi(a|s, 0) exp(b Q(s, a))``.
    Label 0 trains on its own samples and stays the behaviour policy, so ``guidance_scale=b`` acts
    with ``mu(a|s) exp(b Q(s, a)) / Z``.

    Args:
        *phase: the :class:`~qipo_agents.qipo.phase.Phase` arguments.
        renew_interval: steps between renewals (``K_renew`` in gradient steps; the agent's
            :attr:`~qipo_agents.qipo.algorithm.QIPO.scheduled_renew_interval`).
        n_support_states: states per renewal, drawn at random; ``None`` (or at least the dataset's
            size) renews every state. Between renewals minibatches come from these states only.
    """

    name = "policy"

    def __init__(self, *phase, renew_interval: int, n_support_states: int | None, **phase_keywords):
        super().__init__(*phase, **phase_keywords)
        self.policy.set_actor_learning_rate(self.config.policy_learning_rate)
        self.renew_interval, self.n_support_states = renew_interval, n_support_states
        self.support: SupportSet | None = None
        self.steps_since_renewal = 0
        self.n_renewals = 0

    def start(self) -> None:
        """Draw the first support set."""
        self.renew()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The support set and the renewal counters: a phase resumed between two renewals trains on
        the same support and renews when the uninterrupted run would have."""
        return {
            **{field.name: getattr(self.support, field.name) for field in fields(SupportSet)},
            "steps_since_renewal": torch.tensor(self.steps_since_renewal),
            "n_renewals": torch.tensor(self.n_renewals),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.data.device
        self.support = SupportSet(**{field.name: state[field.name].to(device) for field in fields(SupportSet)})
        self.steps_since_renewal = int(state["steps_since_renewal"])
        self.n_renewals = int(state["n_renewals"])

    @torch.inference_mode()
    def renew(self) -> None:
        """Redraw the support set from the current (Polyak-averaged) policy and score it.

        Nothing changes until the draw is complete: a TrainingSignal between two sampling chunks
        leaves the previous support, the counters and the generator as they were."""
        config, n = self.config, len(self.data)
        with rewind_on_interrupt(self.generator):
            if self.n_support_states is None or self.n_support_states >= n:
                indices = torch.arange(n, device=self.data.device)
            else:
                indices = torch.randperm(n, device=self.data.device, generator=self.generator)[: self.n_support_states]
            observations = self.data.observations[indices]
            actions = sample_support_actions(
                self.policy.actor_ema,
                self.sampler,
                observations,
                config.n_support_actions,
                self.generator,
                chunk_size=config.sampling_chunk_size,
                # a guidance-conditioned actor tilts its b = 0 (behaviour) samples at every label b
                guidance=config.beta if config.guidance_max is None else 0.0,
                check_interrupt=self.check_interrupt,
            )
        if config.include_dataset_action:
            actions = torch.cat([actions, self.data.actions[indices].unsqueeze(1)], dim=1)
        n_states, k, action_dim = actions.shape
        q_values = torch.empty(n_states, k, device=actions.device)
        states_per_chunk = max(1, config.sampling_chunk_size // k)
        for start in range(0, n_states, states_per_chunk):
            obs = observations[start : start + states_per_chunk]
            acts = clip_actions(actions[start : start + states_per_chunk], self.action_low, self.action_high)
            q = self.policy.critic.min_q(obs.repeat_interleave(k, dim=0), acts.reshape(-1, action_dim))
            q_values[start : start + obs.shape[0]] = q.view(obs.shape[0], k)
        max_beta = config.beta if config.guidance_max is None else config.guidance_max
        if config.min_effective_support is None:
            betas = torch.full((n_states,), max_beta, device=actions.device)
        else:
            betas = trust_region_beta(-q_values, max_beta, config.min_effective_support)
        self.support = SupportSet(indices, actions, q_values, betas)
        self.steps_since_renewal = 0
        self.n_renewals += 1

    def train_step(self) -> PolicyLoss:
        if self.steps_since_renewal >= self.renew_interval:
            self.renew()
        support = self.support
        n_states, k, _ = support.actions.shape
        batch_size, guidance_max = self.config.policy_batch_size, self.config.guidance_max
        rows = torch.randint(n_states, (batch_size,), device=self.data.device, generator=self.generator)
        cols = torch.randint(k, (batch_size,), device=self.data.device, generator=self.generator)
        beta, guidance = support.betas[rows], None
        if guidance_max is not None:
            guidance = guidance_max * torch.rand(batch_size, device=self.data.device, generator=self.generator)
            beta = torch.minimum(support.betas[rows], guidance)
        # energy E = -Q: each pair's weight is normalised over its state's whole group of K actions
        group_weights = energy_weights(-support.q_values[rows], beta.unsqueeze(1))
        weights = group_weights.gather(1, cols.unsqueeze(1)).squeeze(1)
        with training_autocast(self.config.precision, weights.device):
            loss = energy_weighted_loss(
                self.policy.actor,
                self.sampler.path,
                support.actions[rows, cols],
                weights,
                condition=self.data.observations[support.state_indices[rows]],
                guidance=guidance,
                generator=self.generator,
            )
        self.policy.update_actor(loss, self.config.policy_tau)
        self.steps_since_renewal += 1
        return PolicyLoss(
            loss.detach(),
            (group_weights.max(dim=1).values / k).max(),
            effective_sample_size(group_weights, dim=-1).mean(),
            support.q_values[rows].mean(),
            beta.mean(),
        )
