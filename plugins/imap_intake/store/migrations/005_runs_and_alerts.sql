-- Which Airflow run made a poll (its run_id), so the status page links a poll and its messages to
-- the run in the Airflow UI and a failed run's verdict names the poll that failed.
ALTER TABLE imap_intake.poll ADD COLUMN run_id text;
CREATE INDEX poll_run ON imap_intake.poll (workspace, run_id) WHERE run_id IS NOT NULL;
CREATE INDEX poll_latest ON imap_intake.poll (workspace, mode, status, id);

-- Alerts raised for a workspace, once each: a 'stale' alert per episode without a successful poll
-- (episode = the id of the last successful poll before it, 0 when there was none).
CREATE TABLE imap_intake.alert (
    id         bigserial   PRIMARY KEY,
    workspace  text        NOT NULL,
    kind       text        NOT NULL,
    episode    bigint      NOT NULL,
    raised_at  timestamptz NOT NULL DEFAULT now(),
    detail     text        NOT NULL,
    UNIQUE (workspace, kind, episode)
);
