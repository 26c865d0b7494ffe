"""The Airflow plugin (entry point ``airflow.plugins``): the status page and its menu entry.

It is registered through the package's entry point, not the plugins folder, which Airflow is told
to ignore for ``imap_intake`` (plugins/.airflowignore): there every module would be imported as a
top-level plugin module. Airflow loads plugins in every process, task processes included, so this
module stays light: the FastAPI app (FastAPI, Jinja2, the ledger queries) is built on the first
request the api-server routes to it.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from imap_intake.operators.links import STATUS_PREFIX
from imap_intake.ui.connection_form import ConnectionFormMiddleware


class StatusPageApp:
    """An ASGI app that builds ``imap_intake.ui.app`` when it is first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from imap_intake.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class ImapIntakePlugin(AirflowPlugin):
    name = "imap_intake"
    fastapi_apps = [{"app": StatusPageApp(), "url_prefix": STATUS_PREFIX, "name": "imap-intake status"}]
    # Relative href: the UI resolves it against its own base URL (and shows it in a frame).
    # Our connection form's saves and tests, normalised (ui/connection_form.py): only our connection type.
    fastapi_root_middlewares = [{"middleware": ConnectionFormMiddleware, "args": [], "kwargs": {}, "name": "imap-intake connection form"}]
    external_views = [{"name": "Mail intake", "href": STATUS_PREFIX.lstrip("/") + "/", "destination": "nav",
                       "category": "browse", "url_route": "mail-intake"}]
