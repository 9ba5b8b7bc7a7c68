"""The OpenAPI 3.1 document served at /openapi.json, generated from the route table and the model's signature.

Every path comes from the app's route table (a route without an operation here is an error, so the
document cannot drift from what is served), and every request and response schema of the prediction
routes from the loaded model's signature: input names, datatypes, ranks, output names. Limits
(MAX_ROWS, MAX_NDIGITS) appear as schema bounds and security only when an API key is set. Schemathesis
checks the live server against it, so every status a route can answer is listed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from model_api import __version__
from model_api.http import Route
from model_api.model import Model
from model_api.routes.seed import CLASSIFY_PARAMS
from model_api.settings import Settings
from model_api.signature import V2_DTYPES, Signature, TensorSpec
from model_api.tensors import FLOAT32_MAX, accepted_datatypes, float_bound

_ERROR_TEXT = {
    400: "Malformed request: the error names the problem",
    401: "Missing or wrong API key",
    404: "Unknown model or route, or a route that does not fit the model (the error says why)",
    405: "Method not allowed on this path",
    413: "Request body larger than MAX_BODY_BYTES",
    422: "Well-formed but out of range (too many rows or digits, non-finite values)",
    503: "Unavailable: model not loaded, server shutting down, or the pi worker died; the error says which",
}
_SCALAR = {"f": "number", "i": "integer", "u": "integer", "b": "boolean", "O": "string"}
_VERSION_HEADER = {
    "X-Model-Version": {"description": "the version of the model that answered", "schema": {"type": "string"}}
}


@dataclass(frozen=True)
class _Context:
    settings: Settings
    signature: Signature | None  # None while the model is not loaded: generic tensor schemas

    @property
    def protected(self) -> bool:
        return self.settings.api_key is not None

    def op(
        self, summary: str, ok: dict, errors: tuple[int, ...], *, secured: bool = False, **extra: Any
    ) -> dict:
        codes = set(errors) | {405}
        if secured and self.protected:
            codes.add(401)
        responses = {"200": ok} | {str(code): _error(code) for code in sorted(codes)}
        operation = {"summary": summary, **extra, "responses": responses}
        if secured and self.protected:
            operation["security"] = [{"apiKey": []}, {"bearer": []}]
        return operation

    def ready_op(self, summary: str, properties: dict, required: list[str]) -> dict:
        schema = {
            "type": "object",
            "required": [*required, "ready"],
            "properties": {**properties, "ready": {"type": "boolean"}, "error": {"type": "string"}},
        }
        operation = self.op(summary, _json("Ready", schema), ())
        operation["responses"]["503"] = _json("Not ready (the body says why)", schema)
        return operation


def openapi_document(
    settings: Settings, routes: Mapping[str, Route] | None = None, model: Model | None = None
) -> dict[str, Any]:
    """The document for `routes` (default: the route table `create_app(settings)` builds) and the loaded
    `model` (default or not loaded: generic tensor schemas)."""
    if routes is None:
        routes = _default_routes(settings)
    signature = model.signature if model is not None and model.ready else None
    context = _Context(settings, signature)
    paths: dict[str, dict] = {}
    for path, route in _documented_routes(routes, settings).items():
        builders = _OPERATIONS.get(route.template)
        if builders is None:
            raise KeyError(f"route {route.template} has no OpenAPI operation; add one to model_api.openapi")
        paths[path] = {method.lower(): builders[method](context) for method in route.allowed}
        if "{version}" in path:
            for operation in paths[path].values():
                operation["parameters"] = [_VERSION_PARAMETER]
                operation["responses"].setdefault("404", _error(404))
    description = (
        model.info.settings.description if model is not None and model.info else ""
    ) or "ONNX model"
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "model-api",
            "version": __version__,
            "description": f"Model {settings.model_name!r}: {description}. Seed API, KServe V1, "
            "Open Inference Protocol V2; pi workload.",
        },
        "paths": paths,
        "components": {"schemas": {"Error": _object({"error": {"type": "string"}})}},
    }
    if context.protected:
        document["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer"},
        }
    return document


def _default_routes(settings: Settings) -> dict[str, Route]:
    from model_api.app import create_app  # the app imports this module

    app = create_app(settings)
    app.shutdown()
    return app.routes


def _documented_routes(routes: Mapping[str, Route], settings: Settings) -> dict[str, Route]:
    """The served paths, with the versioned V2 model routes once under a `{version}` parameter: the app
    adds them for the loaded model's own version, which is not known before it loads."""
    base = f"/v2/models/{settings.model_name}"
    documented = {}
    for path, route in routes.items():
        if "{version}" in route.template:
            continue
        documented[path] = route
        if route.template.startswith("/v2/models/{model}"):
            suffix = path[len(base) :]
            template = route.template.replace("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
            documented[f"{base}/versions/{{version}}{suffix}"] = Route(
                template, route.handlers, route.protected
            )
    return documented


_VERSION_PARAMETER = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "the model version (see the model metadata's `versions`); others get 404",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
}


# ---- operations, by route template and method ----------------------------------------------------------


def _classify(c: _Context) -> dict:
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    return c.op(
        "Classify one flower from its measurements (seed API; iris-shaped classifiers only)",
        _json("Predicted species", _object({"species": {"type": "string"}}), headers=_VERSION_HEADER),
        (400, 404, 422, 503),
        secured=True,
        parameters=[
            {"name": name, "in": "query", "required": True, "description": meaning, "schema": number}
            for name, meaning in CLASSIFY_PARAMS.items()
        ],
    )


def _pi(c: _Context) -> dict:
    limit = c.settings.max_ndigits
    return c.op(
        "Digits of pi, truncated (CPU-bound workload for autoscaling tests)",
        _json(
            "Pi to ndigits digits after the point",
            _object({"ndigits": {"type": "integer"}, "pi": {"type": "string", "pattern": r"^3(\.[0-9]+)?$"}}),
        ),
        (400, 422, 503),
        secured=True,
        parameters=[
            {
                "name": "ndigits",
                "in": "query",
                "required": True,
                "description": f"digits after the point, 0..{limit} (MAX_NDIGITS)",
                "schema": {"type": "integer", "minimum": 0, "maximum": limit},
            }
        ],
    )


def _v1_predict(c: _Context) -> dict:
    signature = c.signature
    spec = signature.inputs[0] if signature is not None and len(signature.inputs) == 1 else None
    row = _nested(spec, spec.shape[1:]) if spec is not None else {}
    instances = {"type": "array", "items": row, "minItems": 1, "maxItems": c.settings.max_rows}
    return c.op(
        "KServe V1 prediction (single-input models): a classifier's class index, else the first output, "
        "per instance",
        _json("Predictions", _object({"predictions": {"type": "array"}}), headers=_VERSION_HEADER),
        (400, 404, 413, 422, 503),
        secured=True,
        requestBody=_body(_object({"instances": instances})),
    )


def _v2_infer(c: _Context, summary: str = "V2 inference") -> dict:
    return c.op(
        summary,
        _infer_response(c.signature),
        (400, 413, 422, 503),
        secured=True,
        requestBody=_body(_infer_request(c)),
    )


def _v2_metadata(c: _Context, summary: str = "V2 model metadata") -> dict:
    return c.op(summary, _json("Model metadata", _model_metadata()), (503,))


_MODEL_READY = {"name": {"type": "string"}}
_OPERATIONS: dict[str, dict[str, Callable[[_Context], dict]]] = {
    "/api/v01/classify": {"GET": _classify},
    "/api/v0/pi": {"GET": _pi},
    "/": {"GET": lambda c: c.op("KServe V1 server liveness", _json("Alive", _status()), ())},
    "/v1/models": {
        "GET": lambda c: c.op(
            "KServe V1 model list",
            _json("Served models", _object({"models": {"type": "array", "items": {"type": "string"}}})),
            (),
        )
    },
    "/v1/models/{model}": {"GET": lambda c: c.ready_op("KServe V1 model status", _MODEL_READY, ["name"])},
    "/v1/models/{model}:predict": {"POST": _v1_predict},
    "/v2": {"GET": lambda c: c.op("V2 server metadata", _json("Server metadata", _server_metadata()), ())},
    "/v2/health/live": {
        "GET": lambda c: c.op("V2 liveness", _json("Alive", _object({"live": {"type": "boolean"}})), ())
    },
    "/v2/health/ready": {"GET": lambda c: c.ready_op("V2 server readiness", {}, [])},
    "/v2/models/{model}": {"GET": _v2_metadata},
    "/v2/models/{model}/ready": {"GET": lambda c: c.ready_op("V2 model readiness", _MODEL_READY, ["name"])},
    "/v2/models/{model}/infer": {"POST": _v2_infer},
    # The same three model routes for one version (tritonclient's model_version=...): the model's own
    # version (listed by the model metadata) answers as above; any other is 404.
    "/v2/models/{model}/versions/{version}": {
        "GET": lambda c: _v2_metadata(c, "V2 model metadata, by version")
    },
    "/v2/models/{model}/versions/{version}/ready": {
        "GET": lambda c: c.ready_op("V2 model readiness, by version", _MODEL_READY, ["name"])
    },
    "/v2/models/{model}/versions/{version}/infer": {
        "POST": lambda c: _v2_infer(c, "V2 inference, by version")
    },
    "/healthz": {"GET": lambda c: c.op("Liveness", _json("Alive", _status()), ())},
    "/readyz": {
        "GET": lambda c: c.op(
            "Readiness: 503 until the model is loaded and once shutdown starts",
            _json("Ready", _status()),
            (503,),
        )
    },
    "/metrics": {
        "GET": lambda c: c.op(
            "Prometheus metrics",
            {
                "description": "Text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            (),
        )
    },
    "/openapi.json": {
        "GET": lambda c: c.op("This document", _json("OpenAPI document", {"type": "object"}), ())
    },
    "/docs": {
        "GET": lambda c: c.op(
            "Human-readable API page",
            {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            (),
        )
    },
}


# ---- schemas -------------------------------------------------------------------------------------------


def _scalar(spec: TensorSpec | None) -> dict:
    """One JSON element of an input: within the model's float range, an integer, a boolean, a string."""
    if spec is None:
        return {"type": ["number", "boolean", "string"]}
    kind = spec.dtype.kind
    if kind == "f":
        bound = float_bound(spec)
        return {"type": "number", "minimum": -bound, "maximum": bound}
    return {"type": _SCALAR[kind]}


def _nested(spec: TensorSpec | None, dims: tuple[int, ...]) -> dict:
    """Nested JSON arrays, one level per dimension of `dims`, fixed lengths where the signature fixes them."""
    schema = _scalar(spec)
    for dim in reversed(dims):
        schema = {"type": "array", "items": schema, "minItems": 1} | (
            {"maxItems": dim, "minItems": dim} if dim != -1 else {}
        )
    return schema


def _tensor(c: _Context, spec: TensorSpec | None) -> dict:
    max_rows = c.settings.max_rows
    if spec is None:
        name: dict = {"type": "string"}
        datatype: dict = {"enum": list(V2_DTYPES)}
        shape: dict = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1}
        data: dict = {"type": "array", "minItems": 1}
    else:
        name = {"const": spec.name}
        datatype = {"enum": list(accepted_datatypes(spec))}
        shape = {
            "type": "array",
            "prefixItems": [
                {"type": "integer", "minimum": 1}
                | ({"maximum": max_rows} if i == 0 and spec.batched else {})
                | ({"const": dim} if dim != -1 else {})
                for i, dim in enumerate(spec.shape)
            ],
            "items": False,
            "minItems": len(spec.shape),
        }
        flat = {"type": "array", "items": _scalar(spec), "minItems": 1}
        data = {
            "description": "row-major values, flat or nested to the tensor's rank",
            "oneOf": [flat, _nested(spec, spec.shape)] if len(spec.shape) > 1 else [flat],
        }
    parameters = _object({"binary_data_size": {"type": "integer", "minimum": 0}}, required=[], closed=True)
    return _object(
        {"name": name, "shape": shape, "datatype": datatype, "data": data, "parameters": parameters},
        required=["name", "shape", "datatype", "data"],
        closed=True,
    )


def _infer_request(c: _Context) -> dict:
    signature = c.signature
    if signature is None:
        tensors: dict = {"type": "array", "items": _tensor(c, None), "minItems": 1}
        output_names: dict = {"type": "string"}
    else:
        specs = signature.inputs
        items = _tensor(c, specs[0]) if len(specs) == 1 else {"oneOf": [_tensor(c, s) for s in specs]}
        tensors = {"type": "array", "items": items, "minItems": len(specs), "maxItems": len(specs)}
        if len(specs) > 1:
            tensors["uniqueItems"] = True
        output_names = {"enum": list(signature.output_names)}
    output = _object(
        {"name": output_names, "parameters": _flag("binary_data")}, required=["name"], closed=True
    )
    n_outputs = len(signature.outputs) if signature is not None else None
    outputs = {"type": "array", "items": output, "minItems": 1, "uniqueItems": True}
    if n_outputs is not None:
        outputs["maxItems"] = n_outputs
    return _object(
        {
            "id": {"type": "string"},
            "model_name": {
                "const": c.settings.model_name,
                "description": "optional (kserve's client sends it)",
            },
            "parameters": _flag("binary_data_output"),
            "inputs": tensors,
            "outputs": outputs,
        },
        required=["inputs"],
    )


def _infer_response(signature: Signature | None) -> dict:
    if signature is None:
        names: dict = {"type": "string"}
        datatypes: dict = {"enum": list(V2_DTYPES)}
        element: dict = {"type": ["number", "boolean", "string"]}
    else:
        names = {"enum": list(signature.output_names)}
        datatypes = {"enum": sorted({spec.datatype for spec in signature.outputs})}
        # JSON's "number" covers integers too
        kinds = sorted(
            {"number" if spec.dtype.kind in "fiu" else _SCALAR[spec.dtype.kind] for spec in signature.outputs}
        )
        element = {"type": kinds if len(kinds) > 1 else kinds[0]}
    output = _object(
        {
            "name": names,
            "datatype": datatypes,
            "shape": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array", "items": element},
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
        "Inference-Header-Content-Length bytes is followed by the raw tensors",
        "headers": _VERSION_HEADER,
        "content": {
            "application/json": {"schema": body},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }


def _model_metadata() -> dict:
    tensor = _object(
        {
            "name": {"type": "string"},
            "datatype": {"enum": list(V2_DTYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
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


def _server_metadata() -> dict:
    strings = {"type": "array", "items": {"type": "string"}}
    return _object({"name": {"type": "string"}, "version": {"type": "string"}, "extensions": strings})


def _status() -> dict:
    return _object({"status": {"type": "string"}})


def _object(properties: dict, *, required: list[str] | None = None, closed: bool = False) -> dict:
    schema = {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(description: str, schema: dict, *, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description}
    if headers:
        response["headers"] = headers
    response["content"] = {"application/json": {"schema": schema}}
    return response


def _body(schema: dict) -> dict:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema | {"additionalProperties": False}}},
    }


def _error(status: int) -> dict:
    return _json(_ERROR_TEXT[status], {"$ref": "#/components/schemas/Error"})


def _flag(name: str) -> dict:
    return _object({name: {"type": "boolean"}}, required=[], closed=True)
