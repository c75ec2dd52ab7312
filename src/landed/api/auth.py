"""Bearer API tokens (RFC 6750) for the ``/v1`` routes and ``/metrics``.

A dependency of each router that needs it, not app-wide middleware: provider
webhooks, tracking endpoints and the dashboard have their own authentication.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from landed.api.deps import get_clock, get_db
from landed.api.errors import ApiError
from landed.store.apitokens import ApiTokenView, needs_touch, touch_token, verify_token

# auto_error=False: a missing header gets our JSON 401, not FastAPI's 403.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token from `landed tokens create NAME`: `Authorization: Bearer ldt_...`",
)


def _unauthorized(message: str, *, invalid: bool) -> ApiError:
    # RFC 6750 §3: a challenge on every 401; error="invalid_token" once a token was presented.
    challenge = 'Bearer realm="landed"' + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiTokenView:
    """The caller's active API token; 401 otherwise."""
    if credentials is None:
        raise _unauthorized(
            "an API token is required: Authorization: Bearer <token>", invalid=False
        )
    db = get_db(request)
    with db.read() as conn:
        token = verify_token(conn, credentials.credentials.strip())
    if token is None:
        raise _unauthorized("the API token is not valid (unknown or revoked)", invalid=True)
    now = get_clock(request).now()
    if needs_touch(token, now):
        with db.write() as conn:
            touch_token(conn, token.id, now=now)
    request.state.api_token = token.name
    return token


ApiToken = Annotated[ApiTokenView, Depends(require_token)]
