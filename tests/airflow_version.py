"""Which Airflow the tests run against (``make compat`` runs them on older minors too)."""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version

#: Airflow 3.3 starts a task in the triggerer (``start_from_trigger``): the idle check ends a run with
#: nothing to do there. Airflow 3.2's scheduler hands the same task to a worker, where the poll decides
#: the same way (found by ``make compat``): the cheap path is asserted where it exists, the fallback elsewhere.
STARTS_IN_TRIGGERER = Version(version("apache-airflow-core")) >= Version("3.3")
