"""The rehearsal's locust users: the project's classify user, once without and once with the canary header,
and a listener that records which slot and model version answered each request.

The version comes from the service's `X-Model-Version` response header; the slot from the address nginx
proxied to (`X-Rehearsal-Upstream`), so an error response that carries no version is still attributed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from locust.env import Environment

from loadtest.canary.nginx import UPSTREAM_HEADER
from loadtest.canary.share import HEADER, WEIGHTED, Answer
from loadtest.load.users import ClassifyUser, pacing

VERSION_HEADER = "X-Model-Version"


class AnswerLog:
    """Collects an Answer per request from locust's request event (attached once per Environment)."""

    def __init__(self, slot_of_address: Mapping[str, str]) -> None:
        self.slot_of_address = dict(slot_of_address)
        self.answers: list[Answer] = []
        self.missing_version_ok = 0  # successful answers without X-Model-Version: a contract violation
        self.origin = time.time()  # the load's start (set again just before it): answers count from here
        self._attached: set[int] = set()

    def attach(self, environment: Environment) -> None:
        if id(environment) not in self._attached:
            self._attached.add(id(environment))
            environment.events.request.add_listener(self.on_request)

    def on_request(
        self, response: Any = None, context: Mapping[str, Any] | None = None, exception: Any = None,
        response_time: float = 0.0, start_time: float | None = None, **_: Any,
    ) -> None:  # fmt: skip
        route = (context or {}).get("canary_route")
        if route is None:
            return
        now = time.time()
        started = now - response_time / 1000.0 if start_time is None else start_time
        headers = getattr(response, "headers", None) or {}
        version = headers.get(VERSION_HEADER)
        upstream = headers.get(UPSTREAM_HEADER) or ""
        slot = self.slot_of_address.get(upstream.split(",")[-1].strip())
        ok = exception is None
        if ok and not version:
            self.missing_version_ok += 1
        self.answers.append(
            Answer(now - self.origin, route, slot, version, ok, float(response_time), started - self.origin)
        )


def users(
    log: AnswerLog,
    *,
    header: tuple[str, str] | None,
    user_rps: float,
    header_weight: int,
    weighted_weight: int,
    api_key: str | None,
) -> list[type[ClassifyUser]]:
    """Two ClassifyUser subclasses: one without the canary header, one (if the router has a header rule)
    sending it; locust picks them in proportion to the weights."""

    class WeightedUser(ClassifyUser):
        weight = weighted_weight
        wait_time = pacing(user_rps)
        route: ClassVar[str] = WEIGHTED

        def on_start(self) -> None:
            log.attach(self.environment)

        def context(self) -> dict[str, Any]:
            return {"canary_route": self.route}

    WeightedUser.api_key = api_key
    chosen: list[type[ClassifyUser]] = [WeightedUser]
    if header is not None:
        name, value = header

        class HeaderUser(WeightedUser):
            weight = header_weight
            route: ClassVar[str] = HEADER

            # ApiUser sets default_headers (the API key) before the HTTP client copies them: add ours there.
            @property
            def default_headers(self) -> dict[str, str]:
                return self._headers

            @default_headers.setter
            def default_headers(self, value_: dict[str, str] | None) -> None:
                self._headers = {**(value_ or {}), name: value}

        chosen.append(HeaderUser)
    return chosen
