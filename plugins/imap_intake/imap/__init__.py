"""The mailbox seam: every byte of IMAP I/O goes through ``imap.mailbox``."""
