"""Postgres (the ledger: exactly-once is the database's job) and object storage."""
