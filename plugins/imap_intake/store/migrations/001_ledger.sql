-- The intake ledger: what was seen in which mailbox, what was stored, where each poll stopped.
CREATE TABLE imap_intake.cursor (
    workspace     text        NOT NULL,
    account       text        NOT NULL,
    folder        text        NOT NULL,
    uidvalidity   bigint      NOT NULL,
    last_uid      bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, account, folder)
);

CREATE TABLE imap_intake.message (
    id            bigserial   PRIMARY KEY,
    workspace     text        NOT NULL,
    account       text        NOT NULL,
    folder        text        NOT NULL,
    uidvalidity   bigint      NOT NULL,
    uid           bigint      NOT NULL,
    fingerprint   text        NOT NULL,
    message_id    text,
    internal_date timestamptz,
    sender        text,
    subject       text,
    size          bigint,
    outcome       text        NOT NULL CHECK (outcome IN (
                      'imported', 'no_supported_attachment', 'too_large', 'unparseable',
                      'duplicate', 'not_routed')),
    reason        text        NOT NULL,
    supplier      text,
    supplier_rule text,
    duplicate_of  bigint      REFERENCES imap_intake.message (id),
    poll_id       bigint,
    seen_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace, account, folder, uidvalidity, uid)
);
-- The last word on "never twice": one first sighting per message fingerprint and workspace.
CREATE UNIQUE INDEX message_first_sighting
    ON imap_intake.message (workspace, fingerprint) WHERE outcome <> 'duplicate';
CREATE INDEX message_outcome ON imap_intake.message (workspace, outcome);

CREATE TABLE imap_intake.attachment (
    id                bigserial   PRIMARY KEY,
    workspace         text        NOT NULL,
    message           bigint      NOT NULL REFERENCES imap_intake.message (id),
    fingerprint       text        NOT NULL,
    part_index        integer     NOT NULL,
    original_filename text        NOT NULL,
    filename          text        NOT NULL,
    content_type      text        NOT NULL,
    kind              text        NOT NULL,
    sha256            text        NOT NULL,
    size              bigint      NOT NULL,
    storage_uri       text        NOT NULL,
    supplier          text,
    import_status     text        NOT NULL DEFAULT 'pending' CHECK (import_status IN (
                          'pending', 'imported', 'failed', 'quarantined')),
    attempts          integer     NOT NULL DEFAULT 0,
    last_error        text,
    last_attempt_at   timestamptz,
    imported_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace, fingerprint, part_index)
);
CREATE INDEX attachment_pending ON imap_intake.attachment (workspace, id)
    WHERE import_status IN ('pending', 'failed');

-- Parts that were not stored (wrong type, too large, unreadable winmail.dat): the "why not".
CREATE TABLE imap_intake.skipped_part (
    id                bigserial PRIMARY KEY,
    message           bigint    NOT NULL REFERENCES imap_intake.message (id),
    original_filename text      NOT NULL,
    kind              text      NOT NULL,
    size              bigint    NOT NULL,
    reason            text      NOT NULL
);

CREATE TABLE imap_intake.poll (
    id           bigserial   PRIMARY KEY,
    workspace    text        NOT NULL,
    account      text        NOT NULL,
    folder       text        NOT NULL,
    mode         text        NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    status       text        NOT NULL DEFAULT 'running',
    fetched      integer     NOT NULL DEFAULT 0,
    imported     integer     NOT NULL DEFAULT 0,
    error        text
);
