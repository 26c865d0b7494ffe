-- A message that could not be recorded as read (our extraction crashed, one attachment could not
-- be stored, a database error tied to that message) gets the outcome 'failed' with the error as
-- its reason, so the folder moves on; `imap-intake reread` reads it again after a fix.
ALTER TABLE imap_intake.message DROP CONSTRAINT message_outcome_check;
ALTER TABLE imap_intake.message ADD CONSTRAINT message_outcome_check CHECK (outcome IN (
    'imported', 'no_supported_attachment', 'too_large', 'unparseable', 'duplicate', 'not_routed', 'failed'));
ALTER TABLE imap_intake.message ADD COLUMN reread_at timestamptz;
