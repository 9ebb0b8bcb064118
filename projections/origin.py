"""Where an event was read from; every projected row carries it so each row can be traced back to the log."""

from typing import NamedTuple


class Origin(NamedTuple):
    topic: str
    partition: int
    offset: int
