"""DAgger (Ross et al. 2011): the learner is a behaviour-cloning policy; what differs is the
data, gathered round by round by the mixture policy and labelled by the expert (see
``contrl.loops.dagger``)."""
from __future__ import annotations

import dataclasses

from contrl.agents.bc import BCConfig
from contrl.config import ConfigError


@dataclasses.dataclass
class DAggerConfig(BCConfig):
    """DAgger hyperparameters (the learner's are BC's). Steps count expert labels."""

    STEPS_ENVS = True  # its rollouts run --num-envs envs

    LOOP_FIELDS = BCConfig.LOOP_FIELDS + ("expert", "steps_per_round", "updates_per_round",
                                          "beta_schedule", "beta_decay")
    PATH_FIELDS = BCConfig.PATH_FIELDS + ("expert",)

    expert: str = ""
    """Run directory of the expert: any saved contrl policy (its best checkpoint)."""
    steps_per_round: int = 1000
    """Env steps per round; every visited state is labelled with the expert's action."""
    updates_per_round: int = 2000
    """Gradient steps on the aggregated data after each round (the learner is warm-started)."""
    beta_schedule: str = "exponential"
    """Probability of executing the expert's action in round i: exponential
    (beta_decay ** i) or linear (max(0, 1 - beta_decay * i)). Round 0 is pure expert."""
    beta_decay: float = 0.5
    """Decay rate of the schedule (see beta_schedule)."""

    def validate(self) -> None:
        super().validate()
        self._positive("steps_per_round", "updates_per_round")
        if self.beta_schedule not in ("exponential", "linear"):
            raise ConfigError(f"beta_schedule must be exponential or linear, got "
                              f"'{self.beta_schedule}'")
        self._in_range("beta_decay", 0.0, 1.0)

    def check_run(self, run) -> None:
        if not self.expert:
            raise ConfigError("dagger needs --expert runs/<run> (a trained contrl policy)")


def beta(schedule: str, decay: float, round_index: int) -> float:
    """The expert's share of actions in round ``round_index``."""
    if schedule == "linear":
        return max(0.0, 1.0 - decay * round_index)
    return decay**round_index

