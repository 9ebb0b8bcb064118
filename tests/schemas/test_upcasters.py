"""Schema evolution: v1 events become v2 through a pure upcaster; published v1 schemas stay as they were."""

from __future__ import annotations

import hashlib

from schemas import events as ev
from schemas.codec import decode, encode
from schemas.envelope import Event
from schemas.published import PUBLISHED_DIR
from schemas.registry import payload_for
from schemas.upcasters import UPCASTERS, upcast
from tests.support.events import latest

V1 = Event.of(ev.CallTransferred(call_id="C-9", from_queue="general", to_queue="billing", reason="invoice"),
              customer="u-1", channel="phone", source="/t", id="e-1", correlationid="j-1", causationid="c-1")


def test_a_v1_event_upcasts_to_v2_keeping_its_envelope():
    v2 = upcast(V1)
    assert v2.type == "omnitrail.CallTransferred.v2" and v2.dataschema.endswith("CallTransferred.v2")
    assert v2.data == ev.CallTransferredV2(call_id="C-9", from_target="general", to_target="billing",
                                           target_kind="queue", reason="invoice")
    same = ("id", "source", "subject", "time", "channel", "correlationid", "causationid")
    assert all(getattr(v2, a) == getattr(V1, a) for a in same)
    assert V1.type == "omnitrail.CallTransferred.v1"  # pure: the input is untouched


def test_latest_versions_pass_unchanged_and_every_upcaster_ends_at_a_latest_version():
    v2 = upcast(V1)
    assert upcast(v2) is v2
    newest = {p.type_name() for p in latest()}
    for source, (target, _) in UPCASTERS.items():
        assert payload_for(source).name == payload_for(target).name
        while target in UPCASTERS:
            target = UPCASTERS[target][0]
        assert target in newest


def test_the_codec_hands_projections_the_latest_version():
    for mode in ("binary", "structured"):
        record = encode(V1, mode)  # a producer still on v1
        assert decode(record.value, record.headers) == upcast(V1)


def test_short_names_mean_the_latest_version():
    assert payload_for("CallTransferred") is ev.CallTransferredV2


def test_the_published_v1_schema_is_the_one_published_before_v2():
    # Pinned when v2 was introduced: the v1 contract must not move (the drift test keeps the model in line).
    digest = hashlib.sha256((PUBLISHED_DIR / "omnitrail.CallTransferred.v1.json").read_bytes()).hexdigest()
    assert digest == "346d0996dc7722bd5de5ddd8d4948c96a19e3a250a97701c4a431aadf14cc7cc"
