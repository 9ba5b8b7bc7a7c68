"""Benchmark: render + strict Kubernetes schema validation of the whole release, in-process, uncached.

    python -m tests.bench.render_bench [--values-set prod] [--iterations 50]

Prints median and p90 per release, the object count, and ratios to the 10 ms goal and to the anchors
(apache/airflow's helm-tests spend ~290 ms per test calling the helm CLI; helm-unittest ~8 ms per test
without any Kubernetes schema check), plus kubernetes_validate.validate measured in the same run. Never
a timed test: the numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import kubernetes_validate

from loadtest.chart import kube_schema, release
from tests.chart import helpers

GOAL_MS = 10.0
AIRFLOW_HELM_CLI_MS = 290.0
HELM_UNITTEST_MS = 8.0


def timed_ms(action: Callable[[], object], iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values-set", default="prod", choices=sorted(helpers.VALUE_SETS))
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")

    files = helpers.VALUE_SETS[args.values_set]
    values = helpers.values_for(files)
    minors = kube_schema.chart_minors(helpers.CHART_DIR)
    first = timed_ms(lambda: helpers.render_uncached(files=files), 1)[0]  # loads schemas, compiles validators
    objects = [obj for _, obj in helpers.render_uncached(files=files)]
    templates = release.render_templates(values)

    render_and_validate = timed_ms(lambda: helpers.render_uncached(values), args.iterations)
    newest_only = timed_ms(lambda: helpers.render_uncached(values, minors=minors[-1:]), args.iterations)
    render_only = timed_ms(lambda: release.render_templates(values), args.iterations)
    parse_only = timed_ms(lambda: release.parse_documents(templates), args.iterations)
    validate_only = timed_ms(lambda: kube_schema.validate(objects, minors), args.iterations)
    # The library call this replaces: it reloads the schema files for every object (one minor only).
    library = timed_ms(
        lambda: [
            kubernetes_validate.validate(o, minors[-1], strict=True)
            for o in objects
            if o["kind"] != "ServiceMonitor"
        ],
        3,
    )

    rows = [
        (f"render + strict validation, newest minor {minors[-1]}", newest_only),
        (f"render + strict validation, all {len(minors)} minors", render_and_validate),
        ("  of which Helm render (Go, in-process)", render_only),
        ("  of which YAML parse (libyaml)", parse_only),
        (f"  of which validation, {len(minors)} minors {minors[0]}..{minors[-1]}", validate_only),
        (f"kubernetes_validate.validate, 1 minor ({len(objects) - 1} objects)", library),
    ]
    print(
        f"values set {args.values_set!r}: {len(objects)} objects, {args.iterations} iterations; "
        f"first render (schema load + validator compile) {first:.1f} ms"
    )
    print(f"{'measure':<58} {'median ms':>10} {'p90 ms':>9}")
    for name, samples in rows:
        print(f"{name:<58} {statistics.median(samples):>10.2f} {percentile(samples, 0.9):>9.2f}")
    print()
    newest, every = statistics.median(newest_only), statistics.median(render_and_validate)
    print(f"{'ratio of the median render + strict validation':<58} {'newest':>10} {'all minors':>11}")
    for name, anchor in [
        ("to the 10 ms goal (below 1.0 meets it)", GOAL_MS),
        ("to airflow helm-tests, ~290 ms per helm CLI test", AIRFLOW_HELM_CLI_MS),
        ("to helm-unittest, ~8 ms per test, no schema check", HELM_UNITTEST_MS),
        ("to kubernetes_validate.validate of the same objects", statistics.median(library)),
    ]:
        print(f"{name:<58} {newest / anchor:>10.3f} {every / anchor:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
