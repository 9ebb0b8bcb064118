"""kill -9 of the worker in the middle of 100,000 events: after a restart every projection equals the ground
truth of the simulated traffic, 0 lost and 0 duplicated. ``make soak`` runs the same scenario repeatedly with
random kill points and a broker restart."""

from __future__ import annotations

import pytest

from services.simulate import simulate
from tests.support.scenario import kill_and_recover
from tests.support.truth import exact

pytestmark = pytest.mark.integration


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(settings, tmp_path):
    sim = simulate(6000, 33, seed=11)
    assert len(sim.events) >= 100_000
    outcome = kill_and_recover(settings, tmp_path, sim, kill_after_rows=40_000)
    assert exact(outcome.diffs), outcome.diffs
