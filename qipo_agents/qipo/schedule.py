"""How ``learn(total_timesteps)`` splits gradient steps across QIPO's three phases."""

from __future__ import annotations

from dataclasses import asdict, dataclass

BEHAVIOR, CRITIC, POLICY = "behavior", "critic", "policy"
PHASES = (BEHAVIOR, CRITIC, POLICY)


@dataclass(frozen=True)
class PhaseSchedule:
    """Gradient steps of each phase, run in order: behaviour warm-up (K1), critic (K2), refinement (K3).

    Step ``k`` (0-based, counted over all phases) belongs to the behaviour phase while
    ``k < behavior_steps``, to the critic phase for the next ``critic_steps`` steps, and to the
    refinement phase after that — also beyond :attr:`total`, so training longer keeps refining.
    """

    behavior_steps: int
    critic_steps: int
    policy_steps: int

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")

    @property
    def total(self) -> int:
        return self.behavior_steps + self.critic_steps + self.policy_steps

    def phase_at(self, step: int) -> str:
        if step < self.behavior_steps:
            return BEHAVIOR
        if step < self.behavior_steps + self.critic_steps:
            return CRITIC
        return POLICY

    def scaled_to(self, total_steps: int) -> PhaseSchedule:
        """The same proportions over ``total_steps`` steps (rounding down; the rest goes to refinement)."""
        if self.total == 0:
            raise ValueError("cannot scale an empty schedule; set behavior/critic/policy steps")
        behavior = self.behavior_steps * total_steps // self.total
        critic = self.critic_steps * total_steps // self.total
        return PhaseSchedule(behavior, critic, total_steps - behavior - critic)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
