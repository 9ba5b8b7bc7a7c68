"""Load shapes: how many users run at each second of a test. Every shape ends (tick() returns None).

Parameters are class attributes. Each can be overridden from the environment (`LOADTEST_<PARAMETER>`, e.g.
LOADTEST_STEP_USERS=4) or from the command line (`python -m loadtest run --step-users 4`); the command line
wins. `duration` (seconds) bounds every shape.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import ClassVar

from locust import LoadTestShape

ENV_PREFIX = "LOADTEST_"


class ShapeParameterError(ValueError):
    """A shape parameter is unknown or out of range; the message names it."""


class BoundedShape(LoadTestShape):
    """Users as a function of time, `users_at(t)`, until `duration` seconds have passed."""

    abstract = True
    # name → (type, minimum); subclasses extend it with their own parameters.
    parameters: ClassVar[dict[str, tuple[type, float]]] = {
        "duration": (float, 1.0),
        "spawn_rate": (float, 0.1),
    }
    duration: float = 60.0
    spawn_rate: float = 20.0  # users started per second; high, so the shape, not the spawner, sets the pace

    def __init__(self, **overrides: float) -> None:
        super().__init__()
        for name, raw in overrides.items():
            if name not in self.parameters:
                raise ShapeParameterError(
                    f"{type(self).__name__} has no parameter {name!r}; it takes {sorted(self.parameters)}"
                )
            setattr(self, name, _coerce(name, raw, *self.parameters[name]))
        self.validate()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: float) -> BoundedShape:
        """The shape with `LOADTEST_<PARAMETER>` variables applied, then `overrides` (the command line)."""
        environ = os.environ if environ is None else environ
        from_env = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.parameters
            if environ.get(ENV_PREFIX + name.upper(), "").strip()
        }
        return cls(**{**from_env, **overrides})

    def validate(self) -> None:
        """Cross-parameter checks; subclasses add theirs."""

    def users_at(self, seconds: float) -> int:
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if run_time >= self.duration:
            return None
        return self.users_at(run_time), self.spawn_rate

    def describe(self) -> dict[str, float]:
        """The effective parameters, for the report."""
        return {name: getattr(self, name) for name in self.parameters}


def _coerce(name: str, raw: object, kind: type, minimum: float) -> float:
    try:
        value = kind(raw)
        if kind is int and value != float(raw):
            raise ValueError
    except (TypeError, ValueError):
        raise ShapeParameterError(
            f"shape parameter {name}={raw!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    if not math.isfinite(value) or value < minimum:
        raise ShapeParameterError(f"shape parameter {name}={raw!r} must be >= {minimum}")
    return value


class StepShape(BoundedShape):
    """`step_users` more users every `step_seconds`, `steps` times; the last level holds until `duration`."""

    parameters: ClassVar = {
        **BoundedShape.parameters,
        "step_users": (int, 1),
        "step_seconds": (float, 1.0),
        "steps": (int, 1),
    }
    step_users: int = 2
    step_seconds: float = 15.0
    steps: int = 4
    duration: float = 60.0

    def users_at(self, seconds: float) -> int:
        return self.step_users * min(self.steps, 1 + int(seconds // self.step_seconds))


class RampShape(BoundedShape):
    """From 0 to `users` linearly over `ramp_seconds`, then `users` until `duration`."""

    parameters: ClassVar = {**BoundedShape.parameters, "users": (int, 1), "ramp_seconds": (float, 1.0)}
    users: int = 10
    ramp_seconds: float = 60.0
    duration: float = 90.0

    def users_at(self, seconds: float) -> int:
        return max(1, min(self.users, math.ceil(self.users * seconds / self.ramp_seconds)))


class SpikeShape(BoundedShape):
    """`base_users`, jumping to `spike_users` for `spike_seconds` from `spike_at`, then back to the base."""

    parameters: ClassVar = {
        **BoundedShape.parameters,
        "base_users": (int, 1),
        "spike_users": (int, 1),
        "spike_at": (float, 0.0),
        "spike_seconds": (float, 1.0),
    }
    base_users: int = 2
    spike_users: int = 12
    spike_at: float = 20.0
    spike_seconds: float = 20.0
    duration: float = 60.0

    def validate(self) -> None:
        if self.spike_at + self.spike_seconds > self.duration:
            raise ShapeParameterError(
                f"spike_at ({self.spike_at}) + spike_seconds ({self.spike_seconds}) "
                f"exceeds duration ({self.duration})"
            )
        if self.spike_users <= self.base_users:
            raise ShapeParameterError(
                f"spike_users ({self.spike_users}) must exceed base_users ({self.base_users})"
            )

    def users_at(self, seconds: float) -> int:
        spiking = self.spike_at <= seconds < self.spike_at + self.spike_seconds
        return self.spike_users if spiking else self.base_users


class SoakShape(BoundedShape):
    """A constant `users` for `duration`: finds slow leaks and drift, not scaling limits."""

    parameters: ClassVar = {**BoundedShape.parameters, "users": (int, 1)}
    users: int = 4
    duration: float = 600.0

    def users_at(self, seconds: float) -> int:
        return self.users


SHAPES: dict[str, type[BoundedShape]] = {
    "step": StepShape,
    "ramp": RampShape,
    "spike": SpikeShape,
    "soak": SoakShape,
}


def all_parameters() -> dict[str, type]:
    """Every shape parameter's name and type, over all shapes (the command line's shape options)."""
    return {name: kind for shape in SHAPES.values() for name, (kind, _) in shape.parameters.items()}
