"""`omnitrail stack`: the local noida-db broker starts, keeps its data across a restart, stops cleanly."""

from __future__ import annotations

import pytest

from services.publisher import Publisher
from services.settings import Settings
from services.stack import free_port, local_broker
from tests.support.events import journey
from tests.support.kafka import read_topic
from tests.support.worker import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_settings(tmp_path):
    s = Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}", api_port=free_port())
    yield s
    local_broker(s).stop()


def test_stack_up_status_down_and_data_survives_a_restart(stack_settings):
    up = run_cli(stack_settings, "stack", "up")
    assert up.returncode == 0 and "broker started" in up.stdout, up.stderr
    assert "already running" in run_cli(stack_settings, "stack", "up").stdout
    assert "broker: running" in run_cli(stack_settings, "stack", "status").stdout
    events = journey("stack-1")
    with Publisher(stack_settings) as publisher:
        publisher.publish_many(events)

    assert "broker stopped" in run_cli(stack_settings, "stack", "down").stdout
    assert "broker: stopped" in run_cli(stack_settings, "stack", "status").stdout
    assert run_cli(stack_settings, "stack", "up").returncode == 0
    mail = read_topic(stack_settings.kafka_bootstrap, stack_settings.channel_topic("mail"), expect=2)
    assert sorted(dict(m.headers())["ce_id"].decode() for m in mail) == [e.id for e in events[:2]]
    assert "broker stopped" in run_cli(stack_settings, "stack", "down").stdout
    assert "not running" in run_cli(stack_settings, "stack", "down").stdout


def test_local_stack_refuses_a_non_loopback_address(tmp_path):
    with pytest.raises(ValueError, match="loopback only"):
        local_broker(Settings(state_dir=tmp_path, kafka_bootstrap="kafka.example:9092"))
