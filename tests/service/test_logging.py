"""Logs: JSON lines with the request id; access log for API routes only; the formatter itself."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from model_api.logs import ACCESS_LOGGER, JsonFormatter, TextFormatter, request_id_var

from tests.service.asgi_client import AsgiClient


def test_access_log_has_the_request_id_and_skips_probes(
    client: AsgiClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.get("/healthz", headers={"X-Request-ID": "probe-1"})
        client.get("/metrics")
        client.get("/api/v0/pi?ndigits=2", headers={"X-Request-ID": "pi-1"})

    access = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [(r.path, r.status, r.method) for r in access] == [("/api/v0/pi", 200, "GET")]


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
