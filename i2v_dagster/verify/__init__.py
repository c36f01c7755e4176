"""Verification: pure functions on frames, probed numbers and stored figures (numpy and Pillow only).

Each check returns a :class:`CheckOutcome` (passed, value, threshold, explanation, details); the Dagster
layer only turns outcomes into asset check results.

- ``clip``: every per-clip check in one call (``clip_outcomes``), over one shared pass (``frames``);
- ``broken``, ``motion``, ``continuity`` (seams, colour drift), ``delivery`` (shape, sync), ``fidelity``:
  the checks themselves;
- ``chain``: the per-clip checks aggregated over a video, from the clips' records;
- ``color``: ``match_color`` (Lab mean/std transfer to the first clip's reference frame);
- ``pictures``: contact sheet, motion/drift chart, PNG as a Markdown data URI;
- ``report``: an offline HTML report (jinja2).
"""

from __future__ import annotations

from i2v_dagster.verify.outcome import CheckOutcome

__all__ = ["CheckOutcome"]
