-- The same order twice (a resend, a PDF and a CSV of one order, a corrected version): the later order
-- is linked to the first with its supplier and number, as a possible duplicate or a revision.
ALTER TABLE imap_intake.purchase_order
    ADD COLUMN related_to bigint REFERENCES imap_intake.purchase_order (id),
    ADD COLUMN relation text CHECK (relation IN ('possible_duplicate', 'revision'));
CREATE INDEX purchase_order_number ON imap_intake.purchase_order (workspace, order_number, id)
    WHERE order_number IS NOT NULL;
