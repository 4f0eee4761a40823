"""Phase 2 — the critic (K2): learn ``Q(s, a)`` from the dataset.

Two estimators, both with an ensemble of Q-networks (twin by default), soft target updates and
``y = r + gamma (1 - terminated) V(s')`` (a time-limit truncation bootstraps):

* :class:`InSupportSoftmaxQLearning` (QGPO, the paper's default): ``V(s')`` is a softmax-weighted
  average of ``Q̄(s', a'_j)`` over M support actions ``a'_j ~ mu(.|s')`` drawn once from the
  behaviour model — it never queries actions outside the behaviour policy's support.
* :class:`ExpectileQLearning` (IQL): ``V(s)`` is the ``expectile`` of ``Q̄(s, a)`` over dataset
  actions; cheaper (no sampling), any offline Q is compatible with QIPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qipo_agents.common.polyak import polyak_update
from qipo_agents.common.precision import training_autocast
from qipo_agents.data.device_buffer import TransitionBatch
from qipo_agents.qipo.phase import Phase
from qipo_agents.qipo.policy import QIPOPolicy
from qipo_agents.qipo.support import clip_actions, rewind_on_interrupt, sample_support_actions


@dataclass(frozen=True)
class CriticLoss:
    critic_loss: torch.Tensor
    q_mean: torch.Tensor
    target_mean: torch.Tensor


def fit_q(
    policy: QIPOPolicy,
    batch: TransitionBatch,
    target: torch.Tensor,
    tau: float,
    precision: str,
    extra_loss: torch.Tensor | None = None,
) -> CriticLoss:
    """One step on the mean over the Q-networks of their MSE to ``target (B,)`` (plus ``extra_loss``),
    then the soft target update."""
    with training_autocast(precision, target.device):
        qs = policy.critic(batch.observations, batch.actions)  # (n_critics, B)
        loss = F.mse_loss(qs, target.expand_as(qs))
    total = loss if extra_loss is None else loss + extra_loss
    policy.critic_optimizer.zero_grad(set_to_none=True)
    total.backward()
    policy.critic_optimizer.step()
    polyak_update(policy.critic, policy.critic_target, tau)
    return CriticLoss(loss.detach(), qs.min(dim=0).values.mean().detach(), target.mean())


class InSupportSoftmaxQLearning(Phase):
    """QGPO's in-support softmax Q-learning.

    ``V(s') = sum_j softmax_j(alpha_q Q̄(s', a'_j)) Q̄(s', a'_j)`` with ``a'_j ~ mu(.|s')``, j = 1..M
    (``n_support_actions``; ``alpha_q`` None: ``beta``, as QGPO), drawn once from ``actor_ema``, the
    warmed-up behaviour model, in float32.

    Args:
        *phase: the :class:`~qipo_agents.qipo.phase.Phase` arguments.
        n_support_transitions: transitions whose next state gets support actions, drawn at random;
            the minibatches then come from these only. ``None`` (or at least the dataset's size):
            every transition, and the minibatches come from the whole dataset.
    """

    name = "critic"

    def __init__(self, *phase, n_support_transitions: int | None = None, **phase_keywords):
        super().__init__(*phase, **phase_keywords)
        self.n_support_transitions = n_support_transitions
        self.alpha_q = self.config.beta if self.config.alpha_q is None else self.config.alpha_q
        self.transitions: torch.Tensor | None = None
        self.next_support: torch.Tensor | None = None

    def start(self) -> None:
        """Draw the M support actions of the next states from the behaviour model, once: the
        ``transitions (n,)`` the minibatches will come from get ``next_support (n, M, action_dim)``.
        Nothing changes until the draw is complete: a TrainingSignal between two sampling chunks
        leaves the phase and the generator as they were."""
        n = len(self.data)
        with rewind_on_interrupt(self.generator):
            if self.n_support_transitions is None or self.n_support_transitions >= n:
                transitions = torch.arange(n, device=self.data.device)
            else:
                transitions = torch.randperm(n, device=self.data.device, generator=self.generator)
                transitions = transitions[: self.n_support_transitions]
            next_support = self.sample_next_support(self.data.next_observations[transitions])
        self.transitions, self.next_support = transitions, next_support

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The next states' support actions ``(n, M, action_dim)`` and, when they are a random subset,
        the rows of their ``transitions (n,)``: a resumed critic phase trains on the same ones instead
        of drawing new ones."""
        state = {"next_support": self.next_support}
        if len(self.transitions) < len(self.data):
            state["transitions"] = self.transitions
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.data.device
        self.next_support = state["next_support"].to(device)
        subset = state.get("transitions")  # absent: every transition has support
        self.transitions = torch.arange(len(self.data), device=device) if subset is None else subset.to(device)

    def sample_next_support(self, next_observations: torch.Tensor) -> torch.Tensor:
        """M behaviour actions ``(n, M, action_dim)``, clipped to the bounds, for ``next_observations (n, obs_dim)``."""
        actions = sample_support_actions(
            self.policy.actor_ema,
            self.sampler,
            next_observations,
            self.config.n_support_actions,
            self.generator,
            chunk_size=self.config.sampling_chunk_size,
            guidance=0.0,
            check_interrupt=self.check_interrupt,
        )
        return clip_actions(actions, self.action_low, self.action_high)

    def train_step(self) -> CriticLoss:
        config = self.config
        # when every transition has support these are the rows DeviceBuffer.sample would draw
        rows = torch.randint(
            len(self.transitions), (config.critic_batch_size,), device=self.data.device, generator=self.generator
        )
        batch = self.data.gather(self.transitions[rows])
        with torch.no_grad(), training_autocast(config.precision, batch.rewards.device):
            support = self.next_support[rows]  # (B, M, A)
            b, m, a = support.shape
            next_obs = batch.next_observations.repeat_interleave(m, dim=0)
            q_next = self.policy.critic_target.min_q(next_obs, support.reshape(b * m, a)).view(b, m)
            v_next = (torch.softmax(self.alpha_q * q_next, dim=-1) * q_next).sum(-1)
            target = batch.rewards + config.gamma * batch.not_terminated * v_next
        return fit_q(self.policy, batch, target, config.critic_tau, config.precision)


class ExpectileQLearning(Phase):
    """IQL's critic: ``V`` regresses the ``expectile`` of ``Q̄(s, a)``; ``Q`` regresses ``r + gamma V(s')``.

    The policy must have a ``value`` network (``critic_type="expectile"`` builds it).
    """

    name = "critic"

    def __init__(self, *phase, **phase_keywords):
        super().__init__(*phase, **phase_keywords)
        if self.policy.value is None:
            raise ValueError("the expectile critic needs a value network (use_value_network=True)")

    def train_step(self) -> CriticLoss:
        config = self.config
        batch = self.data.sample(config.critic_batch_size, self.generator)
        with training_autocast(config.precision, batch.rewards.device):
            with torch.no_grad():
                q_target = self.policy.critic_target.min_q(batch.observations, batch.actions)
                target = batch.rewards + config.gamma * batch.not_terminated * self.policy.value(
                    batch.next_observations
                )
            diff = q_target - self.policy.value(batch.observations)
            value_loss = (torch.abs(config.expectile - (diff < 0).float()) * diff**2).mean()
        return fit_q(self.policy, batch, target, config.critic_tau, config.precision, extra_loss=value_loss)
