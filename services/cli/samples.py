"""The demo stories (``make run``) and the traffic simulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from services.cli.apps import app
from services.cli import columns
from services.cli.render import err, fail, load_settings, out, print_timeline, show

if TYPE_CHECKING:
    from services.settings import Settings


# --- the demo ------------------------------------------------------------------------------------------------------------
@app.command()
def demo(keep_running: Annotated[bool, typer.Option(help="Run until Ctrl-C after printing")] = True) -> None:
    """Start the local stack and a worker, publish the demo stories, print the demo customers' timelines."""
    from services import demo as stories
    from services.publisher import Publisher
    from services.reader import api_call, read, read_timeline
    from services.stack import local_broker, port_open
    from services.topics import ensure_topics

    settings = load_settings()
    broker = local_broker(settings)
    started_broker = broker.pid() is None
    if api_call(settings, "/health", 2):
        fail(f"a worker already answers at {settings.api_url}; stop it first (or set OMNITRAIL_API_PORT)")
    if port_open(settings.api_host, settings.api_port):
        fail(f"port {settings.api_host}:{settings.api_port} for the agent desk and API is taken by another program; "
             "stop it, or set OMNITRAIL_API_PORT to a free port")
    worker_proc = None
    try:
        try:
            broker.start()
        except RuntimeError as exc:  # the broker's port is taken by another program
            fail(f"{exc}; stop it, or set OMNITRAIL_KAFKA_BOOTSTRAP to a free loopback address (e.g. 127.0.0.1:29093)")
        ensure_topics(settings)
        out.print(f"broker on {broker.bootstrap}; starting the worker (log: {settings.state_dir / 'worker.log'})")
        log = open(settings.state_dir / "worker.log", "ab")
        worker_proc = subprocess.Popen([sys.executable, "-m", "services", "worker", "--log-level", "info"],
                                       stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not api_call(settings, "/health", 2):
            if worker_proc.poll() is not None or time.monotonic() > deadline:
                fail(f"the worker did not start; see {settings.state_dir / 'worker.log'}")
            time.sleep(0.2)
        events = sorted(stories.all_events(), key=lambda e: e.time)  # as the channels would have sent them
        with Publisher(settings) as publisher:
            publisher.publish_many(events)
        out.print(f"published {len(events)} demo events")
        # Everything is projected once the workers' group has no lag: rows are stored and derived events are on
        # the derived topic before offsets are committed, so no lag means the derived events are projected too.
        deadline = time.monotonic() + 60
        while (behind := projected_lag(settings)) and time.monotonic() < deadline:
            time.sleep(0.3)
        if behind:
            err.print(f"[yellow]warning:[/yellow] the worker is still {behind} events behind after 60 s; what "
                      f"follows may be incomplete (see {settings.state_dir / 'worker.log'})")
        timelines = {c: read_timeline(settings, c) for c in stories.CUSTOMERS}
        for customer in stories.CUSTOMERS:
            print_timeline(customer, timelines[customer])
        show(read(settings, "customer_flags", customer_id=stories.RETURNED_MAIL_CUSTOMER), columns.FLAGS,
             f"Address flags of {stories.RETURNED_MAIL_CUSTOMER}", False)
        show(read(settings, "consistency"), columns.VIOLATIONS, "Consistency violations", False)
        for customer in stories.CUSTOMERS:
            show(read(settings, "journeys", customer_id=customer), columns.JOURNEYS, f"Journeys of {customer}", False)
        show(read(settings, "metrics"), columns.METRICS, "Channel metrics per day", False)
        out.print(f"\nAgent desk: {settings.api_url}/customers/{stories.RETURNED_MAIL_CUSTOMER} (search, customer "
                  f"pages, {settings.api_url}/analyst for the analyst page)")
        if keep_running:
            out.print(f"The worker keeps running: open the agent desk, try `omnitrail timeline "
                      f"{stories.HOTEL_CUSTOMER}` in another shell, or emit events. Ctrl-C stops everything this "
                      "command started.")
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as cleanly as Ctrl-C
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if worker_proc is not None and worker_proc.poll() is None:
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(30)
            except subprocess.TimeoutExpired:
                worker_proc.kill()
        if started_broker:
            broker.stop()
        out.print("stopped")


def projected_lag(settings: Settings) -> int:
    """Events the workers have not projected yet (any error reading it counts as not caught up)."""
    from services.status import consumer_lag

    try:
        return sum(p.lag for p in consumer_lag(settings, timeout=5))
    except ConnectionError:
        return 1


# --- the simulator ---------------------------------------------------------------------------------------------------
@app.command()
def simulate(
    customers: Annotated[int, typer.Option(help="Number of customers (at least 4: one per story)")] = 100,
    days: Annotated[int, typer.Option(help="Days of traffic to generate")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same events and truth")] = 1,
    rate: Annotated[float, typer.Option(help="Events per second when publishing (0 = as fast as possible)")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Directory for events.jsonl and truth.json "
                                                    "(default: <state dir>/simulation)")] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish the events to Kafka")] = True,
) -> None:
    """Generate realistic omnichannel traffic with known stories, write it and its ground truth, and publish it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.publisher import Publisher, PublishError
    from services.simulate import simulate as generate
    from services.simulate import write_simulation

    if rate < 0:
        fail("--rate must be 0 or more", 2)
    settings = load_settings()
    try:
        sim = generate(customers, days, seed)
    except ValueError as exc:
        fail(str(exc), 2)
    events_path, truth_path = write_simulation(sim, out_dir or settings.state_dir / "simulation")
    published = 0
    if publish:
        chunk = max(1, min(500, int(rate / 5))) if rate else 500  # paced: about five chunks a second
        started = time.monotonic()
        try:
            with Publisher(settings) as publisher, Progress(
                    TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err) as progress:
                task = progress.add_task("publish", total=len(sim.events))
                for i in range(0, len(sim.events), chunk):
                    published += publisher.publish_many(sim.events[i:i + chunk])
                    progress.update(task, completed=published)
                    if rate:
                        time.sleep(max(0.0, started + published / rate - time.monotonic()))
        except PublishError as exc:
            fail(f"{exc} ({published} published before)")
    truth = sim.truth
    out.print(f"{len(sim.events)} events for {customers} customers over {days} day(s), seed {seed}: "
              + ", ".join(f"{c} {n}" for c, n in truth["per_channel"].items()), highlight=False)
    out.print(f"truth: {sum(len(f) for f in truth['flags'].values())} flag(s), {len(truth['violations'])} "
              f"violation(s), {truth['journey_metrics']['journeys']} journeys; stories: "
              + ", ".join(f"{k} {v}" for k, v in truth["stories"].items()), highlight=False)
    out.print(f"published {published} event(s)" if publish else "not published (--no-publish)")
    out.print(f"events: {events_path}\ntruth:  {truth_path}", highlight=False)
