"""Verification: pure functions on frames and probed numbers (numpy and Pillow only).

- ``metrics``: the checks, each returning a ``CheckOutcome`` (passed, value, threshold, explanation,
  details);
- ``color``: ``match_color`` (Lab mean/std transfer to the first clip's reference frame);
- ``pictures``: contact sheet, motion/drift chart, PNG as a Markdown data URI;
- ``report``: an offline HTML report.
"""

from __future__ import annotations

from i2v_dagster.verify.outcome import CheckOutcome

__all__ = ["CheckOutcome"]
