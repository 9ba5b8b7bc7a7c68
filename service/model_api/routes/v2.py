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
from model_api.model import PLATFORM, Model
from model_api.signature import Signature
from model_api.state import ServiceState
from model_api.tensors import binary_tensor, encode_bytes, json_tensor

SERVER_NAME = "model-api"
EXTENSIONS = ("binary_tensor_data",)
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
        self._metadata: tuple[Signature | None, bytes] | None = None

    def routes(self) -> dict[str, Route]:
        base = f"/v2/models/{self.name}"
        return {
            "/v2": Route("/v2", {"GET": self.server_metadata}),
            "/v2/health/live": Route("/v2/health/live", {"GET": self.live}, observed=False),
            "/v2/health/ready": Route("/v2/health/ready", {"GET": self.server_ready}, observed=False),
            base: Route("/v2/models/{model}", {"GET": self.model_metadata}),
            f"{base}/ready": Route("/v2/models/{model}/ready", {"GET": self.model_ready}, observed=False),
            f"{base}/infer": Route(
                "/v2/models/{model}/infer", {"POST": self.state.versioned(self.infer)}, protected=True
            ),
        }

    def versioned_routes(self, version: str) -> dict[str, Route]:
        """The model routes again under `/versions/<version>` (tritonclient's model_version=...), for the
        loaded artifact's own version; the app answers 404 naming the served version for any other."""
        base = f"/v2/models/{self.name}/versions/{version}"
        template = "/v2/models/{model}/versions/{version}"
        return {
            base: Route(template, {"GET": self.model_metadata}),
            f"{base}/ready": Route(f"{template}/ready", {"GET": self.model_ready}, observed=False),
            f"{base}/infer": Route(
                f"{template}/infer", {"POST": self.state.versioned(self.infer)}, protected=True
            ),
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
        model = self.state.require_model()
        if self._metadata is None or self._metadata[0] is not model.signature:
            self._metadata = (model.signature, json_response(model_metadata(model, self.name)).body)
        return Response(self._metadata[1])

    async def infer(self, request: Request) -> Response:
        model = self.state.require_model()  # 503 before reading a body we could not use
        signature, info = model.signature, model.info
        assert signature is not None and info is not None
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
        arrays = self._input_arrays(payload.get("inputs"), binary, signature)
        asked = payload.get("outputs")
        outputs = _requested_outputs(asked, binary_default, signature)
        result = await self.state.predict(arrays, None if asked is None else [o.name for o in outputs])
        return _infer_response(
            {"model_name": self.name, "model_version": info.version}, request_id, outputs, result, signature
        )

    def _input_arrays(self, inputs: Any, binary: bytes, signature: Signature) -> dict[str, np.ndarray]:
        """One validated array per model input; binary tensors take their bytes in the order listed."""
        specs = signature.inputs
        if not isinstance(inputs, list) or len(inputs) != len(specs):
            names = ", ".join(repr(spec.name) for spec in specs)
            raise BadRequest(
                f"'inputs' must be a list of exactly {len(specs)} tensor(s), one per model input: {names}"
            )
        arrays: dict[str, np.ndarray] = {}
        offset, max_rows = 0, self.state.settings.max_rows
        for index, tensor in enumerate(inputs):
            where = f"inputs[{index}]"
            if not isinstance(tensor, dict):
                raise BadRequest(f"{where} must be a tensor object with 'name', 'shape', 'datatype', 'data'")
            _refuse_unknown(tensor, _TENSOR_FIELDS, where)
            name = tensor.get("name")
            spec = signature.input(name) if isinstance(name, str) else None
            if spec is None:
                raise BadRequest(
                    f"{where}.name {name!r:.60} is not an input of model {self.name!r}; "
                    f"its inputs: {', '.join(signature.input_names)}"
                )
            if name in arrays:
                raise BadRequest(f"{where}.name {name!r} is given twice")
            shape, datatype = tensor.get("shape"), tensor.get("datatype")
            binary_size = _binary_size(tensor.get("parameters"), where)
            if binary_size is None:
                if "data" not in tensor:
                    raise BadRequest(
                        f"{where} needs 'data' (or parameters.binary_data_size with binary data)"
                    )
                arrays[name] = json_tensor(
                    spec, tensor["data"], shape, datatype, field=where, max_rows=max_rows
                )
                continue
            if "data" in tensor:
                raise BadRequest(f"{where} has both 'data' and parameters.binary_data_size; send one")
            if offset + binary_size > len(binary):
                raise BadRequest(
                    f"{where}.parameters.binary_data_size is {binary_size}, "
                    f"but {len(binary) - offset} binary bytes are left after the JSON header"
                )
            chunk = binary[offset : offset + binary_size]
            offset += binary_size
            arrays[name] = binary_tensor(spec, chunk, shape, datatype, field=where, max_rows=max_rows)
        _check_rows_agree(arrays, signature)
        if offset != len(binary):
            raise BadRequest(
                f"{len(binary) - offset} binary bytes follow the JSON header that no input's "
                "parameters.binary_data_size accounts for"
            )
        return arrays

    def _readiness(self, body: dict, ready: bool) -> Response:
        body["ready"] = ready
        if not ready:
            body["error"] = self.state.not_ready_reason()
        return json_response(body, 200 if ready else NotReady.status)


def _check_rows_agree(arrays: dict[str, np.ndarray], signature: Signature) -> None:
    """Batched inputs are rows of the same examples: their first dimensions must agree."""
    if len(arrays) < 2:
        return
    rows = {spec.name: arrays[spec.name].shape[0] for spec in signature.inputs if spec.batched}
    if len(set(rows.values())) > 1:
        shown = ", ".join(f"{name!r} {count}" for name, count in rows.items())
        raise BadRequest(f"every input needs the same number of rows; got {shown}")


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


def _binary_size(parameters: Any, where: str) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}.parameters must be an object")
    _refuse_unknown(parameters, frozenset(("binary_data_size",)), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):
        raise BadRequest(f"{where}.parameters.binary_data_size must be a non-negative integer")
    return size


_ALL_OUTPUTS: dict[tuple[int, bool], tuple[Signature, list[RequestedOutput]]] = {}


def _requested_outputs(outputs: Any, binary_default: bool, signature: Signature) -> list[RequestedOutput]:
    names = signature.output_names
    if outputs is None:  # the common case: every output, one list per signature (never mutated)
        cached = _ALL_OUTPUTS.get((id(signature), binary_default))
        if cached is None or cached[0] is not signature:
            cached = (signature, [RequestedOutput(name, binary_default) for name in names])
            _ALL_OUTPUTS[(id(signature), binary_default)] = cached
        return cached[1]
    if not isinstance(outputs, list) or not outputs:
        raise BadRequest(f"'outputs' must be a non-empty list of {{\"name\": ...}} with names {list(names)}")
    requested = []
    for index, output in enumerate(outputs):
        where = f"outputs[{index}]"
        if not isinstance(output, dict):
            raise BadRequest(f"{where} must be an object with a 'name'")
        _refuse_unknown(output, frozenset(("name", "parameters")), where)
        name = output.get("name")
        if name not in names:
            raise BadRequest(f"{where}.name {name!r:.60} is not an output; use one of {', '.join(names)}")
        if any(r.name == name for r in requested):
            raise BadRequest(f"{where}.name {name!r} is requested twice")
        binary = _flag(output.get("parameters"), "binary_data", f"{where}.parameters") or binary_default
        requested.append(RequestedOutput(name, binary))
    return requested


def _infer_response(
    body: dict,
    request_id: str | None,
    outputs: list[RequestedOutput],
    tensors: dict[str, np.ndarray],
    signature: Signature,
) -> Response:
    if request_id is not None:
        body["id"] = request_id
    entries, chunks = [], []
    for output in outputs:
        array = tensors[output.name]
        datatype = signature.output_datatypes[output.name]
        entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": list(array.shape)}
        if output.binary:
            raw = (
                encode_bytes(array)
                if array.dtype.kind == "O"
                else array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.ravel().tolist() if array.dtype.kind == "O" else array.ravel()
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


def model_metadata(model: Model, name: str) -> dict[str, Any]:
    """The V2 model metadata: the signature's tensors, the version, what model-settings.json declares."""
    signature, info = model.signature, model.info
    assert signature is not None and info is not None
    settings = info.settings
    parameters: dict[str, Any] = dict(settings.parameters)
    for key, value in (
        ("description", settings.description),
        ("features", list(settings.features)),
        ("class_names", list(settings.class_names)),
        ("input_descriptions", dict(settings.inputs)),
    ):
        if value:
            parameters[key] = value
    return {
        "name": name,
        "versions": [info.version],
        "platform": PLATFORM,
        "inputs": [spec.as_metadata() for spec in signature.inputs],
        "outputs": [spec.as_metadata() for spec in signature.outputs],
        "parameters": parameters,
    }


def routes(state: ServiceState) -> dict[str, Route]:
    return V2Routes(state).routes()


def versioned_routes(state: ServiceState) -> dict[str, Route]:
    """The versioned model routes once the model is loaded (the artifact names its version), else none."""
    info = state.model.info
    return V2Routes(state).versioned_routes(info.version) if info is not None else {}
