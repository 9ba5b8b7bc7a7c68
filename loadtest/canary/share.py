"""Which version answered each request, and whether the observed split agrees with the configured weight.

The Wilson score interval is the binomial confidence interval that stays inside [0, 1] and keeps its
coverage at small shares and small samples (a 20 % canary over a few hundred requests), where the
normal-approximation interval does not.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

WEIGHTED, HEADER = "weighted", "header"


def z_for(confidence: float) -> float:
    """The two-sided standard normal quantile for `confidence` (0.95 → 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} must be between 0 and 1")
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes ({successes}) <= trials ({trials})")
    if trials == 0:
        return 0.0, 1.0
    z = z_for(confidence)
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, not float residue
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Answer:
    """One response as the rehearsal saw it."""

    t: float  # seconds since the load started, when the answer came
    route: str  # WEIGHTED (no canary header) or HEADER
    slot: str | None  # from the upstream nginx chose
    version: str | None  # X-Model-Version, None when absent
    ok: bool
    response_time_ms: float
    started: float = 0.0  # seconds since the load started, when the request was sent


@dataclass(frozen=True)
class Share:
    slot: str
    version: str
    requests: int
    total: int
    expected: float
    low: float
    high: float
    confidence: float

    @property
    def observed(self) -> float:
        return self.requests / self.total if self.total else math.nan

    @property
    def agrees(self) -> bool:
        return self.total > 0 and self.low <= self.expected <= self.high


def uncensored(answers: Sequence[Answer], load_seconds: float, margin_s: float = 0.5) -> list[Answer]:
    """The answers to requests sent early enough that every one of them was answered before the load ended.

    Stopping the load abandons the requests in flight, and a slow slot has more of them in flight (the
    inspection paradox): counting only what was answered would under-count it. Which requests are kept
    depends only on when they were sent, never on where they went, so the kept ones split as the router
    splits: requests sent before the end minus the slowest answer seen (plus `margin_s`)."""
    slowest = max((a.response_time_ms for a in answers), default=0.0) / 1000.0
    cutoff = load_seconds - slowest - margin_s
    return [a for a in answers if a.started <= cutoff]


def shares(
    answers: Iterable[Answer],
    expected: Mapping[str, float],
    versions: Mapping[str, str],
    confidence: float,
) -> list[Share]:
    """Per slot: the share of weighted (header-less) requests answered by its model version — as the
    response's X-Model-Version names it, or (an error without the header) as the proxied slot serves —
    with its Wilson interval."""
    weighted = [a for a in answers if a.route == WEIGHTED and (a.version or a.slot)]
    counts = Counter(a.version or versions[a.slot] for a in weighted if a.version or a.slot)
    total = len(weighted)
    return [
        Share(slot, versions[slot], counts[versions[slot]], total, expected[slot],
              *wilson_interval(counts[versions[slot]], total, confidence), confidence)
        for slot in expected
    ]  # fmt: skip


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by the nearest-rank rule; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def timeline(
    answers: Sequence[Answer], slots: Sequence[str], end_s: float, bucket_s: float = 1.0
) -> list[dict[str, float | None]]:
    """Per `bucket_s` of the load (answers after `end_s`, the stragglers, left out): each slot's share of
    weighted requests in that bucket and so far, its error ratio and p99 (ms)."""
    buckets: dict[int, list[Answer]] = defaultdict(list)
    for answer in answers:
        if answer.t < end_s:
            buckets[int(answer.t // bucket_s)].append(answer)
    rows = []
    so_far: Counter[str | None] = Counter()
    for index in range(max(buckets) + 1 if buckets else 0):
        row: dict[str, float | None] = {"t": (index + 1) * bucket_s}
        inside = buckets.get(index, [])
        weighted = [a for a in inside if a.route == WEIGHTED]
        so_far.update(a.slot for a in weighted)
        seen = sum(so_far.values())
        for slot in slots:
            mine = [a for a in inside if a.slot == slot]
            row[f"share_{slot}"] = sum(a.slot == slot for a in weighted) / len(weighted) if weighted else None
            row[f"cumulative_share_{slot}"] = so_far[slot] / seen if seen else None
            row[f"error_ratio_{slot}"] = sum(not a.ok for a in mine) / len(mine) if mine else None
            row[f"p99_ms_{slot}"] = percentile([a.response_time_ms for a in mine], 0.99)
        rows.append(row)
    return rows
