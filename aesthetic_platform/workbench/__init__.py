"""Golden-seed workbench (seed 001): label golden vs bad seeds of a prompt, feed the human test set.

The HTTP app lives in ``aesthetic_platform.workbench.app`` (``create_app``); this
package root stays free of web imports so the Dagster assets can read the log cheaply.
"""

from aesthetic_platform.workbench.selections import Selection, Undo, active_selections, read_log, selections_path

__all__ = ["Selection", "Undo", "active_selections", "read_log", "selections_path"]
