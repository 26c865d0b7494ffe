-- What a backfill sweep read: [since, until) of a folder, under which rules. Later backfill runs
-- whose window lies inside a fresh scan made under the same rules finish without an IMAP session.
CREATE TABLE imap_intake.backfill_scan (
    id          bigserial   PRIMARY KEY,
    workspace   text        NOT NULL,
    account     text        NOT NULL,
    folder      text        NOT NULL,
    uidvalidity bigint      NOT NULL,
    since       timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    rules       text        NOT NULL,
    poll_id     bigint,
    scanned_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backfill_scan_lookup ON imap_intake.backfill_scan (workspace, account, folder, scanned_at);
ALTER TABLE imap_intake.poll ADD COLUMN since timestamptz;
ALTER TABLE imap_intake.poll ADD COLUMN until timestamptz;
