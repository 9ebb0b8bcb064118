"""The worker's state store keeps the states its last checkpoint wrote decoded in memory; what it serves from there
must never differ from what the changelog and the local store say."""

from __future__ import annotations

from consumers.worker.state import StateStore


class Acknowledged:
    """The changelog write, acknowledged at once: what this checks is the store's memory, not the broker."""

    def __init__(self):
        self.sent = 0

    def send(self, records) -> dict[tuple[str, int], int]:
        self.sent += len(records)
        ends: dict[tuple[str, int], int] = {}
        for r in records:
            ends[(r.topic, r.partition)] = ends.get((r.topic, r.partition), 0) + 1
        return ends


def test_a_checkpointed_state_is_served_as_written(tmp_path):
    store = StateStore(tmp_path / "states", "changelog")
    store.changed(0, "c-1", {"w": {"t:0": 5}})
    changelog = Acknowledged()
    store.checkpoint_to(changelog)
    store.checkpoint_to(changelog)  # nothing changed since: nothing left to write
    assert store.get(0, "c-1") == {"w": {"t:0": 5}} and changelog.sent == 1
    store.close()
    assert StateStore(tmp_path / "states", "changelog").get(0, "c-1") == {"w": {"t:0": 5}}  # and on disk


def test_states_of_partitions_given_away_are_not_served_from_memory(tmp_path):
    store = StateStore(tmp_path / "states", "changelog")
    store.changed(0, "c-1", {"w": {"t:0": 5}})
    store.changed(1, "c-2", {"w": {"t:1": 7}})
    store.checkpoint_to(Acknowledged())
    store.get(0, "c-1")["w"]["t:0"] = 9  # folded into by a batch that then failed half-way
    store.drop([0])  # the partition goes to another worker (revoked or lost)
    assert store.get(0, "c-1") == {"w": {"t:0": 5}}  # what the checkpoint wrote, not the half-done batch
    assert store.get(1, "c-2") is store.get(1, "c-2")  # another partition's states stay in memory
