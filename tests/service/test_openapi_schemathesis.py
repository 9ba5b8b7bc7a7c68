"""Schemathesis against a live server: generated requests from the OpenAPI document never get a 5xx, and
every response (status, content type, headers, body) conforms to the document.

The schema is loaded from the same builder the server uses (schemathesis' fixture-based lazy loading does
not work with pytest 9), and a test checks that the live /openapi.json is exactly that document.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from model_api.openapi import openapi_document
from model_api.settings import Settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
# Must match the live_server fixture's environment (conftest.py): the limits appear in the document.
DOCUMENT = openapi_document(Settings(max_ndigits=5000))
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_live_document_is_the_one_under_test(live_server: ServerProcess) -> None:
    assert live_server.get("/openapi.json") == (200, DOCUMENT)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, live_server: ServerProcess) -> None:
    # The V2 tensor's data length must equal shape[0] * 4, which JSON Schema cannot state; schema-valid
    # bodies may be refused with 400 on that route, so "valid data is accepted" is not checked there.
    excluded = [positive_data_acceptance] if case.path.endswith("/infer") else []

    case.call_and_validate(base_url=live_server.url(""), excluded_checks=excluded)
