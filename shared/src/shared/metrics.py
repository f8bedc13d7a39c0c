"""Prometheus metrics every service shares: events produced, HTTP requests.

Labels are bounded enumerations (topic, event type, outcome, route template, status code):
never a phone number, a message body or a patient id.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EVENTS_PRODUCED = Counter(
    "events_produced_total",
    "Events published to Kafka, by topic, event type and outcome (ok or error).",
    ["topic", "type", "outcome"],
)
PRODUCE_LATENCY = Histogram(
    "events_produce_seconds",
    "Time from send to the broker's acks=all acknowledgement.",
    ["topic"],
)
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
)


def _route(scope: Scope) -> str:
    """The matched route's template (``/v1/patients/{patient_id}/…``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class HttpMetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI, streams untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = _route(scope)
            method = str(scope.get("method", ""))
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - start)
