"""Logs: JSON lines with the request id; access log for API routes only; the formatters themselves."""

from __future__ import annotations

import io
import logging
import warnings

import orjson
import pytest
from model_api.logs import ACCESS_LOGGER, AccessLog, JsonFormatter, TextFormatter, request_id_var

from tests.service.asgi_client import AsgiClient


@pytest.fixture
def access_lines(client: AsgiClient) -> list[bytes]:
    lines: list[bytes] = []
    client.app.access_log = AccessLog("json", lines.append)
    return lines


def test_access_log_has_the_request_id_and_skips_probes(
    client: AsgiClient, access_lines: list[bytes]
) -> None:
    client.get("/healthz", headers={"X-Request-ID": "probe-1"})
    client.get("/readyz")
    client.get("/metrics")
    client.get("/api/v0/pi?ndigits=2", headers={"X-Request-ID": "pi-1"})

    entries = [orjson.loads(line) for line in access_lines]
    assert [{k: e[k] for k in ("logger", "method", "path", "status", "request_id")} for e in entries] == [
        {"logger": ACCESS_LOGGER, "method": "GET", "path": "/api/v0/pi", "status": 200, "request_id": "pi-1"}
    ]
    assert entries[0]["duration_ms"] >= 0 and entries[0]["ts"].endswith("Z"), entries[0]


def test_text_access_log_escapes_control_characters_in_the_path() -> None:
    lines: list[bytes] = []

    AccessLog("text", lines.append).log("GET", "/a\nb\x1b", 404, 0.1, "rid-1")

    assert lines[0].count(b"\n") == 1 and lines[0].endswith(b"duration_ms=0.1\n"), lines[0]
    assert b"/a\\nb\\x1b 404 request_id=rid-1" in lines[0], lines[0]


def test_access_log_is_off_above_info_level(make_app) -> None:
    assert make_app(log_level="warning").access_log is None


def test_an_unusable_incoming_request_id_is_replaced(client: AsgiClient) -> None:
    result = client.get("/healthz", headers={"X-Request-ID": "x" * 200})

    assert result.headers["x-request-id"] != "x" * 200 and len(result.headers["x-request-id"]) == 32


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_formatters_include_the_request_id_and_extra_fields(formatter: logging.Formatter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("model_api.test_logging")
    logger.addHandler(handler)
    token = request_id_var.set("rid-42")
    try:
        logger.warning("hello %s", "world", extra={"status": 418})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)

    line = stream.getvalue().strip()
    if isinstance(formatter, JsonFormatter):
        entry = orjson.loads(line)
        assert {k: entry[k] for k in ("level", "message", "request_id", "status")} == {
            "level": "warning",
            "message": "hello world",
            "request_id": "rid-42",
            "status": 418,
        }
    else:
        assert "hello world" in line and "request_id=rid-42" in line and "status=418" in line, line


def test_python_warnings_become_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from model_api.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json")
        logging.getLogger("py.warnings").handlers.clear()
        warnings.warn_explicit("overflow in cast", RuntimeWarning, "lib.py", 1)
    finally:
        logging.captureWarnings(False)
        root.handlers[:], level = saved
        root.setLevel(level)

    entry = orjson.loads(capsys.readouterr().err.strip())
    assert (entry["level"], entry["logger"], "overflow in cast" in entry["message"]) == (
        "warning",
        "py.warnings",
        True,
    )
