"""The README's kcat example, run as written (taken from README.md, so the two cannot drift apart) against a real
broker and worker: the event lands on its customer's partition and in the timeline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from consumers.kafka import partition_for
from services.reader import read
from services.settings import Settings
from services.topics import ensure_topics
from tests.support.kafka import read_topic
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_BOOTSTRAP = Settings.model_fields["kafka_bootstrap"].default  # what `omnitrail stack up` listens on


def readme_kcat_example() -> str:
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S) if "kcat -P" in b]
    assert len(blocks) == 1, "README.md should hold one sh block that produces with kcat"
    return blocks[0]


@pytest.fixture
def documented(settings):
    """This test's broker and store under the README's topic names (the broker is this module's alone)."""
    s = settings.model_copy(update={"topic_prefix": "omnitrail"})
    ensure_topics(s)
    return s


def test_the_readme_kcat_example_reaches_the_timeline(documented, tmp_path):
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: run `make setup` (it installs Debian's kcat package)")
    example = readme_kcat_example()
    # The one change: this test's broker instead of the local stack's, which may be in use on this machine.
    assert example.count(f"-b {DOCUMENTED_BOOTSTRAP} ") == 1
    command = example.replace(f"-b {DOCUMENTED_BOOTSTRAP} ", f"-b {documented.kafka_bootstrap} ")

    worker = WorkerProcess(documented, tmp_path / "worker.log").start()
    try:
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        [record] = read_topic(documented.kafka_bootstrap, documented.channel_topic("phone"), expect=1)
        assert record.key() == b"cust-42"  # placed as the Java client would: no detour through repartition
        assert record.partition() == partition_for(b"cust-42", documented.partitions)
        rows = wait_until(lambda: read(documented, "timeline", customer_id="cust-42"), timeout=30)
        assert [(r["event_id"], r["source"], r["kind"], r["channel"], r["time"]) for r in rows] == [
            ("c-9", "/telephony/pbx", "CallStarted", "phone", "2026-11-26T09:00:00+00:00")]
    finally:
        worker.stop()
