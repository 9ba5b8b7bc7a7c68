"""The seed API kept for existing clients: classify one flower from query parameters (iris-shaped classifiers;
404 naming why for other models), and digits of pi."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from model_api.errors import NotFound
from model_api.http import Request, Response, Route, json_response
from model_api.model import Model
from model_api.pi import pi_digits
from model_api.routes.params import bounded_int, check_known, finite_float
from model_api.signature import Signature
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


@dataclass(frozen=True)
class ClassifyPlan:
    """How the loaded model answers the classify route, worked out once: its input, dtype, label output."""

    signature: Signature
    input_name: str
    dtype: np.dtype
    outputs: list[str]
    bodies: tuple[bytes, ...]  # the response body per class index, serialised once


class SeedRoutes:
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self._plan: ClassifyPlan | None = None

    def routes(self) -> dict[str, Route]:
        return {
            "/api/v01/classify": Route(
                "/api/v01/classify", {"GET": self.state.versioned(self.classify)}, protected=True
            ),
            "/api/v0/pi": Route("/api/v0/pi", {"GET": self.pi}, protected=True),
        }

    async def classify(self, request: Request) -> Response:
        model = self.state.require_model()
        plan = self._plan
        if plan is None or plan.signature is not model.signature:
            plan = self._plan = _classify_plan(model)
        query = request.query()
        check_known(query, CLASSIFY_PARAMS)
        row = [finite_float(query, name, meaning) for name, meaning in CLASSIFY_PARAMS.items()]
        outputs = await self.state.predict({plan.input_name: np.array([row], dtype=plan.dtype)}, plan.outputs)
        label = int(outputs[plan.outputs[0]][0])
        body = plan.bodies[label] if 0 <= label < len(plan.bodies) else orjson.dumps({"species": str(label)})
        return Response(body)

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


def _classify_plan(model: Model) -> ClassifyPlan:
    """The plan for a classifier with one float input of the four measurements; 404 naming why otherwise."""
    signature, info = model.signature, model.info
    assert signature is not None and info is not None
    spec = signature.inputs[0] if len(signature.inputs) == 1 else None
    why = None
    if spec is None or not spec.is_float or len(spec.shape) != 2 or spec.shape[1] not in (-1, 4):
        inputs = ", ".join(f"{s.name} {s.datatype} {s.shape_text()}" for s in signature.inputs)
        why = f"it needs one float input of {len(CLASSIFY_PARAMS)} features, the model takes {inputs}"
    elif spec.shape[0] not in (-1, 1):
        why = f"it sends one row, input {spec.name!r} takes {spec.shape[0]}"
    elif info.classes is None:
        why = "it needs a classifier with class names (model-settings.json class_names)"
    if why is not None:
        raise NotFound(
            f"/api/v01/classify does not fit model {model.name!r}: {why}; use /v2/models/{model.name}/infer"
        )
    assert spec is not None and info.classes is not None
    bodies = tuple(orjson.dumps({"species": name}) for name in info.classes.names)
    return ClassifyPlan(signature, spec.name, spec.dtype, [info.classes.label_output], bodies)


def routes(state: ServiceState) -> dict[str, Route]:
    return SeedRoutes(state).routes()
