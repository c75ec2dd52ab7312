"""``/healthz`` and ``/metrics`` (Prometheus text format). (being written)

Each app has its own ``CollectorRegistry`` (``app.state.metrics``), never
prometheus-client's global one, so that several apps (tests, or one process
serving twice) never clash.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry, Counter

router = APIRouter()


class Metrics:
    """The app's in-process counters. Ledger-wide figures are read from the
    database at scrape time, so that every host of a shared ledger reports them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        #: Provider webhook requests by provider and result
        #: (``accepted``, ``unauthorized``, ``forbidden``, ``bad_request``).
        self.webhook_requests = Counter(
            "landed_webhook_requests",
            "Provider webhook requests, by provider and result.",
            ["provider", "result"],
            registry=self.registry,
        )
        #: Tracking endpoint hits by kind (``open``, ``ack``, ``click``) and result
        #: (``counted``, ``machine``, ``invalid``).
        self.tracking_hits = Counter(
            "landed_tracking_hits",
            "Tracking endpoint hits, by kind and result.",
            ["kind", "result"],
            registry=self.registry,
        )


def get_metrics(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


def install(app: FastAPI) -> None:
    app.state.metrics = Metrics()
    app.include_router(router)
