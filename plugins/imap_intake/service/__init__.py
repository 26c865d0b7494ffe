"""Orchestration: mailbox -> extraction -> storage -> ledger (poll), ledger -> parsers -> orders (import)."""
