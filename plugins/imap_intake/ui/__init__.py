"""The intake's status page inside the Airflow UI (a FastAPI app served by the api-server)."""
