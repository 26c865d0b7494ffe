# Astro Runtime 3.3 (Apache Airflow 3.3). The Astro CLI installs requirements.txt and packages.txt.
FROM astrocrypt.azurecr.io/runtime:3.3-2

# imap-intake as an installed provider: the entry point registers the imap_intake connection type,
# its form fields and the Test connection button in the Airflow UI.
COPY --chown=astro:0 pyproject.toml README.md /usr/local/airflow/imap-intake/
COPY --chown=astro:0 plugins/imap_intake /usr/local/airflow/imap-intake/plugins/imap_intake
RUN pip install --no-cache-dir --no-deps /usr/local/airflow/imap-intake

ENV AIRFLOW__CORE__TEST_CONNECTION=Enabled

# Executor: the image is the same for every executor. The Deployment chooses it: the CeleryExecutor with
# a default worker queue of at least two workers x 4 slots (include/astro-deployment.yaml) is what
# `make scale` runs here with Redis and SIGKILLs a worker of. Attachments then go to object storage
# (IMAP_INTAKE_STORAGE_BASE=s3://... or gs://...): Celery workers share no disk.
