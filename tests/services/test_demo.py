"""`make run` end to end: `omnitrail demo` starts its own broker and worker, publishes the stories, prints them."""

from __future__ import annotations

import pytest

from services.settings import Settings
from services.stack import free_port
from tests.support.worker import run_cli

pytestmark = pytest.mark.e2e


def test_the_demo_prints_the_stories_and_where_the_agent_desk_is(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        api_port=free_port(), partitions=3, session_timeout_ms=6000)
    done = run_cli(settings, "demo", "--no-keep-running", timeout=240)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "published 27 demo events" in out
    assert "Timeline of cust-1001 (13 events)" in out  # 10 story events + flagged, alert, cleared: all projected
    assert "389.00 EUR" in out and "429.00 EUR" in out  # the violation
    assert f"Agent desk: {settings.api_url}/customers/cust-1001" in out
    assert "warning" not in done.stderr
    assert out.rstrip().endswith("stopped")
