"""``python -m devstack demo|airflow|down|up``: the README's demo and its companions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from devstack.stack import DEMO_USER, LOCAL, ROOT, Stack

VENV_BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str], *, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, text=True, capture_output=True, cwd=ROOT)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"command failed: {' '.join(args[:4])} (exit {result.returncode})")
    if not quiet:
        sys.stdout.write(result.stdout)
    return result


def full_env(stack: Stack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stack.env)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


def prepare_airflow(stack: Stack) -> dict[str, str]:
    env = full_env(stack)
    marker = Path(stack.env["AIRFLOW_HOME"]) / ".migrated"
    database = stack.env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not marker.exists() or marker.read_text() != database:
        print("demo: preparing Airflow's metadata database in the stack's Postgres (once)...")
        Path(stack.env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        _run([str(VENV_BIN / "airflow"), "db", "migrate"], env, quiet=True)
        marker.write_text(database)
    for conn_id, conn in json.loads(stack.env.get("IMAP_INTAKE_DEMO_CONNECTIONS", "{}")).items():
        _run([str(VENV_BIN / "airflow"), "pools", "set", f"imap_intake__{conn_id}", "4",
              "IMAP sessions to the demo mail host"], env, quiet=True)
        # In the metadata database, as a user would make them in Admin > Connections (visible, editable).
        subprocess.run([str(VENV_BIN / "airflow"), "connections", "delete", conn_id], env=env, capture_output=True, cwd=ROOT)
        _run([str(VENV_BIN / "airflow"), "connections", "add", conn_id, "--conn-json", json.dumps(conn)], env, quiet=True)
    return env


def demo() -> None:
    from devstack.dovecot import append_messages
    from devstack.samples import demo_mailbox

    stack = Stack.up()
    print(f"demo: Postgres on 127.0.0.1:{stack.postgres.port}, Dovecot on 127.0.0.1:{stack.dovecot.tls_port} "
          "(implicit TLS, certificate from a throwaway CA the client validates), OAuth2 token server on "
          f"127.0.0.1:{stack.oauth.port}")
    seeded = LOCAL / ".seeded"
    if not seeded.exists() or seeded.read_text() != str(stack.dovecot.root):
        append_messages(stack.dovecot, DEMO_USER, demo_mailbox(DEMO_USER))
        seeded.write_text(str(stack.dovecot.root))
    env = prepare_airflow(stack)
    print("demo: Test connection (imap-intake check imap_demo), a password connection:")
    _run([str(VENV_BIN / "imap-intake"), "check", "imap_demo"], env)
    print("demo: the same mailbox through OAuth2 as Microsoft 365 does it (imap-intake check imap_demo_oauth):")
    print("      an Entra-style app (client credentials, msal) against the stack's token server, XOAUTH2/OAUTHBEARER to Dovecot")
    _run([str(VENV_BIN / "imap-intake"), "check", "imap_demo_oauth"], env)
    print("demo: running the workspace DAG once: airflow dags test imap_intake__demo")
    started = time.monotonic()
    result = subprocess.run([str(VENV_BIN / "airflow"), "dags", "test", "imap_intake__demo"], env=env, text=True,
                            capture_output=True, cwd=ROOT)
    log = LOCAL / "demo-dag-test.log"
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.stderr.write((result.stdout + result.stderr)[-6000:])
        raise SystemExit(f"demo: the DAG run failed; full log in {log.relative_to(ROOT)}")
    print(f"demo: DAG run finished in {time.monotonic() - started:.0f}s (log: {log.relative_to(ROOT)})")
    summary(stack, env)


def summary(stack: Stack, env: dict[str, str]) -> None:
    from imap_intake.store import db, report

    with db.connect_dsn(stack.postgres.dsn) as connection:
        rows = report.status(connection, "demo")
        stored = report.attachments(connection, "demo")
        others = report.skipped(connection, "demo")
        orders = connection.execute(
            "SELECT o.format, o.order_number, o.supplier, count(l.line_no), o.needs_review, o.relation FROM imap_intake.purchase_order o "
            "LEFT JOIN imap_intake.purchase_order_line l ON l.purchase_order = o.id WHERE o.workspace='demo' "
            "GROUP BY o.id ORDER BY o.id"
        ).fetchall()
    row = rows[0] if rows else {"outcomes": {}, "imports": {}}
    seen = sum(row["outcomes"].values())
    print("\n=== imap-intake demo: workspace 'demo' ===")
    print(f"messages seen: {seen}  ({', '.join(f'{k} {v}' for k, v in row['outcomes'].items())})")
    print(f"attachments stored: {len(stored)}  (imports: {', '.join(f'{k} {v}' for k, v in row['imports'].items()) or 'none'})")
    for item in stored:
        print(f"  UID {item['uid']:>2}  {item['filename']:<34} {item['kind']:<5} {item['size']:>6} B  supplier: {item['supplier']}  -> {item['import_status']}")
    print("skipped, with reasons:")
    for item in others:
        print(f"  UID {item['uid']:>2}  {item['outcome']:<24} {item['subject'][:40]!r}: {item['reason']}")
    print(f"purchase orders: {len(orders)}")
    for fmt, number, supplier, lines, review, relation in orders:
        linked = f"  {relation.replace('_', ' ')} of the first {number}" if relation else ""
        print(f"  {fmt:<4} {number or '(no number)':<12} {supplier:<24} {lines} line(s){'  needs review' if review else ''}{linked}")
    print("\nNext:")
    print("  make airflow   # the Airflow UI on this stack: http://127.0.0.1:8080, Browse > Mail intake (password in .local/airflow/simple_auth_manager_passwords.json.generated)")
    print("  make demo      # run again: nothing is imported twice")
    print("  make down      # stop Postgres, Dovecot, the token server and Airflow; nothing of ours keeps running")
    print("  source .local/env.sh && imap-intake status demo")


def airflow() -> None:
    stack = Stack.up()
    stack.stop_airflow()
    env = prepare_airflow(stack)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    out = open(LOCAL / "airflow-standalone.log", "w")  # noqa: SIM115 - handed to the daemon
    process = subprocess.Popen([str(VENV_BIN / "airflow"), "standalone"], env=env, cwd=ROOT, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    stack.airflow_pgid = process.pid
    stack.save()
    print("airflow: starting 'airflow standalone' on http://127.0.0.1:8080 (log: .local/airflow-standalone.log)")
    print("airflow: user 'admin', password in .local/airflow/simple_auth_manager_passwords.json.generated")
    print("airflow: switch imap_intake__demo on, then 'make deliver': the new order is imported within seconds (push, IMAP IDLE)")
    print("airflow: 'make down' stops it together with Postgres and Dovecot")


def deliver() -> None:
    """Append one purchase order to the demo mailbox now (push: the running Airflow imports it within seconds)."""
    import datetime as dt

    from devstack.dovecot import append_messages
    from devstack.samples import PO_CSV_EN, message

    stack = Stack.load()
    if stack is None or not stack.running():
        raise SystemExit("deliver: the demo stack is not running: make demo, then make airflow")
    number = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    order = message(sender="buyer@acme-retail.example", to=DEMO_USER, subject=f"Order PO-{number}",
                    attachments=[(f"PO-{number}.csv", "text/csv", PO_CSV_EN.replace(b"PO-7731", f"PO-{number}".encode()))])
    append_messages(stack.dovecot, DEMO_USER, [(order.as_bytes(), None)])
    print(f"deliver: appended 'Order PO-{number}' to {DEMO_USER}. With imap_intake__demo switched on, the triggerer's IDLE "
          "session sees it at once: watch the DAG's runs, or Browse > Mail intake > demo")


def down() -> None:
    from devstack import leftovers

    interrupted = leftovers.stop_all()
    if interrupted:
        print(f"down: stopped what interrupted runs (make scale, benchmarks) left: {', '.join(interrupted)}")
    stack = Stack.load()
    if stack is None:
        if not interrupted:
            print("down: nothing running")
        return
    stack.down()
    (LOCAL / ".seeded").unlink(missing_ok=True)
    print("down: stopped Airflow, Dovecot, the token server and Postgres")


def main(argv: list[str]) -> None:
    command = argv[0] if argv else "demo"
    {"demo": demo, "airflow": airflow, "deliver": deliver, "down": down, "up": lambda: print(Stack.up().env)}[command]()


if __name__ == "__main__":
    main(sys.argv[1:])
