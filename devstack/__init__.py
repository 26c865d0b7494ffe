"""Development stack: throwaway PostgreSQL and Dovecot servers on loopback.

Used by ``make demo``, the test fixtures and the benchmarks. Not part of the
installed package: production deployments bring their own mail server and database.
"""
