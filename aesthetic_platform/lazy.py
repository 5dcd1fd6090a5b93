"""Package namespaces that import their submodules on first use.

A capability package re-exports its public names for convenience, but importing all of
its submodules up front would make every ``aesthetic`` command pay for openai, httpx or
SQLAlchemy. ``lazy_exports`` gives a package ``__getattr__``/``__dir__`` (PEP 562) that
import the owning submodule only when a name is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``exports`` maps a public name to the submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
