"""The rendered AnalysisTemplate judged as Argo Rollouts judges it.

- Placeholders `{{args.NAME}}` are substituted when the run starts (template defaults, a rendered Rollout's
  analysis args, then the rehearsal's own); an unresolved one is an error, never an empty string.
- A Prometheus measurement: a vector result is the list of its sample values (so `result[0]` on an empty
  vector is an evaluation error), a scalar is one number; NaN stays NaN (every comparison with it is false).
- One measurement's phase (Argo's `EvaluateResult`): with only a successCondition, not-success is Failed;
  with only a failureCondition, not-failure is Successful; with both, neither true is Inconclusive; failure
  wins when both hold; with none, Successful; a condition that cannot be evaluated is Error.
- A metric's phase (Argo's `assessMetricStatus`): Failed once failed measurements exceed `failureLimit`
  (default 0), Inconclusive once inconclusive ones exceed `inconclusiveLimit` (default 0), Error once
  consecutive errors exceed `consecutiveErrorLimit` (default 4), else Successful after `count` measurements.
- The run: any Failed or Error metric aborts the rollout, any Inconclusive one pauses it, else it promotes.
  So "no data" is only as safe as the template makes it: an empty vector under `result[0] < 0.05` is an
  Error that a default `consecutiveErrorLimit` tolerates — the rehearsal reports it per measurement.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR = "Successful", "Failed", "Inconclusive", "Error"
PROMOTE, ABORT, PAUSE = "promote", "abort", "inconclusive"
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class AnalysisError(ValueError):
    """The template cannot be run as written; the message names the metric or argument."""


class ConditionError(ValueError):
    """A condition could not be evaluated against a result (Argo: the measurement is an Error)."""


@dataclass(frozen=True)
class Metric:
    name: str
    query: str
    success_condition: str
    failure_condition: str
    count: int | None
    interval_s: float | None
    initial_delay_s: float
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int

    def effective_count(self) -> int | None:
        """Argo: `count` when given; one measurement without an interval; unbounded otherwise."""
        if self.count is not None:
            return self.count
        return 1 if self.interval_s is None else None


@dataclass(frozen=True)
class Measurement:
    at: float  # seconds since the load started
    value: Any  # the result the conditions saw: list of floats, a float, or None on a query error
    phase: str
    message: str = ""


def seconds(duration: str | int | float | None) -> float | None:
    """Argo's duration strings (`30s`, `1m`, `1h30m`, or a bare number of seconds) in seconds."""
    if duration is None or duration == "":
        return None
    if isinstance(duration, int | float):
        return float(duration)
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise AnalysisError(f"duration {duration!r} is not like 30s, 1m or 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def substitute(text: str, args: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in args:
            raise AnalysisError(f"{where}: {{{{args.{name}}}}} has no value; pass --arg {name}=VALUE")
        return args[name]

    return _PLACEHOLDER.sub(replace, text)


def merge_templates(templates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several templates as one, as the controller merges them into one AnalysisRun: metrics and args
    combined; two metrics with one name, or one arg given two values, are refused (Argo refuses them too)."""
    if not templates:
        raise AnalysisError("no AnalysisTemplate rendered: set rollout.engine: argo")
    names = [t["metadata"]["name"] for t in templates]
    args: dict[str, dict[str, Any]] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for template in templates:
        for arg in template["spec"].get("args") or []:
            known = args.get(arg["name"])
            if known is not None and "value" in known and "value" in arg and known["value"] != arg["value"]:
                raise AnalysisError(f"AnalysisTemplates {names}: arg {arg['name']} has two values")
            if known is None or "value" in arg:
                args[arg["name"]] = dict(arg)
        for metric in template["spec"].get("metrics") or []:
            if metric["name"] in metrics:
                raise AnalysisError(f"AnalysisTemplates {names}: two metrics named {metric['name']}")
            metrics[metric["name"]] = metric
    name = "+".join(names)
    return {
        "metadata": {"name": name},
        "spec": {"args": list(args.values()), "metrics": list(metrics.values())},
    }


def template_args(template: Mapping[str, Any]) -> dict[str, str | None]:
    """The template's declared args and their defaults (None: a value must be supplied)."""
    return {a["name"]: a.get("value") for a in template["spec"].get("args") or []}


def metrics_of(template: Mapping[str, Any], args: Mapping[str, str]) -> list[Metric]:
    """The template's Prometheus metrics with args substituted; other providers are refused by name."""
    name = template["metadata"]["name"]
    metrics = []
    for metric in template["spec"].get("metrics") or []:
        where = f"AnalysisTemplate/{name} metric {metric['name']}"
        provider = metric.get("provider") or {}
        if "prometheus" not in provider:
            raise AnalysisError(f"{where}: provider {sorted(provider)} — the rehearsal runs Prometheus only")
        count = metric.get("count")
        metrics.append(
            Metric(
                name=metric["name"],
                query=substitute(provider["prometheus"]["query"], args, where),
                success_condition=substitute(metric.get("successCondition") or "", args, where),
                failure_condition=substitute(metric.get("failureCondition") or "", args, where),
                count=None if count is None else int(count),
                interval_s=seconds(metric.get("interval")),
                initial_delay_s=seconds(metric.get("initialDelay")) or 0.0,
                failure_limit=int(metric.get("failureLimit", 0)),
                inconclusive_limit=int(metric.get("inconclusiveLimit", 0)),
                consecutive_error_limit=int(
                    metric.get("consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT)
                ),
            )
        )
    if not metrics:
        raise AnalysisError(f"AnalysisTemplate/{name} has no metrics")
    return metrics


def prometheus_result(data: Mapping[str, Any]) -> list[float] | float:
    """The `result` Argo's Prometheus provider hands to the conditions: a vector's sample values, a scalar."""
    kind = data["resultType"]
    if kind == "vector":
        return [float(sample["value"][1]) for sample in data["result"]]
    if kind == "scalar":
        return float(data["result"][1])
    raise ConditionError(f"Prometheus result type {kind!r} is not supported (Argo: vector or scalar)")


# ---- conditions: Argo's expression language (expr), the subset analysis templates use ----


def _as_float(value: Any) -> float:
    return float(value)


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "isNaN": lambda x: isinstance(x, float) and math.isnan(x),
    "isInf": lambda x: isinstance(x, float) and math.isinf(x),
    "isNil": lambda x: x is None,
    "asFloat": _as_float,
    "asInt": lambda x: int(float(x)),
    "default": _default,
    "all": lambda items, predicate: all(predicate(i) for i in items),
    "any": lambda items, predicate: any(predicate(i) for i in items),
    "none": lambda items, predicate: not any(predicate(i) for i in items),
    "abs": abs,
    "max": max,
    "min": min,
}
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
    ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Call, ast.Name, ast.Load, ast.Constant, ast.Subscript,
    ast.List, ast.Tuple, ast.Lambda, ast.arguments, ast.arg,
)  # fmt: skip


def _translate(condition: str) -> str:
    """expr syntax → a Python expression: && || ! true false nil, and closures {# < 1} → lambda."""
    text = re.sub(r"&&", " and ", condition)
    text = re.sub(r"\|\|", " or ", text)
    text = re.sub(r"!(?!=)", " not ", text)
    text = re.sub(r"\btrue\b", "True", text)
    text = re.sub(r"\bfalse\b", "False", text)
    text = re.sub(r"\bnil\b", "None", text)
    return text.replace("{", "(lambda _it: (").replace("}", "))").replace("#", "_it")


def evaluate_condition(condition: str, result: Any) -> bool:
    """Evaluate an Argo condition against `result`; ConditionError when it cannot be (Argo: Error)."""
    try:
        tree = ast.parse(_translate(condition), mode="eval")
    except SyntaxError as error:
        raise ConditionError(f"cannot parse condition {condition!r}: {error.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ConditionError(f"condition {condition!r} uses {type(node).__name__}, not supported here")
        if isinstance(node, ast.Name) and node.id not in {
            "result",
            "_it",
            "True",
            "False",
            "None",
            *_FUNCTIONS,
        }:
            raise ConditionError(f"condition {condition!r} names {node.id!r}, which is not defined")
    try:
        value = eval(
            compile(tree, "<condition>", "eval"), {"__builtins__": {}}, {**_FUNCTIONS, "result": result}
        )
    except (IndexError, TypeError, ValueError, ZeroDivisionError, KeyError) as error:
        raise ConditionError(
            f"{condition!r} with result {result!r}: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(value, bool):
        raise ConditionError(f"{condition!r} gave {value!r}, not a boolean")
    return value


def measurement_phase(metric: Metric, result: Any) -> tuple[str, str]:
    """(phase, message) of one measurement, Argo's EvaluateResult rules."""
    success = failure = False
    try:
        if metric.success_condition:
            success = evaluate_condition(metric.success_condition, result)
        if metric.failure_condition:
            failure = evaluate_condition(metric.failure_condition, result)
    except ConditionError as error:
        return ERROR, str(error)
    if not metric.success_condition and not metric.failure_condition:
        return SUCCESSFUL, "no conditions: successful unless the query fails"
    if metric.success_condition and not metric.failure_condition:
        failure = not success
    elif metric.failure_condition and not metric.success_condition:
        success = not failure
    if failure:
        return FAILED, ""
    if not success:
        return INCONCLUSIVE, "neither condition holds"
    return SUCCESSFUL, ""


def metric_phase(metric: Metric, phases: Sequence[str], *, terminated: bool = True) -> str:
    """A metric's phase from its measurements so far (Argo's assessMetricStatus). `terminated`: the rollout
    finished its steps, which ends an unbounded background analysis as Successful if nothing failed."""
    failed = phases.count(FAILED)
    inconclusive = phases.count(INCONCLUSIVE)
    consecutive_errors = 0
    for phase in reversed(phases):
        if phase != ERROR:
            break
        consecutive_errors += 1
    if failed > metric.failure_limit:
        return FAILED
    if inconclusive > metric.inconclusive_limit:
        return INCONCLUSIVE
    if consecutive_errors > metric.consecutive_error_limit:
        return ERROR
    count = metric.effective_count()
    if (count is not None and len(phases) >= count) or terminated:
        return SUCCESSFUL if phases else INCONCLUSIVE
    return "Running"


def verdict(metric_phases: Mapping[str, str]) -> str:
    """The rollout's move: abort on a Failed or Error metric, pause when inconclusive, else promote."""
    phases = set(metric_phases.values())
    if phases & {FAILED, ERROR}:
        return ABORT
    if phases - {SUCCESSFUL}:
        return PAUSE
    return PROMOTE


def measurement_times(metric: Metric, load_seconds: float, steps: int | None = None) -> list[float]:
    """When to measure, in seconds since the load started, on the rehearsal's compressed clock: the
    metric's measurements (its count; `steps` when unbounded) spread evenly over the load, the last at its
    end. The template's own interval (minutes in a cluster) does not fit a one-minute rehearsal."""
    count = metric.effective_count() or steps or 3
    spacing = load_seconds / count
    return [round(spacing * (i + 1), 3) for i in range(count)]
