"""The status page in the Airflow UI, through a real api-server with a real login, and in Chromium.

The demo mailbox (8 messages) is polled and imported with the `imap-intake` command into a ledger
of its own; the api-server (simple auth manager, one user, a known password) serves Airflow's UI
and our plugin. Screenshots land in $IMAP_INTAKE_ARTIFACTS (default .local/artifacts/ui).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.airflow_cluster import VENV_BIN, AirflowCluster
from devstack.samples import demo_mailbox
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
PASSWORD = f"ui-{secrets.token_hex(6)}"
ARTIFACTS = Path(os.environ.get("IMAP_INTAKE_ARTIFACTS") or ROOT / ".local" / "artifacts" / "ui")


@dataclass
class UiStack:
    airflow: AirflowCluster
    env: dict[str, str]
    ledger_dsn: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.airflow.api_port}"


@pytest.fixture(scope="module")
def ui(postgres, dovecot, tmp_path_factory) -> Iterator[UiStack]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ui")
    user = f"ui{secrets.token_hex(3)}@example.test"
    dovecot.add_user(user)
    from devstack.dovecot import append_messages

    append_messages(dovecot, user, demo_mailbox(user))
    ledger = f"ui_ledger_{secrets.token_hex(3)}"
    postgres.create_database(ledger)
    assert dovecot.tls_files is not None
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = {
        "IMAP_INTAKE_WORKSPACES_FILE": str(ROOT / "include" / "workspaces.yaml"),  # the demo workspace itself
        "IMAP_INTAKE_STORAGE_BASE": f"file://{root}/store",
        "AIRFLOW_CONN_IMAP_INTAKE_DB": json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port,
                                                   "login": postgres.user, "password": postgres.password, "schema": ledger}),
        "AIRFLOW_CONN_IMAP_DEMO": json.dumps({"conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port,
                                              "login": user, "password": dovecot.password,
                                              "extra": {"ca_cert": dovecot.tls_files.ca_pem, "default_supplier": "Unassigned supplier"}}),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    airflow = AirflowCluster.create(root / "airflow", postgres.create_database(f"airflow_ui_{secrets.token_hex(3)}"),
                                    extra_env=env, components=("api-server",))
    for command in (["poll", "demo"], ["import", "demo"]):
        done = subprocess.run([str(VENV_BIN / "imap-intake"), *command], env=airflow.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    airflow.migrate()
    airflow.start()
    try:
        yield UiStack(airflow, env, postgres.dsn.rsplit("/", 1)[0] + "/" + ledger)
    finally:
        airflow.stop()


def _get(url: str, accept: str) -> tuple[int, str, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers={"Accept": accept}), timeout=30) as response:
            return response.status, response.headers.get("Location", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", ""), exc.read().decode()


def test_the_status_page_needs_a_login(ui: UiStack) -> None:
    status, location, _ = _get(f"{ui.url}/imap-intake/workspaces/demo", "text/html")
    assert status == 303 and "/auth/login" in location and "next=" in location  # a browser is sent to the login
    status, _, body = _get(f"{ui.url}/imap-intake/workspaces/demo", "application/json")
    assert status == 401 and "demo" not in body  # a script gets 401 and no data


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is missing: make test installs it (WITH_BROWSER=1 scripts/bootstrap.sh)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def page(browser, request):  # type: ignore[no-untyped-def]
    """A fresh page; on failure its screenshot is kept as failed-<test>.png."""
    opened = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield opened
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        opened.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
    opened.close()


def _login(page, ui: UiStack, target: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{ui.url}{target}")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{target}")


def test_a_logged_in_user_sees_every_message_with_its_reason_and_the_orders(ui: UiStack, page) -> None:  # type: ignore[no-untyped-def]
    _login(page, ui, "/imap-intake/")
    row = page.locator("table.workspaces tr", has_text="demo")
    assert "Demo mailbox" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "01-index.png"), full_page=True)
    row.get_by_role("link", name="demo").click()
    page.wait_for_url("**/imap-intake/workspaces/demo")
    messages = page.locator("table.messages tr").filter(has=page.locator("td"))
    shown = sorted((int(r.locator("td").nth(0).inner_text()), r.locator("td").nth(4).inner_text().strip(),
                    r.locator("td").nth(5).inner_text().strip()) for r in messages.all())
    import psycopg

    with psycopg.connect(ui.ledger_dsn) as ledger:
        recorded = sorted(ledger.execute("SELECT uid, outcome, reason FROM imap_intake.message WHERE workspace='demo'").fetchall())
        order_count = ledger.execute("SELECT count(*) FROM imap_intake.purchase_order WHERE workspace='demo'").fetchone()
    assert len(shown) == 8 and shown == [(int(u), o, r) for u, o, r in recorded]  # every message, its outcome and why
    orders = page.locator("h2:has-text('Recent purchase orders') + table tr").filter(has=page.locator("td"))
    assert order_count is not None and orders.count() == order_count[0] == 6
    page.screenshot(path=str(ARTIFACTS / "02-workspace.png"), full_page=True)
    skipped = messages.filter(has_not_text="imported").first
    reason = skipped.locator("td.reason").inner_text()
    assert reason.strip()
    skipped.locator("td").nth(3).get_by_role("link").click()
    page.wait_for_url("**/messages/*")
    assert reason.strip() in page.locator("dl.facts").inner_text()
    page.screenshot(path=str(ARTIFACTS / "03-message.png"), full_page=True)
    page.go_back()
    imported = messages.filter(has_text="imported").first
    imported.locator("td").nth(3).get_by_role("link").click()
    page.wait_for_url("**/messages/*")
    assert page.locator("table.attachments tr").filter(has=page.locator("td")).count() >= 1
    assert "file://" in page.locator("table.attachments").inner_text()
    page.screenshot(path=str(ARTIFACTS / "04-message-attachments.png"), full_page=True)
    page.get_by_role("link", name="poll").first.click()
    page.wait_for_url("**/polls/*")
    assert page.locator("table.messages tr").filter(has=page.locator("td")).count() == 8


def test_the_menu_shows_the_page_inside_airflow_and_the_pem_field_is_multiline(ui: UiStack, page) -> None:  # type: ignore[no-untyped-def]
    _login(page, ui, "/plugin/mail-intake")
    frame = page.frame_locator("iframe")
    frame.locator("table.workspaces").wait_for()
    assert "demo" in frame.locator("table.workspaces").inner_text()
    page.screenshot(path=str(ARTIFACTS / "05-inside-airflow.png"), full_page=True)
    page.goto(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_role("combobox").first.click()
    page.get_by_role("option", name="IMAP mailbox (imap-intake)", exact=True).click()
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    # The field of the row labelled "CA certificate (PEM)": a textarea, not a one-line input.
    field = page.locator("xpath=//*[normalize-space(text())='CA certificate (PEM)']/ancestor::*[.//textarea or .//input][1]")
    field = field.locator("textarea, input").first
    field.scroll_into_view_if_needed()
    assert field.evaluate("e => e.tagName") == "TEXTAREA"
    field.fill("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
    assert field.input_value().count("\n") == 2  # the newlines of a pasted PEM survive
    page.screenshot(path=str(ARTIFACTS / "06-connection-form.png"), full_page=True)


def _add_connection(page, ui: UiStack, conn_id: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    """Add Connection the documented way: the type, an id, the mailbox and a secret, the preset; Host,
    Port and Sign-in left blank."""
    page.goto(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_role("combobox").first.click()
    page.get_by_role("option", name="IMAP mailbox (imap-intake)", exact=True).click()
    page.get_by_label("Connection ID").fill(conn_id)
    page.get_by_label("Username (mailbox address)").fill("orders@example.com")
    page.get_by_label("Password / app password").fill("An-App-Password-42")
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    preset = page.locator("xpath=//*[normalize-space(text())='Provider preset']/ancestor::*[.//input][1]").locator("input").first
    preset.click()
    page.get_by_role("option", name=provider, exact=True).click()
    page.get_by_role("button", name="Save").click()
    page.locator("tr", has_text=conn_id).wait_for()


def _saved(ui: UiStack, conn_id: str) -> dict[str, object]:
    done = ui.airflow.airflow("connections", "get", conn_id, "-o", "json")
    (found,) = [c for c in json.loads(done.stdout[done.stdout.index("["):]) if c["conn_id"] == conn_id]
    return found  # type: ignore[no-any-return]


def test_a_preset_connection_with_blank_host_and_port_tests_with_our_diagnosis(ui: UiStack, page) -> None:  # type: ignore[no-untyped-def]
    _login(page, ui, "/connections")
    _add_connection(page, ui, "orders_gmail", "gmail")
    saved = _saved(ui, "orders_gmail")
    extra = saved["extra_dejson"]
    assert saved["host"] in (None, "") and saved["port"] in (None, "", "None")
    # (the CLI prints every extra value as text)
    assert isinstance(extra, dict) and {k: str(v) for k, v in extra.items()} == {
        "provider": "gmail", "auth": "password", "validate_certificate": "True", "folder": "INBOX", "timeout": "30"}, extra
    page.locator("tr", has_text="orders_gmail").get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="imap.gmail.com").first  # our diagnosis names the preset's host
    toast.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "07-test-gmail-preset.png"), full_page=True)
    text = page.get_by_role("status").all_inner_texts()
    assert not any("Bad Request" in t for t in text), text
    assert "An-App-Password-42" not in page.content()


def test_the_microsoft_365_preset_saves_app_sign_in(ui: UiStack, page) -> None:  # type: ignore[no-untyped-def]
    _login(page, ui, "/connections")
    _add_connection(page, ui, "orders_m365", "office365")
    extra = _saved(ui, "orders_m365")["extra_dejson"]
    assert isinstance(extra, dict)
    assert extra["auth"] == "microsoft_app" and extra["provider"] == "office365"
    assert not {k for k, v in extra.items() if v in (None, "None", "")}  # nothing blank saved
    page.locator("tr", has_text="orders_m365").get_by_role("button", name="Test Connection").click()
    page.get_by_role("status").filter(has_text="tenant_id").first.wait_for(timeout=60_000)  # app sign-in: asks for the tenant
    page.screenshot(path=str(ARTIFACTS / "08-test-m365-preset.png"), full_page=True)


def test_an_unknown_outcome_filter_is_explained_not_ignored(ui: UiStack, page) -> None:  # type: ignore[no-untyped-def]
    _login(page, ui, "/imap-intake/workspaces/demo?outcome=bogus")
    body = page.locator("body").inner_text()
    assert "There is no outcome 'bogus'" in body and "not_routed" in body


def test_the_workspace_page_leads_to_a_diagnosis_of_the_mailbox(ui: UiStack, page) -> None:  # type: ignore[no-untyped-def]
    """"It imports nothing" has an answer one click from the workspace: every folder, and why the rest is not imported."""
    _login(page, ui, "/imap-intake/workspaces/demo")
    page.get_by_role("link", name="Diagnose the mailbox").click()
    page.wait_for_url("**/workspaces/demo/diagnose")
    assert "received no mail in the last 30 days" in page.locator("body").inner_text()  # the demo mail is from 2026-11-02
    page.get_by_role("link", name="90").click()
    page.wait_for_url("**/diagnose?days=90")
    row = page.locator("tr.configured")
    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
    assert cells[0].startswith("INBOX") and cells[1:5] == ["8", "8", "8", "6"]  # 6 orders: as many as the poll imported
    why = cells[5]
    assert "1 have no attachment" in why and "1 have attachments of types the workspace does not accept (docx ×1)" in why
    assert "1 carry an attachment whose type only its bytes tell" in why  # the winmail.dat
    page.screenshot(path=str(ARTIFACTS / "09-diagnose.png"), full_page=True)
