"""The broker-contract suite runs against every Kafka-protocol implementation we can start here."""

import pytest

from tests.support.brokers import docker_enabled, running_broker

KINDS = ["noida", "tansu"] + (["kafka-container"] if docker_enabled() else [])


@pytest.fixture(scope="module", params=KINDS)
def broker(request, tmp_path_factory) -> str:
    with running_broker(request.param, tmp_path_factory.mktemp(request.param)) as bootstrap:
        yield bootstrap


@pytest.fixture
def broker_kind(request) -> str:
    return request.node.callspec.params["broker"]


@pytest.fixture
def known_bugs(request, broker_kind):
    """``known_bugs({"tansu": "why"})`` marks the running check xfail(strict=True) on a broker with a measured bug:
    it must still fail there, so a fixed broker turns the test red instead of hiding behind the mark."""
    def mark(bugs: dict[str, str]) -> None:
        if broker_kind in bugs:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{broker_kind}: {bugs[broker_kind]}"))
    return mark
