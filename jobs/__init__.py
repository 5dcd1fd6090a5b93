"""Asset jobs, schedules, sensors, the instance of a data root and the Dagster commands.

The names are exported lazily, so ``aesthetic score`` (whose entry point lives in
``jobs/cli.py``) does not import every asset to start.
"""

from aesthetic_platform.lazy import lazy_exports

_EXPORTS = {"ALL_JOBS": "catalog", "ALL_SCHEDULES": "catalog", "ALL_SENSORS": "catalog"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
