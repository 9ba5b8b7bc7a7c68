"""Open Inference Protocol (KServe V2): server and model metadata, health, and `infer`.

Supports the binary tensor data extension that tritonclient uses by default: a JSON header of
`Inference-Header-Content-Length` bytes followed by raw little-endian tensor bytes, both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from model_api import __version__
from model_api.errors import BadRequest, NotReady
from model_api.http import Request, Response, Route, json_response, parse_json
from model_api.model import N_FEATURES
from model_api.state import ServiceState
from model_api.tensors import V2_DATATYPES, bytes_to_batch, tensor_to_batch

SERVER_NAME = "model-api"
EXTENSIONS = ("binary_tensor_data",)
OUTPUT_DATATYPES = {"label": "INT64", "probabilities": "FP32"}
_HEADER_LENGTH = b"inference-header-content-length"
_BINARY_TYPE = b"application/octet-stream"
# kserve's V2 REST client also names the model in the body (`model_name`), beside the URL.
_REQUEST_FIELDS = frozenset(("id", "model_name", "parameters", "inputs", "outputs"))
_TENSOR_FIELDS = frozenset(("name", "shape", "datatype", "data", "parameters"))


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


class V2Routes:
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.name = state.settings.model_name

    def routes(self) -> dict[str, Route]:
        base = f"/v2/models/{self.name}"
        return {
            "/v2": Route("/v2", {"GET": self.server_metadata}),
            "/v2/health/live": Route("/v2/health/live", {"GET": self.live}, observed=False),
            "/v2/health/ready": Route("/v2/health/ready", {"GET": self.server_ready}, observed=False),
            base: Route("/v2/models/{model}", {"GET": self.model_metadata}),
            f"{base}/ready": Route("/v2/models/{model}/ready", {"GET": self.model_ready}, observed=False),
            f"{base}/infer": Route("/v2/models/{model}/infer", {"POST": self.infer}, protected=True),
        }

    def versioned_routes(self, version: str) -> dict[str, Route]:
        """The model routes again under `/versions/<version>` (tritonclient's model_version=...), for the
        loaded artifact's own version; the app answers 404 naming the served version for any other."""
        base = f"/v2/models/{self.name}/versions/{version}"
        template = "/v2/models/{model}/versions/{version}"
        return {
            base: Route(template, {"GET": self.model_metadata}),
            f"{base}/ready": Route(f"{template}/ready", {"GET": self.model_ready}, observed=False),
            f"{base}/infer": Route(f"{template}/infer", {"POST": self.infer}, protected=True),
        }

    async def server_metadata(self, request: Request) -> Response:
        return json_response({"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)})

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def server_ready(self, request: Request) -> Response:
        return self._readiness({}, self.state.ready)

    async def model_ready(self, request: Request) -> Response:
        return self._readiness({"name": self.name}, self.state.model.ready)

    async def model_metadata(self, request: Request) -> Response:
        metadata = self.state.require_model().metadata
        assert metadata is not None
        n_classes = len(metadata.class_names)
        return json_response(
            {
                "name": self.name,
                "versions": [metadata.version],
                "platform": "onnxruntime_onnx",
                "inputs": [{"name": metadata.input_name, "datatype": "FP32", "shape": [-1, N_FEATURES]}],
                "outputs": [
                    {"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, n_classes]},
                ],
                "parameters": {
                    "features": list(metadata.features),
                    "class_names": list(metadata.class_names),
                    "training_accuracy": metadata.training_accuracy,
                    "trained_at": metadata.trained_at,
                    "libraries": metadata.libraries,
                },
            }
        )

    async def infer(self, request: Request) -> Response:
        model = self.state.require_model()  # 503 before reading a body we could not use
        assert model.metadata is not None
        raw = await request.body(self.state.settings.max_body_bytes)
        header, binary = _split_binary(raw, request.headers.get(_HEADER_LENGTH))
        payload = parse_json(header)
        if not isinstance(payload, dict):
            raise BadRequest("body must be a JSON object with 'inputs'")
        _refuse_unknown(payload, _REQUEST_FIELDS, "request")
        named = payload.get("model_name", self.name)
        if named != self.name:
            raise BadRequest(
                f"model_name {named!r:.60} in the body does not match the model {self.name!r} of the URL"
            )
        request_id = payload.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise BadRequest("'id' must be a string")
        binary_default = _flag(payload.get("parameters"), "binary_data_output", "parameters")
        batch = self._input_batch(payload.get("inputs"), binary, model.metadata.input_name)
        outputs = _requested_outputs(payload.get("outputs"), binary_default)
        prediction = await self.state.predict(batch)
        tensors = {"label": prediction.labels, "probabilities": prediction.probabilities}
        return _infer_response(
            {"model_name": self.name, "model_version": model.metadata.version}, request_id, outputs, tensors
        )

    def _input_batch(self, inputs: Any, binary: bytes, input_name: str) -> np.ndarray:
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise BadRequest(f"'inputs' must be a list holding exactly one tensor named {input_name!r}")
        tensor = inputs[0]
        _refuse_unknown(tensor, _TENSOR_FIELDS, "inputs[0]")
        if tensor.get("name") != input_name:
            raise BadRequest(f"inputs[0].name must be {input_name!r}, got {tensor.get('name')!r}")
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
            raise BadRequest(
                f"inputs[0].datatype {datatype!r} is not supported; use one of {', '.join(V2_DATATYPES)}"
            )
        shape = tensor.get("shape")
        max_rows = self.state.settings.max_rows
        binary_size = _binary_size(tensor.get("parameters"))
        if binary_size is None:
            if binary:
                raise BadRequest("binary data was sent but inputs[0] declares no parameters.binary_data_size")
            if "data" not in tensor:
                raise BadRequest("inputs[0] needs 'data' (or parameters.binary_data_size with binary data)")
            return tensor_to_batch(tensor["data"], shape, datatype, field="inputs[0]", max_rows=max_rows)
        if "data" in tensor:
            raise BadRequest("inputs[0] has both 'data' and parameters.binary_data_size; send one")
        if binary_size != len(binary):
            raise BadRequest(
                f"inputs[0].parameters.binary_data_size is {binary_size}, "
                f"but {len(binary)} binary bytes follow the JSON header"
            )
        return bytes_to_batch(binary, shape, datatype, field="inputs[0]", max_rows=max_rows)

    def _readiness(self, body: dict, ready: bool) -> Response:
        body["ready"] = ready
        if not ready:
            body["error"] = self.state.not_ready_reason()
        return json_response(body, 200 if ready else NotReady.status)


def _split_binary(raw: bytes, header_length: bytes | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return raw, b""
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest("Inference-Header-Content-Length must be an integer") from None
    if not 0 < length <= len(raw):
        raise BadRequest(f"Inference-Header-Content-Length {length} does not fit a body of {len(raw)} bytes")
    return raw[:length], raw[length:]


def _refuse_unknown(obj: dict, known: frozenset, where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} in {where}; expected {', '.join(sorted(known))}")


def _flag(parameters: Any, name: str, where: str) -> bool:
    """A boolean parameter (binary_data_output / binary_data); any other parameter is refused."""
    if parameters is None:
        return False
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where} must be an object")
    _refuse_unknown(parameters, frozenset((name,)), where)
    value = parameters.get(name, False)
    if type(value) is not bool:
        raise BadRequest(f"{where}.{name} must be true or false")
    return value


def _binary_size(parameters: Any) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest("inputs[0].parameters must be an object")
    _refuse_unknown(parameters, frozenset(("binary_data_size",)), "inputs[0].parameters")
    size = parameters.get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):
        raise BadRequest("inputs[0].parameters.binary_data_size must be a non-negative integer")
    return size


def _requested_outputs(outputs: Any, binary_default: bool) -> list[RequestedOutput]:
    if outputs is None:
        return [RequestedOutput(name, binary_default) for name in OUTPUT_DATATYPES]
    if not isinstance(outputs, list) or not outputs:
        raise BadRequest(
            f"'outputs' must be a non-empty list of {{\"name\": ...}} with names {list(OUTPUT_DATATYPES)}"
        )
    requested = []
    for index, output in enumerate(outputs):
        where = f"outputs[{index}]"
        if not isinstance(output, dict):
            raise BadRequest(f"{where} must be an object with a 'name'")
        _refuse_unknown(output, frozenset(("name", "parameters")), where)
        name = output.get("name")
        if name not in OUTPUT_DATATYPES:
            raise BadRequest(
                f"{where}.name {name!r} is not an output; use one of {', '.join(OUTPUT_DATATYPES)}"
            )
        if any(r.name == name for r in requested):
            raise BadRequest(f"{where}.name {name!r} is requested twice")
        binary = _flag(output.get("parameters"), "binary_data", f"{where}.parameters") or binary_default
        requested.append(RequestedOutput(name, binary))
    return requested


def _infer_response(
    body: dict, request_id: str | None, outputs: list[RequestedOutput], tensors: dict
) -> Response:
    if request_id is not None:
        body["id"] = request_id
    entries, chunks = [], []
    for output in outputs:
        array = tensors[output.name]
        entry = {"name": output.name, "datatype": OUTPUT_DATATYPES[output.name], "shape": list(array.shape)}
        if output.binary:
            raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.ravel()
        entries.append(entry)
    body["outputs"] = entries
    if not chunks:
        return json_response(body)
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(
        header + b"".join(chunks),
        content_type=_BINARY_TYPE,
        headers=((_HEADER_LENGTH, str(len(header)).encode()),),
    )


def routes(state: ServiceState) -> dict[str, Route]:
    return V2Routes(state).routes()


def versioned_routes(state: ServiceState) -> dict[str, Route]:
    """The versioned model routes once the model is loaded (the artifact names its version), else none."""
    metadata = state.model.metadata
    return V2Routes(state).versioned_routes(metadata.version) if metadata is not None else {}
