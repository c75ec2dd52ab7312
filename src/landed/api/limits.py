"""A cap on request bodies under ``/v1/``, so a huge upload cannot exhaust memory.

FastAPI reads a JSON body whole before validating it. ``BodyLimit`` refuses a
body whose declared ``Content-Length`` is over the cap before a byte is read,
and stops a chunked body as soon as it passes the cap; both answer ``413`` as
the API's JSON error. It is a pure ASGI wrapper that only looks at requests
under its prefix (tracking endpoints and the dashboard take no large bodies).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from landed.api.errors import error_response

#: The bodies of a notification (``text`` and ``html``) may be 10 MiB each
#: (``landed.compose.request.MAX_BODY``), and JSON escaping can double them.
MAX_REQUEST_BYTES = 48 * 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int, prefix: str) -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix

    def _message(self) -> str:
        return f"the request body is larger than {self.limit // (1024 * 1024)} MiB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            response = error_response(413, "too_large", self._message())
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised inside the request handler's body read: FastAPI lets an
                    # HTTPException through, and the API's handler answers it as JSON.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)
