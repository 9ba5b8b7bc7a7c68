"""KServe V1 protocol: server liveness, model list, model status and `:predict` with `instances`."""

from __future__ import annotations

from model_api.errors import BadRequest, NotReady
from model_api.http import Request, Response, Route, json_response
from model_api.state import ServiceState
from model_api.tensors import rows_to_batch

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
            f"{base}:predict": Route("/v1/models/{model}:predict", {"POST": self.predict}, protected=True),
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
        self.state.require_model()  # 503 before reading a body we could not use
        payload = await request.json(self.state.settings.max_body_bytes)
        if not isinstance(payload, dict) or "instances" not in payload:
            raise BadRequest('body must be a JSON object {"instances": [[sl, sw, pl, pw], ...]}')
        unknown = sorted(set(payload) - {"instances"})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}; the body takes only 'instances'")
        batch = rows_to_batch(payload["instances"], field="instances", max_rows=self.state.settings.max_rows)
        prediction = await self.state.predict(batch)
        return json_response({"predictions": prediction.labels})


def routes(state: ServiceState) -> dict[str, Route]:
    return KServeV1Routes(state).routes()
