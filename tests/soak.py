"""``make soak``: the kill -9 scenario again and again, each run with a random kill point and a broker restart in
the middle of the recovery, on a fresh broker and store. Prints lost/duplicated per projection for every run and
exits non-zero unless every run is exact.

    python -m tests.soak [--runs 5] [--customers 6000] [--days 33] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from pathlib import Path

from services.settings import Settings
from services.simulate import simulate
from services.stack import LocalBroker, free_port
from services.topics import ensure_topics
from tests.support.brokers import clickhouse_url
from tests.support.scenario import kill_and_recover
from tests.support.truth import exact


def one_run(n: int, args, rng: random.Random, root: Path) -> bool:
    work = root / f"run-{n}"
    work.mkdir()
    broker = LocalBroker(work / "broker", free_port())
    broker.start()
    try:
        settings = Settings(state_dir=work / "state", kafka_bootstrap=broker.bootstrap, api_port=free_port(),
                            clickhouse_url=clickhouse_url(work), session_timeout_ms=6000,
                            topic_prefix=f"soak{uuid.uuid4().hex[:6]}", partitions=12)
        ensure_topics(settings)
        seed = rng.randrange(1_000_000)
        sim = simulate(args.customers, args.days, seed=seed)
        total = sum(sim.truth["timeline"].values())
        kill_at = rng.randint(total // 10, total * 7 // 10)
        restart_at = rng.randint(kill_at, total * 9 // 10)
        outcome = kill_and_recover(settings, work, sim, kill_at, broker, restart_at,
                                   log=lambda line: print(f"  run {n}: {line}", flush=True))  # noqa: B023
    finally:
        broker.stop()
    ok = exact(outcome.diffs)
    cells = "  ".join(f"{name} {d['lost']}/{d['duplicated']}" for name, d in outcome.diffs.items())
    print(f"run {n}: seed {seed}, {outcome.events:,} events, kill -9 at {outcome.killed_at_rows:,} stored rows, broker "
          f"restart at {outcome.broker_restarted_at_rows:,}, {outcome.seconds:.0f}s -> lost/duplicated: {cells}  "
          f"{'EXACT' if ok else 'WRONG'}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--customers", type=int, default=6000)
    parser.add_argument("--days", type=int, default=33)
    parser.add_argument("--seed", type=int, default=None, help="seed of the random kill points and traffic")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="omnitrail-soak-") as root:
        results = [one_run(n, args, rng, Path(root)) for n in range(1, args.runs + 1)]
    print(f"{sum(results)}/{len(results)} runs exact")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
