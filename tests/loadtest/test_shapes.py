"""Load shapes: the right number of users at each second, always an end, parameters from env and options."""

from __future__ import annotations

import os

import pytest

# Importing locust gevent-patches the whole process unless told not to; these tests only need the classes,
# and patching after pytest's plugins imported ssl breaks (RecursionError). Load runs happen in subprocesses.
os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

from loadtest.load.shapes import SHAPES, RampShape, ShapeParameterError, SoakShape, SpikeShape, StepShape


def tick_at(
    shape: StepShape | RampShape | SpikeShape | SoakShape, seconds: float
) -> tuple[int, float] | None:
    shape.get_run_time = lambda: seconds  # type: ignore[method-assign]  # a fixed clock instead of perf_counter
    return shape.tick()


@pytest.mark.parametrize(
    ("shape", "seconds", "users"),
    [
        (StepShape(step_users=2, step_seconds=15, steps=4, duration=70), 0, 2),
        (StepShape(step_users=2, step_seconds=15, steps=4, duration=70), 14.9, 2),
        (StepShape(step_users=2, step_seconds=15, steps=4, duration=70), 15, 4),
        (StepShape(step_users=2, step_seconds=15, steps=4, duration=70), 59.9, 8),
        (StepShape(step_users=2, step_seconds=15, steps=4, duration=70), 65, 8),  # last level holds
        (RampShape(users=10, ramp_seconds=20, duration=30), 0, 1),  # never 0 users while running
        (RampShape(users=10, ramp_seconds=20, duration=30), 10, 5),
        (RampShape(users=10, ramp_seconds=20, duration=30), 25, 10),
        (SpikeShape(base_users=2, spike_users=12, spike_at=20, spike_seconds=10, duration=60), 19.9, 2),
        (SpikeShape(base_users=2, spike_users=12, spike_at=20, spike_seconds=10, duration=60), 20, 12),
        (SpikeShape(base_users=2, spike_users=12, spike_at=20, spike_seconds=10, duration=60), 30, 2),
        (SoakShape(users=4, duration=300), 299, 4),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, int | float) else str(value),
)
def test_users_over_time(shape: StepShape, seconds: float, users: int) -> None:
    expected = (users, shape.spawn_rate)
    assert tick_at(shape, seconds) == expected, f"{type(shape).__name__}.tick() at t={seconds}"


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_ends_at_its_duration(name: str) -> None:
    shape = SHAPES[name]()
    assert tick_at(shape, shape.duration - 0.01) is not None, f"{name}: tick() just before duration"
    assert tick_at(shape, shape.duration) is None, (
        f"{name}: tick() at duration={shape.duration} must end the test"
    )


def test_environment_sets_parameters_and_options_win() -> None:
    environ = {"LOADTEST_STEP_USERS": "3", "LOADTEST_STEP_SECONDS": "5", "LOADTEST_DURATION": "20"}
    shape = StepShape.from_env(environ, duration=12)
    expected = {"step_users": 3, "step_seconds": 5.0, "duration": 12.0}
    actual = {name: getattr(shape, name) for name in expected}
    assert actual == expected, "StepShape parameters from LOADTEST_* with the option overriding duration"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StepShape(users=3), "StepShape has no parameter 'users'"),
        (lambda: StepShape(step_users="two"), "step_users='two' is not an integer"),
        (lambda: StepShape(step_users=2.5), "step_users=2.5 is not an integer"),
        (lambda: SoakShape(duration=0), "duration=0 must be >= 1.0"),
        (lambda: RampShape(duration=float("inf")), "duration=inf must be >= 1.0"),
        (lambda: SpikeShape(spike_at=50, spike_seconds=20, duration=60), "exceeds duration"),
        (lambda: SpikeShape(base_users=5, spike_users=5), "spike_users (5) must exceed base_users (5)"),
        (lambda: StepShape.from_env({"LOADTEST_STEPS": "-1"}), "steps='-1' must be >= 1"),
    ],
)
def test_bad_parameters_are_named(make, message: str) -> None:
    with pytest.raises(ShapeParameterError) as caught:
        make()
    assert message in str(caught.value), "ShapeParameterError message"
