"""KServe V1 protocol: server liveness, model list, model status and `:predict` with `instances` (models with
one input; a classifier answers its class indices, any other model its first output, one entry per row)."""

from __future__ import annotations

import numpy as np
import orjson

from model_api.errors import BadRequest, NotFound, NotReady
from model_api.http import Request, Response, Route, json_response
from model_api.model import Model
from model_api.state import ServiceState
from model_api.tensors import instances

_ALIVE = b'{"status":"alive"}'


class KServeV1Routes:
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.name = state.settings.model_name

    def routes(self) -> dict[str, Route]:
        base = f"/v1/models/{self.name}"
        return {
            # What kserve's V1 client calls for server liveness and for the model list.
            "/": Route("/", {"GET": self.live}, observed=False),
            "/v1/models": Route("/v1/models", {"GET": self.list_models}),
            base: Route("/v1/models/{model}", {"GET": self.model_status}),
            f"{base}:predict": Route(
                "/v1/models/{model}:predict", {"POST": self.state.versioned(self.predict)}, protected=True
            ),
        }

    async def live(self, request: Request) -> Response:
        return Response(_ALIVE)

    async def list_models(self, request: Request) -> Response:
        return json_response({"models": [self.name]})

    async def model_status(self, request: Request) -> Response:
        ready = self.state.model.ready
        body = {"name": self.name, "ready": ready}
        if not ready:
            body["error"] = self.state.not_ready_reason()
        return json_response(body, 200 if ready else NotReady.status)

    async def predict(self, request: Request) -> Response:
        model = self.state.require_model()  # 503 before reading a body we could not use
        signature = model.signature
        assert signature is not None
        if len(signature.inputs) != 1:
            names = ", ".join(spec.name for spec in signature.inputs)
            # 404 like the seed route for a model it does not fit: no body can make this route work.
            raise NotFound(
                f"KServe V1 'instances' fit models with one input; model {self.name!r} takes "
                f"{len(signature.inputs)} ({names}): use /v2/models/{self.name}/infer"
            )
        spec = signature.inputs[0]
        payload = await request.json(self.state.settings.max_body_bytes)
        if not isinstance(payload, dict) or "instances" not in payload:
            raise BadRequest('body must be a JSON object {"instances": [row, ...]}')
        unknown = sorted(set(payload) - {"instances"})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}; the body takes only 'instances'")
        rows = instances(spec, payload["instances"], field="instances", max_rows=self.state.settings.max_rows)
        output = _prediction_output(model)
        outputs = await self.state.predict({spec.name: rows}, [output])
        return Response(
            orjson.dumps({"predictions": _per_row(outputs[output])}, option=orjson.OPT_SERIALIZE_NUMPY)
        )


def _prediction_output(model: Model) -> str:
    """A classifier's class indices, else the model's first output."""
    assert model.info is not None and model.signature is not None
    classes = model.info.classes
    return classes.label_output if classes is not None else model.signature.outputs[0].name


def _per_row(array: np.ndarray) -> np.ndarray | list:
    """One prediction per row: a regressor's [N, 1] becomes [N]; strings become a list."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    return array.tolist() if array.dtype.kind == "O" else array


def routes(state: ServiceState) -> dict[str, Route]:
    return KServeV1Routes(state).routes()
