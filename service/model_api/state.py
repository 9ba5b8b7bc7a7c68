"""What the routes share: settings, the model, prediction threads, the pi worker process, shutdown state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from model_api import metrics
from model_api.errors import ApiError, NotReady, Unprocessable
from model_api.http import Handler, Request, Response, Route
from model_api.model import Model, ModelInputError
from model_api.pi_worker import PiWorker
from model_api.settings import Settings

# Batches up to this size run on the event loop: a few microseconds of onnxruntime cost less than the
# hop to a worker thread. Larger ones go to the pool (onnxruntime releases the GIL while it runs).
INLINE_PREDICT_ROWS = 512
T = TypeVar("T")


@dataclass
class ServiceState:
    settings: Settings
    model: Model
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-api-worker")
    )
    pi: PiWorker = field(default_factory=PiWorker)
    shutting_down: bool = False
    routes: dict[str, Route] = field(default_factory=dict)  # the app's route table (for /openapi.json)
    version_header: tuple[tuple[bytes, bytes], ...] = ()  # X-Model-Version, once the model is loaded
    _predictions: metrics.PredictionCounter | None = None
    _label_output: str | None = None
    _n_classes: int = 0

    @property
    def ready(self) -> bool:
        return self.model.ready and not self.shutting_down

    def not_ready_reason(self) -> str:
        if self.shutting_down:
            return "shutting down"
        return f"model {self.model.name!r} not loaded: {self.model.error or 'loading'}"

    def load_model(self) -> bool:
        loaded = self.model.load()
        if loaded:
            info = self.model.info
            assert info is not None
            if info.classes is not None:  # the predictions-by-class metric is for classifiers only
                self._predictions = metrics.PredictionCounter(info.classes.names)
                self._label_output = info.classes.label_output
                self._n_classes = len(info.classes.names)
            self.version_header = ((b"x-model-version", info.version.encode()),)
            metrics.MODEL_INFO.labels(self.model.name, info.version).set(1)
            metrics.MODEL_LOAD_SECONDS.set(self.model.load_seconds or 0.0)
        self._update_ready_gauge()
        return loaded

    def begin_shutdown(self) -> None:
        """Readiness turns 503 from now on; requests keep being served until the server stops."""
        self.shutting_down = True
        self._update_ready_gauge()

    def require_model(self) -> Model:
        if not self.model.ready:
            raise NotReady(self.not_ready_reason())
        return self.model

    async def predict(
        self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The model's outputs (all, or those named) for validated inputs; classes are counted."""
        model = self.require_model()
        label = self._label_output
        if outputs is not None and label is not None and label not in outputs:
            outputs = [*outputs, label]  # counted even when the client did not ask for it
        first = next(iter(inputs.values()), None)
        rows = first.shape[0] if first is not None and first.ndim else 1
        try:
            if rows <= INLINE_PREDICT_ROWS:
                result = model.predict(inputs, outputs)
            else:
                result = await self.run_in_thread(model.predict, inputs, outputs)
        except ModelInputError as exc:
            raise Unprocessable(f"model {model.name!r} cannot run on these inputs: {exc}") from None
        if self._predictions is not None:
            labels = result[label]
            if len(labels) != 1 or not 0 <= labels[0] < self._n_classes:
                # Class indices the declared class names do not cover (a settings mismatch) are not counted.
                labels = labels[(labels >= 0) & (labels < self._n_classes)]
            self._predictions.add(labels)
        return result

    def versioned(self, handler: Handler) -> Handler:
        """A prediction route's handler whose every answer, refusals included, carries X-Model-Version
        (the canary rehearsal attributes traffic and errors to a version by it)."""

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except ApiError as error:
                error.headers += self.version_header
                raise
            response.headers += self.version_header
            return response

        return handle

    async def run_in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run work that releases the GIL (onnxruntime) on a thread, keeping the event loop free."""
        return await asyncio.wrap_future(self.executor.submit(function, *args))

    def close(self) -> None:
        """Idempotent: called at lifespan shutdown and again when the server has stopped."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pi.close()

    def _update_ready_gauge(self) -> None:
        metrics.MODEL_READY.set(1 if self.ready else 0)
