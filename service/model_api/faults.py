"""Rehearsal-only faults: a slower or failing model service, so a canary rehearsal can prove that analysis
aborts a bad candidate. Off by default (both settings 0); meant only for rehearsals and tests, never for a
real deployment.

`MODEL_API_REHEARSAL_LATENCY_MS` delays every prediction response; `MODEL_API_REHEARSAL_ERROR_RATE` answers
that fraction of prediction requests with a 500. Health, readiness and metrics are never touched, so the
pod stays ready and keeps being scraped, as a subtly bad model would in a cluster.
"""

from __future__ import annotations

import asyncio
import random

from model_api.errors import ApiError
from model_api.settings import Settings, SettingsError, env_name


class InjectedFault(ApiError):
    """The 5xx a rehearsal asked for; counted in the metrics like any other server error."""

    status = 500


class Faults:
    """Applied before the handler of every prediction route (App._respond)."""

    def __init__(self, error_rate: float, latency_ms: float, rng: random.Random | None = None) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise SettingsError(f"{env_name('rehearsal_error_rate')}={error_rate} must be between 0 and 1")
        self.error_rate = error_rate
        self.latency_s = latency_ms / 1000.0
        self._rng = rng or random.Random()

    async def inject(self) -> None:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.error_rate and self._rng.random() < self.error_rate:
            raise InjectedFault("rehearsal fault: MODEL_API_REHEARSAL_ERROR_RATE answered this request 500")


def from_settings(settings: Settings) -> Faults | None:
    """The faults the settings ask for, or None (the default: no cost on the request path)."""
    if not settings.rehearsal_error_rate and not settings.rehearsal_latency_ms:
        return None
    return Faults(settings.rehearsal_error_rate, settings.rehearsal_latency_ms)
