"""The service's own Prometheus series, scraped from a running `model-api serve`, and the metric names a
PromQL query or a Prometheus Adapter rule uses: so every query the chart ships is checked against what
the service really exports, not against a restated list."""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.chart import helpers
from tests.service.server_process import ServerProcess

# Functions are recognised by the "(" that follows them; these are the other words PromQL reserves.
PROMQL_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"})
PROMQL_KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}
ADAPTER_RULES_MARKER = "<!-- prometheus-adapter-rules -->"


@functools.cache
def scraped_series() -> frozenset[str]:
    """Every sample name on /metrics after one request of each kind (a labelled child only appears once
    it has been used)."""
    log = Path(tempfile.mkdtemp(prefix="model-api-metrics-")) / "server.log"
    with ServerProcess({"MODEL_API_LOG_LEVEL": "warning", "MODEL_API_API_KEY": ""}, log) as server:
        server.wait_until("/readyz", 200)
        server.get("/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2")
        server.get("/no-such-route")
        _, text = server.get("/metrics")
    return frozenset(
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    )


def promql_metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, strings, ranges, grouping labels and
    function names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        if match.group(2) is None and match.group(1).lower() not in PROMQL_KEYWORDS:
            names.add(match.group(1))
    return names


def adapter_rules() -> list[dict]:
    """The Prometheus Adapter rules the chart README documents (the YAML block after the marker)."""
    readme = (helpers.CHART_DIR / "README.md").read_text()
    _, found, after = readme.partition(ADAPTER_RULES_MARKER)
    if not found:
        raise LookupError(f"{helpers.CHART_DIR / 'README.md'}: no {ADAPTER_RULES_MARKER} block")
    block = re.search(r"```yaml\n(.*?)```", after, re.S)
    if block is None:
        raise LookupError("README.md: no ```yaml block after the adapter rules marker")
    return yaml.safe_load(block.group(1))["rules"]["custom"]


def adapter_metric_names(series: frozenset[str]) -> dict[str, str]:
    """Custom metric name → the series it is computed from, as the documented adapter rules expose them."""
    exposed = {}
    for rule in adapter_rules():
        source = promql_metric_names(rule["seriesQuery"])
        pattern = re.compile(rule["name"]["matches"])
        replacement = re.sub(r"\$\{(\d+)\}", r"\\\1", rule["name"]["as"] or r"\g<0>")
        for name in sorted(source & series):
            if pattern.search(name):
                exposed[pattern.sub(replacement, name)] = name
    return exposed
