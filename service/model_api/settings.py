"""Service settings, read once from environment variables that share the prefix MODEL_API_.

The chart sets these from its ConfigMap (and mounts the API key from a Secret as a file); `model-api serve
--help` prints the same table, so this module is the single place where a setting is named and documented.
"""

# ruff: noqa: RUF009 - `_setting` wraps dataclasses.field to attach the help text and bounds

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PREFIX = "MODEL_API_"
DEFAULT_MODEL_PATH = Path(__file__).parent / "artifacts" / "iris.onnx"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")
_URL_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SettingsError(ValueError):
    """A setting from the environment is missing a valid value; the message names the variable."""


def _setting(default: Any, help: str, *, choices: tuple[str, ...] = (), minimum: float | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("0.0.0.0", "Address to bind.")
    port: int = _setting(8080, "TCP port to listen on (PORT is honoured too when this is unset).", minimum=1)
    model_path: Path = _setting(
        DEFAULT_MODEL_PATH,
        "Model to load at start: an .onnx file, or a directory with model.onnx and an optional "
        "model-settings.json.",
    )
    model_name: str = _setting("iris", "Model name served under /v1/models/<name> and /v2/models/<name>.")
    model_version: str | None = _setting(
        None,
        "Model version reported by /v2/models/<name> and the X-Model-Version header of every prediction "
        "(the chart sets it from model.version); unset: model-settings.json's version, else 1.",
    )
    log_level: str = _setting("info", "Log level.", choices=LOG_LEVELS)
    log_format: str = _setting(
        "json", "Log format: JSON lines (with request id) or plain text.", choices=LOG_FORMATS
    )
    max_body_bytes: int = _setting(1_048_576, "Largest request body accepted; larger gets 413.", minimum=1)
    max_rows: int = _setting(10_000, "Most rows (instances) accepted in one prediction request.", minimum=1)
    max_ndigits: int = _setting(
        100_000,
        "Most digits of pi one /api/v0/pi request may ask for. Beyond 1000 digits, pi is computed in one "
        "worker process started by the first such request (metrics: model_api_pi_worker_jobs, "
        "model_api_pi_worker_deaths_total).",
        minimum=0,
    )
    api_key: str | None = _setting(
        None,
        "When set, prediction routes require it (X-API-Key or Authorization: Bearer). Never logged, and "
        "removed from the environment at start so that no child process inherits it. For local use; "
        "deployments give API_KEY_FILE.",
    )
    api_key_file: Path | None = _setting(
        None,
        "File holding the API key (the chart mounts its Secret there), read once at start; a trailing "
        "newline is dropped, an empty file refused. Not together with API_KEY.",
    )
    drain_seconds: float = _setting(
        0.0, "After SIGTERM: seconds to keep serving (readiness already 503) before closing.", minimum=0
    )
    keepalive_seconds: float = _setting(
        75.0, "HTTP keep-alive timeout; keep it above your ingress/load balancer idle timeout.", minimum=0
    )
    shutdown_timeout_seconds: float = _setting(
        20.0, "After draining: the longest wait for in-flight requests before exit.", minimum=0
    )
    # Rehearsal-only faults (model_api.faults), off by default: never set them in a real deployment.
    rehearsal_error_rate: float = _setting(
        0.0, "Rehearsals and tests only: fraction (0-1) of prediction requests answered 500.", minimum=0
    )
    rehearsal_latency_ms: float = _setting(
        0.0, "Rehearsals and tests only: milliseconds added to every prediction request.", minimum=0
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default os.environ); raise SettingsError naming a bad variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = env_name(spec.name)
            raw = environ.get(name)
            if raw is None and spec.name == "port":
                name, raw = "PORT", environ.get("PORT")
            if raw is None or (raw == "" and spec.name != "api_key"):
                continue
            values[spec.name] = _parse(name, raw, spec.type, spec.metadata)
        values["api_key"] = _api_key(values.get("api_key"), values.get("api_key_file"))
        return cls(**values)

    def __repr__(self) -> str:  # the API key must never reach a log line
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_key"] = "<set>" if self.api_key else None
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def _api_key(key: str | None, key_file: Path | None) -> str | None:
    """The key from MODEL_API_API_KEY or the file MODEL_API_API_KEY_FILE names. A key written with a
    trailing newline (kubectl create secret --from-file, echo > file) would never match a header, so every
    request would get 401: surrounding whitespace is dropped. Never echoed in an error: it is the secret."""
    if key_file is not None:
        file_variable = env_name("api_key_file")
        if key is not None:
            raise SettingsError(f"{env_name('api_key')} and {file_variable} are both set; give only one")
        try:
            key = key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise SettingsError(f"{file_variable}={str(key_file)!r} cannot be read: {reason}") from None
        if not key.strip():
            raise SettingsError(f"{file_variable}={str(key_file)!r} is empty; it must hold the API key")
    if key is None:
        return None
    if key and not key.strip():
        raise SettingsError(f"{env_name('api_key')} is blank; unset it (no key) or give a key")
    return key.strip() or None


def api_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The API key as `Settings.from_env` reads it, for clients (`model-api check`) that need only the key."""
    environ = os.environ if environ is None else environ
    key_file = environ.get(env_name("api_key_file"), "").strip()
    return _api_key(environ.get(env_name("api_key")), Path(key_file) if key_file else None)


def remove_secrets_from_environ(environ: MutableMapping[str, str] | None = None) -> None:
    """Drop MODEL_API_API_KEY from this process's environment once read, so that no child process (the pi
    worker, anything a library spawns) inherits it. /proc/<pid>/environ keeps the value the process was
    started with: the file (MODEL_API_API_KEY_FILE) is the way to keep it out of there too."""
    (os.environ if environ is None else environ).pop(env_name("api_key"), None)


def env_name(setting: str) -> str:
    return PREFIX + setting.upper()


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, in declaration order: the --help table."""
    rows = []
    for spec in fields(Settings):
        default = "" if spec.default is None else str(spec.default)
        text = spec.metadata["help"]
        if spec.metadata["choices"]:
            text += " One of: " + ", ".join(spec.metadata["choices"]) + "."
        rows.append((env_name(spec.name), default, text))
    return rows


_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "Path": Path,
    "str": str,
    "str | None": str,
    "Path | None": Path,
}


def _parse(name: str, raw: str, type_name: Any, meta: Mapping[str, Any]) -> Any:
    parser = _PARSERS[str(type_name)]
    try:
        value = parser(raw.strip() if parser is not str else raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {parser.__name__}") from None
    if meta["choices"]:
        value = value.lower()
        if value not in meta["choices"]:
            raise SettingsError(f"{name}={raw!r} must be one of {', '.join(meta['choices'])}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    if meta["minimum"] is not None and isinstance(value, int | float) and value < meta["minimum"]:
        raise SettingsError(f"{name}={raw!r} must be >= {meta['minimum']}")
    if name in (env_name("model_name"), env_name("model_version")) and not _URL_SAFE_NAME.fullmatch(value):
        raise SettingsError(
            f"{name}={raw!r} must be letters, digits, '.', '_' or '-' (it appears in URL paths)"
        )
    if name.endswith("PORT") and not 1 <= value <= 65535:
        raise SettingsError(f"{name}={raw!r} must be a port between 1 and 65535")
    return value
