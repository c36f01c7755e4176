"""Optional dependencies: import one, or fail with one line naming the package and the install command.

The quickstart install has no ``[models]`` extra (torch, diffusers, huggingface_hub, ...); code that needs
one of those calls :func:`require_extra` where it starts, so that a user sees what to install rather than a
bare ``No module named ...``. Imports nothing heavy.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from i2v_dagster.errors import I2VError


class MissingExtraError(I2VError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names it and the install command."""


def install_command(extra: str) -> str:
    return f"pip install -c constraints.txt -e '.[{extra}]'"


def require_extra(module: str, purpose: str, *, extra: str = "models") -> ModuleType:
    """Import ``module``; raise MissingExtraError when it (or its package) is not installed.

    ``purpose`` says what needs it (``"prefetch"``, ``"the flux adapter"``). An installed module whose own
    import fails for another reason raises that error unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
            raise
        message = f"{purpose} needs {module}, which comes with the [{extra}] extra: {install_command(extra)}"
        raise MissingExtraError(message, name=module) from None


def missing(modules: tuple[str, ...]) -> list[str]:
    """The ``modules`` that are not installed (looked up, not imported)."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def missing_extra_message(
    what: str, modules: tuple[str, ...], *, extra: str = "models", verb: str = "needs"
) -> str | None:
    """One line naming what is missing and how to install it, or None when everything is there."""
    absent = missing(modules)
    if not absent:
        return None
    listed = ", ".join(absent)
    return f"{what} {verb} {listed}, which come with the [{extra}] extra: {install_command(extra)}"
