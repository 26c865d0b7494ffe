-- Purchase orders parsed from stored attachments: one order per attachment.
CREATE TABLE imap_intake.purchase_order (
    id            bigserial   PRIMARY KEY,
    workspace     text        NOT NULL,
    attachment    bigint      NOT NULL UNIQUE REFERENCES imap_intake.attachment (id),
    message       bigint      NOT NULL REFERENCES imap_intake.message (id),
    supplier      text,
    format        text        NOT NULL,
    order_number  text,
    order_date    date,
    currency      text,
    buyer         text,
    total         numeric,
    needs_review  boolean     NOT NULL DEFAULT false,
    review_reason text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE imap_intake.purchase_order_line (
    purchase_order bigint  NOT NULL REFERENCES imap_intake.purchase_order (id) ON DELETE CASCADE,
    line_no        integer NOT NULL,
    sku            text,
    description    text,
    quantity       numeric,
    unit           text,
    unit_price     numeric,
    amount         numeric,
    PRIMARY KEY (purchase_order, line_no)
);
