"""How ``learn(total_timesteps)`` splits gradient steps across QIPO's phases."""

from __future__ import annotations

from dataclasses import asdict, dataclass

BEHAVIOR, CRITIC, POLICY, DISTILL = "behavior", "critic", "policy", "distill"
PHASES = (BEHAVIOR, CRITIC, POLICY, DISTILL)


@dataclass(frozen=True)
class PhaseSchedule:
    """Gradient steps of each phase, run in order: behaviour warm-up (K1), critic (K2), refinement
    (K3) and, optionally, the one-step distillation.

    Step ``k`` (0-based, counted over all phases) belongs to the behaviour phase while
    ``k < behavior_steps``, to the critic phase for the next ``critic_steps`` steps, to the
    refinement phase for the next ``policy_steps`` and to the distillation after that. Steps
    beyond :attr:`total` continue the last phase: training longer keeps refining, or, with
    ``distill_steps > 0``, keeps distilling.
    """

    behavior_steps: int
    critic_steps: int
    policy_steps: int
    distill_steps: int = 0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")

    @property
    def total(self) -> int:
        return self.behavior_steps + self.critic_steps + self.policy_steps + self.distill_steps

    @property
    def refinement_start(self) -> int:
        """The step at which the critic phase ends and the refinement begins."""
        return self.behavior_steps + self.critic_steps

    def phase_at(self, step: int) -> str:
        if step < self.behavior_steps:
            return BEHAVIOR
        if step < self.refinement_start:
            return CRITIC
        if self.distill_steps == 0 or step < self.refinement_start + self.policy_steps:
            return POLICY
        return DISTILL

    def scaled_to(self, total_steps: int) -> PhaseSchedule:
        """The same proportions over ``total_steps`` steps (rounding down; the rest goes to refinement)."""
        if self.total == 0:
            raise ValueError("cannot scale an empty schedule; set behavior/critic/policy steps")
        behavior = self.behavior_steps * total_steps // self.total
        critic = self.critic_steps * total_steps // self.total
        distill = self.distill_steps * total_steps // self.total
        return PhaseSchedule(behavior, critic, total_steps - behavior - critic - distill, distill)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
