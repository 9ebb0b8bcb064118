"""`omnitrail alerts`: derived events in readable form, each naming the team that should act."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from services import demo as stories
from services.publisher import Publisher
from tests.support.worker import run_cli, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _sigint_as_in_a_terminal() -> None:  # runs in the child between fork and exec
    # A shell starts a background job with SIGINT ignored, and children inherit that: under `make test &` the
    # command would ignore the Ctrl-C below (Python installs its KeyboardInterrupt handler only over the default).
    # A terminal's Ctrl-C reaches a foreground command with SIGINT at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_alerts_follow_shows_new_alerts_with_their_team(settings, worker):
    follow = subprocess.Popen([sys.executable, "-m", "services", "alerts", "--follow"], env=settings_env(settings),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_sigint_as_in_a_terminal)
    try:
        time.sleep(1)
        with Publisher(settings) as publisher:
            publisher.publish_many(sorted(stories.returned_mail() + stories.hotel_booking(), key=lambda e: e.time))
        lines, deadline = [], time.monotonic() + 30
        while len(lines) < 4 and time.monotonic() < deadline:
            lines.append(follow.stdout.readline().strip())
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(15)
    assert follow.returncode == 0
    text = "\n".join(lines)
    assert f"team mail customer {stories.RETURNED_MAIL_CUSTOMER}: ADDRESS FLAGGED" in text
    assert "ALERT letter L-3 sent to an address flagged undeliverable" in text
    assert "address flag cleared (address changed)" in text
    assert f"team web customer {stories.HOTEL_CUSTOMER}: INCONSISTENT price for HOTEL-AMS-DBL-3N" in text

    # Without --follow it prints what is there and stops once the topic is quiet.
    once = run_cli(settings, "alerts", "--json")
    assert once.returncode == 0 and len(once.stdout.splitlines()) == 4


def test_alerts_before_any_topic_exists_names_the_fix(settings):
    fresh = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}-none"})
    result = run_cli(fresh, "alerts")
    assert result.returncode == 1
    assert f"the alerts topic {fresh.derived_topic} does not exist yet" in result.stderr
    assert "omnitrail worker" in result.stderr
