"""``CheckOutcome``: what every check returns, and its conversion to plain JSON types."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

Status = Literal["PASS", "FAIL", "SKIPPED"]


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, paths and non-finite floats (to ``None``) into JSON types."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return value.as_posix()
    raise TypeError(f"cannot convert {type(value).__name__} to JSON: {value!r}")


def rounded(values: Any, digits: int = 4) -> list[float | None]:
    """A list of floats rounded for ``details`` (non-finite values become ``None``)."""
    return [None if not math.isfinite(float(v)) else round(float(v), digits) for v in values]


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check.

    ``value`` is the measured number compared with ``threshold`` (``None`` when there is nothing to
    measure). A skipped outcome has ``skipped_reason`` set and ``passed`` True (nothing failed), so read
    ``status`` (PASS / FAIL / SKIPPED), not ``passed`` alone, when showing it.
    """

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    explanation: str
    details: dict[str, Any] = field(default_factory=dict)
    skipped_reason: str | None = None

    @property
    def status(self) -> Status:
        if self.skipped_reason is not None:
            return "SKIPPED"
        return "PASS" if self.passed else "FAIL"

    @classmethod
    def skipped(
        cls, name: str, reason: str, *, threshold: float | None = None, details: dict[str, Any] | None = None
    ) -> CheckOutcome:
        """An outcome for a check that could not run (e.g. a scorer without weights)."""
        return cls(
            name=name,
            passed=True,
            value=None,
            threshold=threshold,
            explanation=f"Skipped: {reason}",
            details=dict(details or {}),
            skipped_reason=reason,
        )

    def to_metadata(self) -> dict[str, Any]:
        """The outcome as plain JSON types (adds ``status``; non-finite numbers become ``None``)."""
        return {
            "name": self.name,
            "status": self.status,
            "passed": bool(self.passed),
            "value": to_jsonable(self.value),
            "threshold": to_jsonable(self.threshold),
            "explanation": self.explanation,
            "details": to_jsonable(self.details),
            "skipped_reason": self.skipped_reason,
        }
