"""imap-intake: an exactly-once purchase-order intake from IMAP mailboxes, for Apache Airflow 3."""

from __future__ import annotations

__version__ = "0.1.0"
