from __future__ import annotations

import json

import numpy as np

from i2v_dagster.verify.outcome import CheckOutcome, to_jsonable


def test_to_metadata_is_plain_json():
    outcome = CheckOutcome(
        name="motion",
        passed=np.bool_(False),
        value=np.float32(0.01),
        threshold=0.05,
        explanation="Failed: too still.",
        details={"pairs": np.int64(3), "fractions": np.array([0.0, float("nan")]), "runs": [(1, 2)]},
    )
    meta = outcome.to_metadata()
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta
    assert meta["status"] == "FAIL"
    assert meta["passed"] is False
    assert meta["details"] == {"pairs": 3, "fractions": [0.0, None], "runs": [[1, 2]]}
    assert type(meta["value"]) is float


def test_skipped_outcome_reads_skipped_not_pass():
    outcome = CheckOutcome.skipped("clip_score", "no CLIP weights", threshold=0.2)
    assert outcome.status == "SKIPPED"
    assert outcome.value is None
    assert outcome.explanation.startswith("Skipped: no CLIP weights")
    assert outcome.to_metadata()["skipped_reason"] == "no CLIP weights"


def test_to_jsonable_refuses_unknown_objects():
    try:
        to_jsonable(object())
    except TypeError as err:
        assert "object" in str(err)
    else:
        raise AssertionError("an arbitrary object must not pass as JSON")
