"""A root middleware of the api-server: our connection form's saves and tests, normalised.

Airflow's connection form cannot show fields by sign-in kind nor leave a choice to the preset, and
its list's *Test* button sends port 0 for a connection saved without a port (3.3's test endpoint
then refuses with a bare "Bad Request"). This middleware rewrites the JSON body of
``POST /api/v2/connections``, ``PATCH /api/v2/connections/{id}`` and ``POST /api/v2/connections/test``
for connections of our type only (``imap_intake.imap.form``); every other request passes untouched.
"""

from __future__ import annotations

import json
import re
from typing import Any

from imap_intake.imap.form import normalise_request

_CONNECTION_WRITE = re.compile(r"/api/v2/connections(/[^/]+)?$")
_MAX_BODY = 1 << 20  # a connection is a few KB; anything larger passes untouched


class ConnectionFormMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" else ""
        match = _CONNECTION_WRITE.search(path) if scope.get("method") in {"POST", "PATCH"} else None
        if match is None:
            await self.app(scope, receive, send)
            return
        chunks, more, size = [], True, 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        body = b"".join(chunks)
        rewritten = _rewrite(body, testing=match.group(1) == "/test") if size <= _MAX_BODY else None
        if rewritten is not None:
            body = rewritten
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _rewrite(body: bytes, *, testing: bool) -> bytes | None:
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    normal = normalise_request(request, testing=testing)
    return None if normal is None else json.dumps(normal).encode()


def _replay(messages: list[Any], receive: Any) -> Any:
    pending = list(messages)

    async def replay() -> Any:
        return pending.pop(0) if pending else await receive()

    return replay
