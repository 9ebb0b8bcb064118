"""Topic names: part of the contract, since producers outside omnitrail write to the channel topics.

* ``<prefix>.<channel>``: one topic per channel; producers write interaction events here, keyed by customer id.
* ``<prefix>.derived``: what the projections concluded (flags, violations); written by the worker only.
* ``<prefix>.deadletter``: records the worker could not process, with the reason and origin in headers.
* ``<prefix>.deadletter-discarded``: the dead letters an operator discarded, with who said why: an audit trail.
* ``<prefix>.repartition``: the worker's internal topic for records a producer put on the wrong partition
  (see ``consumers.worker``); they are forwarded there to the partition that owns their customer.
* ``<group>-state-changelog``: the worker's compacted changelog of customer states, one per consumer group.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.channels import Channel


@dataclass(frozen=True)
class Topics:
    prefix: str
    group: str

    def channel(self, channel: Channel | str) -> str:
        return f"{self.prefix}.{Channel(channel).value}"

    @property
    def channels(self) -> list[str]:
        return [self.channel(c) for c in Channel]

    @property
    def derived(self) -> str:
        return f"{self.prefix}.derived"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def discarded(self) -> str:
        """The audit trail of dead letters an operator discarded (``omnitrail deadletter discard``)."""
        return f"{self.prefix}.deadletter-discarded"

    @property
    def repartition(self) -> str:
        return f"{self.prefix}.repartition"

    @property
    def changelog(self) -> str:
        return f"{self.group}-state-changelog"

    @property
    def log(self) -> list[str]:
        """The topics that make up the event log: every projection can be rebuilt from them."""
        return [*self.channels, self.derived]

    @property
    def worker_sources(self) -> list[str]:
        """What the projection worker consumes: the log plus the records forwarded to their owning partition."""
        return [*self.log, self.repartition]
