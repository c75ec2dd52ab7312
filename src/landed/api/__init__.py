"""HTTP: the REST API, provider webhooks, tracking endpoints and the dashboard,
served by one FastAPI application (``create_app``)."""

from __future__ import annotations

from landed.api.app import create_app

__all__ = ["create_app"]
