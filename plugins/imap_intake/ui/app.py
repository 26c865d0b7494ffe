"""The status page: a FastAPI app the Airflow api-server mounts at ``/imap-intake``.

Airflow does not authenticate plugin apps, so every route here depends on Airflow's own
``get_user`` (the UI's ``_token`` cookie or a bearer token) and shows a workspace only to users
who may read its DAG. A browser without a session is sent to Airflow's login page. The pages
read the ledger through ``store.report`` and nothing else; nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from imap_intake.config import Workspace
from imap_intake.exceptions import ImapIntakeError
from imap_intake.operators.links import STATUS_PREFIX as PREFIX
from imap_intake.store import db, report
from imap_intake.ui import formats
from imap_intake.workspaces import read_workspaces, workspaces_file

log = logging.getLogger(__name__)

_templates = Environment(loader=PackageLoader("imap_intake.ui", "templates"), autoescape=select_autoescape(["html"]))
_templates.filters.update(utc=formats.utc, window=formats.window, account=formats.account, code_spans=formats.code_spans)


async def _user(request: Request) -> Any:
    """Airflow's own authentication (bearer token, else the UI's session cookie). Imported here, not
    at module level: Airflow loads plugins in every process, and only the api-server serves pages."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPBearer

    bearer = await HTTPBearer(auto_error=False)(request)
    return await get_user(request, None, bearer)


User = Annotated[Any, Depends(_user)]


def _may_read(user: Any, workspace: Workspace) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return bool(get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=workspace.dag_id), user=user))


def _render(template: str, request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
    base = request.scope.get("root_path", "") or PREFIX
    airflow = base[: -len(PREFIX)] if base.endswith(PREFIX) else ""
    html = _templates.get_template(template).render(base=base, airflow=airflow, **values)
    return HTMLResponse(html, status_code=status_code)


@contextmanager
def _ledger(workspace: Workspace) -> Iterator[psycopg.Connection]:
    with db.connect_dsn(db.dsn_for_connection(workspace.postgres_conn_id)) as connection:
        connection.read_only = True
        yield connection


def _problem(workspace: Workspace, exc: Exception) -> str:
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return f"The ledger in '{workspace.postgres_conn_id}' has no imap-intake tables yet: the first poll creates them."
    if isinstance(exc, ImapIntakeError):
        return str(exc)
    log.warning("status page: ledger of workspace %s unreadable: %s", workspace.slug, type(exc).__name__)
    return f"The ledger in '{workspace.postgres_conn_id}' could not be read ({type(exc).__name__}); see the api-server log."


def _workspaces(user: Any) -> tuple[list[Workspace], str | None]:
    try:
        found = read_workspaces()
    except ImapIntakeError as exc:
        return [], str(exc)
    return [w for w in found if _may_read(user, w)], None


def _workspace(user: Any, slug: str) -> Workspace:
    """The workspace ``slug``, asking the auth manager about its DAG only (not about every workspace)."""
    try:
        found = read_workspaces()
    except ImapIntakeError as exc:
        raise HTTPException(404, str(exc)) from exc
    for workspace in found:
        if workspace.slug == slug and _may_read(user, workspace):
            return workspace
    raise HTTPException(404, f"No workspace '{slug}' that you may read.")


def _one(user: Any, slug: str, query: Callable[[psycopg.Connection, str, int], dict[str, Any] | None], key: int,
         what: str) -> dict[str, Any]:
    """One message or poll of a workspace the user may read: 404 when there is none, 503 (with the
    reason) when the ledger cannot be read."""
    chosen = _workspace(user, slug)
    try:
        with _ledger(chosen) as connection:
            page = query(connection, slug, key)
    except Exception as exc:  # noqa: BLE001 - explained on the page
        raise HTTPException(503, _problem(chosen, exc)) from exc
    if page is None:
        raise HTTPException(404, f"Workspace '{slug}' has no {what} {key}.")
    return page


def create_app() -> FastAPI:
    app = FastAPI(title="imap-intake status", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _login_or_explain(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        if "text/html" in request.headers.get("accept", ""):
            return _render("error.html", request, exc.status_code, error=exc.detail)
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: User) -> HTMLResponse:
        found, error = _workspaces(user)
        summaries: dict[str, Any] = {}
        by_ledger: dict[str, list[Workspace]] = {}
        for workspace in found:
            by_ledger.setdefault(workspace.postgres_conn_id, []).append(workspace)
        for group in by_ledger.values():
            try:
                with _ledger(group[0]) as connection:
                    summaries.update(report.workspace_summaries(connection, [w.slug for w in group]))
            except Exception as exc:  # noqa: BLE001 - shown per workspace, the page still renders
                summaries.update({w.slug: {"outcomes": {}, "imports": {}, "last_poll": None, "error": _problem(w, exc)} for w in group})
        return _render("index.html", request, workspaces=found, summaries=summaries, error=error, source=str(workspaces_file()))

    @app.get("/workspaces/{slug}", response_class=HTMLResponse)
    def workspace(request: Request, user: User, slug: str, outcome: str | None = None) -> HTMLResponse:
        chosen = _workspace(user, slug)
        if outcome is not None and outcome not in report.OUTCOMES:
            raise HTTPException(400, f"There is no outcome '{outcome}'. Outcomes: {', '.join(report.OUTCOMES)}.")
        try:
            with _ledger(chosen) as connection:
                page = report.workspace_page(connection, slug, outcome=outcome)
        except Exception as exc:  # noqa: BLE001 - explained on the page
            return _render("workspace.html", request, 503, w=chosen, p={}, outcome=outcome, error=_problem(chosen, exc))
        return _render("workspace.html", request, w=chosen, p=page, outcome=outcome, error=None)

    @app.get("/workspaces/{slug}/messages/{message_id}", response_class=HTMLResponse)
    def message(request: Request, user: User, slug: str, message_id: int) -> HTMLResponse:
        page = _one(user, slug, report.message_page, message_id, "message")
        return _render("message.html", request, slug=slug, dag_id=f"imap_intake__{slug}", m=page["message"], attachments=page["attachments"],
                       skipped=page["skipped_parts"], orders=page["orders"])

    @app.get("/workspaces/{slug}/polls/{poll_id}", response_class=HTMLResponse)
    def poll(request: Request, user: User, slug: str, poll_id: int) -> HTMLResponse:
        page = _one(user, slug, report.poll_page, poll_id, "poll")
        return _render("poll.html", request, slug=slug, dag_id=f"imap_intake__{slug}", r=page["poll"], messages=page["messages"])

    @app.get("/workspaces/{slug}/diagnose", response_class=HTMLResponse)
    def diagnose(request: Request, user: User, slug: str, days: int = 30) -> HTMLResponse:
        """``imap-intake diagnose`` in the browser: the mailbox surveyed now, read-only (a few seconds)."""
        from imap_intake.service.survey import survey_workspace
        from imap_intake.survey import VERDICTS, conclusions

        chosen = _workspace(user, slug)
        if not 1 <= days <= 366:
            raise HTTPException(400, f"days must be between 1 and 366, not {days}.")
        try:
            result = survey_workspace(slug, now=dt.datetime.now(dt.UTC), days=days)
        except ImapIntakeError as exc:
            return _render("diagnose.html", request, 503, w=chosen, s=None, error=str(exc), days=days)
        return _render("diagnose.html", request, w=chosen, s=result, error=None, days=days, verdicts=VERDICTS,
                       conclusions=conclusions(result))

    return app
