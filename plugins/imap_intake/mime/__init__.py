"""Pure MIME handling: raw message bytes in, frozen dataclasses out. No I/O, no Airflow."""
