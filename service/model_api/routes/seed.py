"""The seed API kept for existing clients: classify one flower from query parameters, and digits of pi."""

from __future__ import annotations

import numpy as np
import orjson

from model_api.http import Request, Response, Route, json_response
from model_api.pi import pi_digits
from model_api.routes.params import bounded_int, check_known, finite_float
from model_api.state import ServiceState

CLASSIFY_PARAMS = {
    "sl": "sepal length, cm",
    "sw": "sepal width, cm",
    "pl": "petal length, cm",
    "pw": "petal width, cm",
}
# Up to this many digits pi is computed on the event loop (well under a millisecond); beyond, in the pi
# worker process so that probes and other requests keep being answered.
INLINE_PI_DIGITS = 1000


class SeedRoutes:
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self._species_bodies: dict[int, bytes] = {}

    def routes(self) -> dict[str, Route]:
        return {
            "/api/v01/classify": Route("/api/v01/classify", {"GET": self.classify}, protected=True),
            "/api/v0/pi": Route("/api/v0/pi", {"GET": self.pi}, protected=True),
        }

    async def classify(self, request: Request) -> Response:
        query = request.query()
        check_known(query, CLASSIFY_PARAMS)
        row = [finite_float(query, name, meaning) for name, meaning in CLASSIFY_PARAMS.items()]
        prediction = await self.state.predict(np.array([row], dtype=np.float32))
        return Response(self._species_body(int(prediction.labels[0])))

    async def pi(self, request: Request) -> Response:
        query = request.query()
        check_known(query, ("ndigits",))
        limit = self.state.settings.max_ndigits
        ndigits = bounded_int(
            query, "ndigits", "digits after the point", low=0, high=limit, limit_name="MAX_NDIGITS"
        )
        if ndigits <= INLINE_PI_DIGITS:
            digits = pi_digits(ndigits)
        else:
            digits = await self.state.pi.digits(ndigits)
        return json_response({"ndigits": ndigits, "pi": digits})

    def _species_body(self, label: int) -> bytes:
        body = self._species_bodies.get(label)
        if body is None:  # one serialisation per class for the life of the process
            metadata = self.state.model.metadata
            assert metadata is not None
            body = self._species_bodies[label] = orjson.dumps({"species": metadata.class_names[label]})
        return body


def routes(state: ServiceState) -> dict[str, Route]:
    return SeedRoutes(state).routes()
