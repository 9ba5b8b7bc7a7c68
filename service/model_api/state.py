"""What the routes share: settings, the model, the pi worker threads and the shutting-down flag."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from model_api import metrics
from model_api.errors import NotReady
from model_api.model import OnnxModel, Prediction
from model_api.settings import Settings

# Batches up to this size run on the event loop: a few microseconds of onnxruntime cost less than the
# hop to a worker thread. Larger ones go to the pool (onnxruntime releases the GIL while it runs).
INLINE_PREDICT_ROWS = 512
T = TypeVar("T")


@dataclass
class ServiceState:
    settings: Settings
    model: OnnxModel
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-api-worker")
    )
    shutting_down: bool = False
    _predictions: metrics.PredictionCounter | None = None
    _submitted: set[Future] = field(default_factory=set)

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
            assert self.model.metadata is not None
            self._predictions = metrics.PredictionCounter(self.model.metadata.class_names)
            metrics.MODEL_INFO.labels(self.model.name, self.model.metadata.version).set(1)
            metrics.MODEL_LOAD_SECONDS.set(self.model.load_seconds or 0.0)
        self._update_ready_gauge()
        return loaded

    def begin_shutdown(self) -> None:
        """Readiness turns 503 from now on; requests keep being served until the server stops."""
        self.shutting_down = True
        self._update_ready_gauge()

    def require_model(self) -> OnnxModel:
        if not self.model.ready:
            raise NotReady(self.not_ready_reason())
        return self.model

    async def predict(self, batch: np.ndarray) -> Prediction:
        model = self.require_model()
        if len(batch) <= INLINE_PREDICT_ROWS:
            prediction = model.predict(batch)
        else:
            prediction = await self.run_in_worker(model.predict, batch)
        assert self._predictions is not None
        self._predictions.add(prediction.labels)
        return prediction

    async def run_in_worker(self, function: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work on the worker threads, keeping the event loop free for other requests."""
        future = self.executor.submit(function, *args)
        self._submitted.add(future)
        future.add_done_callback(self._submitted.discard)
        return await asyncio.wrap_future(future)

    def busy_workers(self) -> int:
        """Worker tasks still computing (a cancelled request cannot stop a thread that already started)."""
        return sum(1 for future in list(self._submitted) if not future.done())

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _update_ready_gauge(self) -> None:
        metrics.MODEL_READY.set(1 if self.ready else 0)
