-- The last run a workspace's idle check ended in the triggerer (no new mail, nothing to import, or a
-- backfill window already scanned): no poll row is written for such a run, so this row is what says
-- the mailbox was reached and found quiet (the status page's "last checked", the stale alert's clock).
CREATE TABLE imap_intake.idle_check (
    workspace   text        PRIMARY KEY,
    account     text        NOT NULL,
    folder      text        NOT NULL,
    checked_at  timestamptz NOT NULL,
    uidvalidity bigint,
    uidnext     bigint,
    run_id      text,
    reason      text        NOT NULL
);
