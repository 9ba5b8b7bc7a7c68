"""The hand-written OpenAPI 3.1 document served at /openapi.json.

Built from the settings so that paths name the configured model, limits (MAX_ROWS, MAX_NDIGITS) appear
as schema bounds and security is declared only when an API key is set. Schemathesis checks the live
server against it, so every status a route can answer is listed.
"""

from __future__ import annotations

from typing import Any

from model_api import __version__
from model_api.routes.seed import CLASSIFY_PARAMS
from model_api.routes.v2 import OUTPUT_DATATYPES
from model_api.settings import Settings
from model_api.tensors import FLOAT32_MAX, V2_DATATYPES
from model_api.train import INPUT_NAME

_ERROR_TEXT = {
    400: "Malformed request: the error names the problem",
    401: "Missing or wrong API key",
    404: "Unknown model or route",
    405: "Method not allowed on this path",
    413: "Request body larger than MAX_BODY_BYTES",
    422: "Well-formed but out of range (too many rows or digits, non-finite values)",
    503: "Unavailable: model not loaded, server shutting down, or the pi worker died; the error says which",
}


def openapi_document(settings: Settings) -> dict[str, Any]:
    model = settings.model_name
    protected = settings.api_key is not None
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {"type": "array", "items": number, "minItems": 4, "maxItems": 4}

    def op(summary: str, ok: dict, errors: tuple[int, ...], *, secured: bool = False, **extra: Any) -> dict:
        codes = set(errors) | {405}
        if secured and protected:
            codes.add(401)
        responses = {"200": ok} | {str(code): _error(code) for code in sorted(codes)}
        operation = {"summary": summary, **extra, "responses": responses}
        if secured and protected:
            operation["security"] = [{"apiKey": []}, {"bearer": []}]
        return operation

    def ready_op(summary: str, properties: dict, required: list[str]) -> dict:
        schema = {
            "type": "object",
            "required": [*required, "ready"],
            "properties": {**properties, "ready": {"type": "boolean"}, "error": {"type": "string"}},
        }
        operation = op(summary, _json("Ready", schema), ())
        operation["responses"]["503"] = _json("Not ready (the body says why)", schema)
        return operation

    paths = {
        "/api/v01/classify": {
            "get": op(
                "Classify one flower from its measurements (seed API)",
                _json("Predicted species", _object({"species": {"type": "string"}})),
                (400, 422, 503),
                secured=True,
                parameters=[
                    {"name": name, "in": "query", "required": True, "description": meaning, "schema": number}
                    for name, meaning in CLASSIFY_PARAMS.items()
                ],
            )
        },
        "/api/v0/pi": {
            "get": op(
                "Digits of pi, truncated (CPU-bound workload for autoscaling tests)",
                _json(
                    "Pi to ndigits digits after the point",
                    _object(
                        {
                            "ndigits": {"type": "integer"},
                            "pi": {"type": "string", "pattern": r"^3(\.[0-9]+)?$"},
                        }
                    ),
                ),
                (400, 422, 503),
                secured=True,
                parameters=[
                    {
                        "name": "ndigits",
                        "in": "query",
                        "required": True,
                        "description": f"digits after the point, 0..{settings.max_ndigits} (MAX_NDIGITS)",
                        "schema": {"type": "integer", "minimum": 0, "maximum": settings.max_ndigits},
                    }
                ],
            )
        },
        "/": {
            "get": op(
                "KServe V1 server liveness", _json("Alive", _object({"status": {"type": "string"}})), ()
            )
        },
        "/v1/models": {
            "get": op(
                "KServe V1 model list",
                _json("Served models", _object({"models": {"type": "array", "items": {"type": "string"}}})),
                (),
            )
        },
        f"/v1/models/{model}": {
            "get": ready_op("KServe V1 model status", {"name": {"type": "string"}}, ["name"]),
        },
        f"/v1/models/{model}:predict": {
            "post": op(
                "KServe V1 prediction: class index per instance",
                _json(
                    "Class indices",
                    _object({"predictions": {"type": "array", "items": {"type": "integer", "minimum": 0}}}),
                ),
                (400, 413, 422, 503),
                secured=True,
                requestBody=_body(
                    _object(
                        {
                            "instances": {
                                "type": "array",
                                "items": row,
                                "minItems": 1,
                                "maxItems": settings.max_rows,
                            }
                        }
                    )
                ),
            )
        },
        "/v2": {"get": op("V2 server metadata", _json("Server metadata", _server_metadata()), ())},
        "/v2/health/live": {
            "get": op("V2 liveness", _json("Alive", _object({"live": {"type": "boolean"}})), ())
        },
        "/v2/health/ready": {"get": ready_op("V2 server readiness", {}, [])},
        f"/v2/models/{model}": {
            "get": op("V2 model metadata", _json("Model metadata", _model_metadata()), (503,))
        },
        f"/v2/models/{model}/ready": {
            "get": ready_op("V2 model readiness", {"name": {"type": "string"}}, ["name"])
        },
        f"/v2/models/{model}/infer": {
            "post": op(
                "V2 inference: label INT64 [N] and probabilities FP32 [N,3]",
                _infer_response(),
                (400, 413, 422, 503),
                secured=True,
                requestBody=_body(_infer_request(model, settings.max_rows, number, row)),
            )
        },
        # The same three model routes for one version (tritonclient's model_version=...): the artifact's own
        # version (listed by the model metadata) answers as above; any other is 404.
        **_versioned(
            f"/v2/models/{model}",
            {
                "": (
                    "get",
                    op(
                        "V2 model metadata, by version",
                        _json("Model metadata", _model_metadata()),
                        (404, 503),
                    ),
                ),
                "/ready": (
                    "get",
                    ready_op("V2 model readiness, by version", {"name": {"type": "string"}}, ["name"]),
                ),
                "/infer": (
                    "post",
                    op(
                        "V2 inference, by version",
                        _infer_response(),
                        (400, 404, 413, 422, 503),
                        secured=True,
                        requestBody=_body(_infer_request(model, settings.max_rows, number, row)),
                    ),
                ),
            },
        ),
        "/healthz": {"get": op("Liveness", _json("Alive", _object({"status": {"type": "string"}})), ())},
        "/readyz": {
            "get": op(
                "Readiness: 503 until the model is loaded and once shutdown starts",
                _json("Ready", _object({"status": {"type": "string"}})),
                (503,),
            )
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                {
                    "description": "Text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                (),
            )
        },
        "/openapi.json": {"get": op("This document", _json("OpenAPI document", {"type": "object"}), ())},
        "/docs": {
            "get": op(
                "Human-readable API page",
                {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                (),
            )
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "model-api",
            "version": __version__,
            "description": "Iris classifier (seed API, KServe V1, Open Inference Protocol V2), pi workload.",
        },
        "paths": paths,
        "components": {"schemas": {"Error": _object({"error": {"type": "string"}})}},
    }
    if protected:
        document["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer"},
        }
    return document


def _versioned(base: str, operations: dict[str, tuple[str, dict]]) -> dict[str, dict]:
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "the model version (see the model metadata's `versions`); others get 404",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
    }
    paths = {}
    for suffix, (method, operation) in operations.items():
        operation["parameters"] = [version]
        operation["responses"].setdefault("404", _error(404))
        paths[f"{base}/versions/{{version}}{suffix}"] = {method: operation}
    return paths


def _object(properties: dict, *, required: list[str] | None = None, closed: bool = False) -> dict:
    schema = {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict) -> dict:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema | {"additionalProperties": False}}},
    }


def _error(status: int) -> dict:
    return _json(_ERROR_TEXT[status], {"$ref": "#/components/schemas/Error"})


def _server_metadata() -> dict:
    strings = {"type": "array", "items": {"type": "string"}}
    return _object({"name": {"type": "string"}, "version": {"type": "string"}, "extensions": strings})


def _model_metadata() -> dict:
    tensor = _object(
        {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        }
    )
    return _object(
        {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": tensor},
            "outputs": {"type": "array", "items": tensor},
            "parameters": {"type": "object"},
        },
        required=["name", "versions", "platform", "inputs", "outputs"],
    )


def _flag(name: str) -> dict:
    return _object({name: {"type": "boolean"}}, required=[], closed=True)


def _infer_request(model: str, max_rows: int, number: dict, row: dict) -> dict:
    tensor = _object(
        {
            "name": {"const": INPUT_NAME},  # the name `model-api train` gives the artifact's input
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 2,
                "maxItems": 2,
            },
            "datatype": {"enum": list(V2_DATATYPES)},
            "data": {
                "description": "row-major values, flat (4N numbers) or nested (N rows of 4)",
                "oneOf": [
                    {"type": "array", "items": number, "minItems": 4, "maxItems": 4 * max_rows},
                    {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows},
                ],
            },
            "parameters": _object(
                {"binary_data_size": {"type": "integer", "minimum": 0}}, required=[], closed=True
            ),
        },
        required=["name", "shape", "datatype", "data"],
        closed=True,
    )
    output = _object(
        {"name": {"enum": list(OUTPUT_DATATYPES)}, "parameters": _flag("binary_data")},
        required=["name"],
        closed=True,
    )
    return _object(
        {
            "id": {"type": "string"},
            "model_name": {"const": model, "description": "optional (kserve's client sends it)"},
            "parameters": _flag("binary_data_output"),
            "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1},
            "outputs": {"type": "array", "items": output, "minItems": 1, "maxItems": 2, "uniqueItems": True},
        },
        required=["inputs"],
    )


def _infer_response() -> dict:
    output = _object(
        {
            "name": {"enum": list(OUTPUT_DATATYPES)},
            "datatype": {"enum": list(OUTPUT_DATATYPES.values())},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array", "items": {"type": "number"}},
            "parameters": _object({"binary_data_size": {"type": "integer"}}),
        },
        required=["name", "datatype", "shape"],
    )
    body = _object(
        {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": output},
        },
        required=["model_name", "model_version", "outputs"],
    )
    return {
        "description": "Outputs; with the binary data extension, a JSON header of "
        "Inference-Header-Content-Length bytes "
        "bytes is followed by the raw tensors",
        "content": {
            "application/json": {"schema": body},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
