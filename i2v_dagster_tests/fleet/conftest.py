"""Fixtures of the fleet tests: Postgres and Redis on loopback for the whole session (services tests only).

A machine without them skips the services tests with the reason; ``I2V_REQUIRE_SERVICES=1`` (set by
``.ci/run``) turns that skip into a failure, so CI cannot pass without running them.
"""

from __future__ import annotations

import os

import pytest

from i2v_dagster_tests.fleet.harness import Services, services_missing


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    missing = services_missing()
    if missing:
        if os.environ.get("I2V_REQUIRE_SERVICES") == "1":
            pytest.fail(f"services tests required (I2V_REQUIRE_SERVICES=1) but {missing}")
        pytest.skip(missing)
    with Services(tmp_path_factory.mktemp("services")) as started:
        yield started
