"""The FastAPI application factory.

One app serves every HTTP surface of landed, each a router in its own module:

- ``landed.api.v1``: the REST API under ``/v1`` (bearer tokens);
- ``landed.api.hooks``: provider webhooks under ``/v1/hooks/{provider}``;
- ``landed.api.metrics``: ``/healthz`` and ``/metrics``;
- ``landed.web.track``: the open pixel, acknowledgement and click-through
  endpoints under ``/t`` (HMAC-verified tokens, no login);
- ``landed.web.dashboard``: the dashboard (login required).

Nothing is global: the settings, the ledger and the clock live on
``app.state`` and reach handlers through the dependencies in
``landed.api.deps``, so tests build an app per database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from landed.clock import Clock, SystemClock
from landed.config import Settings
from landed.store import Database


def create_app(
    settings: Settings,
    db: Database | None = None,
    *,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the app. When ``db`` is not given, the app opens (and owns) one."""
    from landed import __version__
    from landed.api import hooks, metrics, v1
    from landed.web import dashboard, track

    owned = db is None
    database = db if db is not None else Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            database.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="landed",
        version=__version__,
        summary="Accountable notification email: every (notification, recipient) tracked "
        "until it is proven landed, or alerted on.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.clock = clock or SystemClock()
    app.state.keyring = settings.keyring()
    for module in (v1, hooks, metrics, track, dashboard):
        module.install(app)
    return app
