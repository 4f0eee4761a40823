"""Phase 4 — one-step distillation (optional, ``distill_steps``): act with one network evaluation.

The refined policy acts by integrating its ODE (or running its diffusion sampler) from a noise
``z ~ N(0, I)``: a deterministic map ``z -> a`` per state, of ``NFE`` network evaluations. This
phase fits a network ``g(s, z)`` to that map by regression on the sampler's own output,
``|| g(s, z) - clip(solve(actor_ema, s, z)) ||^2``, as Flow Q-Learning distils its flow policy
into a one-step policy (Park et al., 2025). Every step draws fresh noise for its minibatch of
dataset states and asks the teacher for its actions (``NFE`` forwards of the teacher, no
backward), so over the phase ``g`` sees the map at many noises per state. Once trained, ``g``
acts in one evaluation and, fed standard normal noise, samples the same action distribution;
zero noise gives the same central action as ``predict(obs, deterministic=True)`` of the
multi-step policy.

The default student (:class:`~qipo_agents.networks.one_step.OneStepField`) is a copy of the
teacher read once at the noise end, copied from ``actor_ema`` when the phase starts. Each step's
pairs are fresh, so its loss before the update is a held-out error: ``distill_relative_error``
logs it as a fraction of the teacher's action variance in the minibatch (0: a perfect copy, 1: no
better than the mean action).

The teacher (``actor_ema``) is not changed, so the multi-step policy stays available
(``one_step_acting=False``).

**Q-guided extraction** (``extraction_alpha`` set; beyond the paper, after Flow Q-Learning and
TD3+BC): the student also climbs the critic,

    ``loss = extraction_alpha * || g(s, z) - teacher(s, z) ||^2 - Q(s, clip(g(s, z))) / mean_batch |Q|``

with ``Q`` the minimum over the critic ensemble. Dividing by the minibatch's mean ``|Q|`` (no
gradient), as TD3+BC does, makes the Q term scale-free, so one ``extraction_alpha`` serves tasks
whose returns differ by orders of magnitude; a large ``extraction_alpha`` gives the plain copy
back. The critic is frozen here (its weights get no gradient): only the student moves. Without
``extraction_alpha`` the phase is the plain copy, and the agent acts as the paper's refined policy.

``extraction_max_q_gain`` guards against a critic that promises too much: the Q term is capped at
``Q(s, teacher(s, z)) + extraction_max_q_gain * mean_batch |Q|``, so no action is pushed further
once its critic value has climbed that far above the teacher's. A critic fitted on dataset
actions only cannot know much about actions far from them; where its landscape rises steeply out
of the data (a few per cent of ``|Q|`` is what the student gains where the critic is right, tens
of per cent where it misleads: ``docs/benchmarks.md``), the cap stops the climb.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qipo_agents.common.precision import training_autocast
from qipo_agents.data.device_buffer import DeviceBuffer
from qipo_agents.qipo.policy import QIPOPolicy
from qipo_agents.qipo.support import SamplerConfig, clip_actions


@dataclass(frozen=True)
class DistillationLoss:
    """``distill_loss``: squared error to the teacher's actions; ``distill_relative_error``: the same
    as a fraction of the teacher's action variance; ``extraction_q_gain``: mean
    ``Q(s, g(s, z)) - Q(s, teacher(s, z))`` over the minibatch in units of its mean ``|Q|`` (how far
    the student has climbed the critic above the policy it copies; about 0 for a plain copy);
    ``extraction_critic_spread``: how much more the ensemble's Q-networks disagree at the student's
    actions than at the teacher's, the ratio of their mean ``max_k Q_k - min_k Q_k`` (1 for a plain
    copy; above 1 where the student leaves the data the critics agree on)."""

    distill_loss: torch.Tensor
    distill_relative_error: torch.Tensor
    extraction_q_gain: torch.Tensor
    extraction_critic_spread: torch.Tensor


class OneStepDistillation:
    """Regression of the one-step policy on the multi-step sampler's actions, optionally Q-guided.

    Args:
        policy: the networks; ``one_step`` is trained, ``actor_ema`` is the teacher.
        data: the dataset on the device (its states are the regression inputs).
        sampler: path and solver the teacher acts with (the agent's own).
        guidance: the guidance scale the teacher acts at (the agent's ``beta``; used only by a
            guidance-conditioned actor).
        batch_size: (state, noise) pairs per step.
        extraction_alpha: weight of the copy term against the normalised Q term (module
            docstring); None: a plain copy, no Q term.
        extraction_max_q_gain: cap on the climb above the teacher's Q, in units of the
            minibatch's mean ``|Q|`` (module docstring); None: no cap.
        action_low: lower action bounds ``(action_dim,)``; teacher actions are clipped as acting clips them.
        action_high: upper action bounds ``(action_dim,)``.
        generator: random source for minibatches and noise.
        precision: ``"fp32"``, or ``"bf16-mixed"`` for bfloat16 matrix products in the student's
            step (:mod:`qipo_agents.common.precision`); the teacher samples in float32.
    """

    name = "distill"

    def __init__(
        self,
        policy: QIPOPolicy,
        data: DeviceBuffer,
        sampler: SamplerConfig,
        guidance: float,
        batch_size: int,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        generator: torch.Generator,
        extraction_alpha: float | None = None,
        extraction_max_q_gain: float | None = None,
        precision: str = "fp32",
    ):
        if policy.one_step is None:
            raise ValueError("the policy has no one-step network: build it with distill_steps > 0")
        self.policy, self.data, self.sampler, self.guidance = policy, data, sampler, guidance
        self.batch_size, self.action_low, self.action_high = batch_size, action_low, action_high
        self.generator, self.precision, self.extraction_alpha = generator, precision, extraction_alpha
        self.extraction_max_q_gain = extraction_max_q_gain
        # the critic's training ended with its phase: gradients reach the student's actions only
        self.policy.critic.requires_grad_(False)

    def start(self) -> None:
        """Start the student from the teacher (the field student; the MLP starts from scratch).
        Every step then asks the teacher for fresh (noise, action) pairs."""
        self.policy.one_step.initialise_from(self.policy.actor_ema)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Nothing beyond the networks and the generator the agent saves: a resumed phase draws the
        pairs the uninterrupted one would have drawn."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""

    def train_step(self) -> DistillationLoss:
        indices = self.data.sample_indices(self.batch_size, self.generator)
        observations = self.data.observations[indices]  # (batch, obs_dim)
        noise = torch.randn(
            len(indices), self.policy.one_step.action_dim, device=observations.device, generator=self.generator
        )
        teacher = self.sampler.sample(self.policy.actor_ema, observations, noise, self.guidance)
        # the sampler runs in inference mode; a clone is a plain tensor autograd may keep for backward
        target = clip_actions(teacher, self.action_low, self.action_high).clone()
        with torch.no_grad():
            teacher_qs = self.policy.critic(observations, target)  # (n_critics, batch)
        teacher_q = teacher_qs.min(dim=0).values
        with training_autocast(self.precision, target.device):
            actions = self.policy.one_step(observations, noise)
            copy_loss = F.mse_loss(actions, target)
            qs = self.policy.critic(observations, clip_actions(actions, self.action_low, self.action_high)).float()
        q = qs.min(dim=0).values  # (batch,), the ensemble's minimum as every use of Q takes it
        q_scale = q.detach().abs().mean().clamp_min(1e-6)
        if self.extraction_alpha is None:
            loss = copy_loss
        else:
            climbed = q
            if self.extraction_max_q_gain is not None:
                climbed = torch.minimum(q, teacher_q + self.extraction_max_q_gain * q_scale)
            loss = self.extraction_alpha * copy_loss - climbed.mean() / q_scale
        self.policy.update_one_step(loss)
        with torch.no_grad():
            relative_error = copy_loss.detach() / target.var(dim=0).mean().clamp_min(1e-12)
            q_gain = (q.detach() - teacher_q).mean() / q_scale
            spread = (qs.max(dim=0).values - q).detach().mean()
            teacher_spread = (teacher_qs.max(dim=0).values - teacher_qs.min(dim=0).values).mean()
        return DistillationLoss(copy_loss.detach(), relative_error, q_gain, spread / teacher_spread.clamp_min(1e-12))
