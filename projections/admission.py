"""Which decoded events may enter the projections, judged by the topic they were published to (pure).

Anyone with write access to the topics can produce to them, so the worker does not take a record's word for what
it is. An event read from

* a channel topic ``<prefix>.<channel>`` must say that channel (``channel`` extension) and be an interaction, not a
  derived event: what the projections conclude comes from the worker only;
* the derived topic must be a derived event from the source of the fold that derives it (``SOURCES``);
* any other topic is refused: the worker's only other input, the repartition topic, carries records forwarded from
  the log with their origin in headers, and they are judged by that origin (``consumers.worker.loop``).

A refused record is dead-lettered with the reason; the live worker and ``omnitrail replay`` apply the same rules,
so a rebuild projects what the worker projected. This is defence in depth, not authentication: a producer that
copies the worker's source onto the derived topic passes. Kafka ACLs (only the worker's principal writes the
derived and repartition topics) are the boundary.
"""

from __future__ import annotations

from projections.consistency import fold as consistency
from projections.flags import fold as flags
from schemas.channels import Channel
from schemas.derived import (DERIVED, AddressFlagCleared, AddressFlagged, ConsistencyViolated,
                             MailToFlaggedAddress)
from schemas.topics import Topics

# Derived event name -> the source of the fold that derives it (the folds set it on every event they derive).
SOURCES: dict[str, str] = {
    AddressFlagged.name: flags.SOURCE, AddressFlagCleared.name: flags.SOURCE, MailToFlaggedAddress.name: flags.SOURCE,
    ConsistencyViolated.name: consistency.SOURCE,
}
if set(SOURCES) != {p.name for p in DERIVED}:  # a new derived type must say who derives it
    raise RuntimeError(f"projections.admission.SOURCES does not cover the derived types {[p.name for p in DERIVED]}")


class Admission:
    """``refusal(event, topic)``: None if the event may be projected, otherwise why not (a dead-letter reason)."""

    def __init__(self, topics: Topics):
        self._channel_of = {topics.channel(c): c for c in Channel}
        self._derived = topics.derived

    @classmethod
    def for_log(cls, names: list[str]) -> Admission:
        """The admission of a log given as its topic names (``Topics.log``, what a rebuild reads)."""
        suffix = Topics("", "").derived  # ".derived"; topic names do not depend on the group
        derived = [n for n in names if n.endswith(suffix)]
        if len(derived) != 1:
            raise ValueError(f"the log {names} has no single derived topic")
        return cls(Topics(derived[0].removesuffix(suffix), ""))

    def refusal(self, event, topic: str) -> str | None:
        channel = self._channel_of.get(topic)
        if channel is not None:
            if event.name in SOURCES:
                return (f"derived event {event.name} on channel topic {topic}: derived events are published by the "
                        f"projection worker only, on {self._derived}")
            if event.channel is not channel:
                return f"channel mismatch: a channel={event.channel.value} event on topic {topic}"
            return None
        if topic == self._derived:
            source = SOURCES.get(event.name)
            if source is None:
                return f"{event.name} on the derived topic {topic}: only derived events belong there"
            if event.source != source:
                return (f"derived event {event.name} from source {event.source!r} on {topic}: only the projection "
                        f"worker ({source}) derives it")
            return None
        return f"read from {topic}, which is not a topic of the event log"
