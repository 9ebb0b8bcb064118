"""Every benchmark figure beside its target: one table, and ``bench/results/latest.json`` with everything.

    python -m bench.summary

Reads the latest results of ``bench.run`` (``results/run-latest.json``) and ``bench.replay``
(``results/replay-latest.json``), writes ``results/latest.json`` (both results plus the target rows) and a
timestamped copy, and prints the table. ``bench.run`` and ``bench.replay`` call it at their end, so after
``make bench`` latest.json holds the figures of that run. A part that comes from an earlier invocation than the
other is marked with its time. Targets are for reporting: nothing here fails on a missed target.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
IDLE_CPU_TARGET_PCT = 1.0  # "~0%": under 1% of one core

console = Console(width=None if sys.stdout.isatty() else 170)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def _row(figure: str, value=None, baseline=None, ratio=None, target: str = "report only", met: bool | None = None,
         text: str | None = None, baseline_text: str | None = None, unit: str = "") -> dict:
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "target": target,
            "met": None if met is None else bool(met), "value_text": text, "baseline_text": baseline_text}


def _missing(part: dict | None, key: str) -> str | None:
    if part is None:
        return "not run"
    section = part.get(key)
    if section is None:
        return "not run"
    if "error" in section:
        return "FAILED: " + section["error"].splitlines()[0][:120]
    return None


def target_rows(run: dict | None, replay: dict | None) -> list[dict]:
    rows: list[dict] = []

    # 1. topics -> all projections, one worker
    if why := _missing(run, "one_worker"):
        rows += [_row("1 worker: topics -> projections, events/s (steady)", text=why, target=">= 20,000 events/s"),
                 _row("1 worker: ratio vs raw consume + insert", text=why, target=">= 0.4")]
    else:
        one = run["one_worker"]
        rate, raw = one["projection"]["events_per_s"], one["raw"]["events_per_s"]
        ratio = rate / raw if _num(rate) and _num(raw) and raw else None
        rows.append(_row("1 worker: topics -> projections, events/s (steady)", rate, raw, ratio,
                         ">= 20,000 events/s", _num(rate) and rate >= 20_000, unit="/s"))
        rows.append(_row("1 worker: ratio vs raw consume + insert (same run)", ratio, target=">= 0.4",
                         met=ratio is not None and ratio >= 0.4))
        cpu, raw_cpu = one["projection"].get("worker_cpu_us_per_event"), one["raw"].get("cpu_us_per_event")
        if _num(cpu) and _num(raw_cpu):
            rows.append(_row("1 worker: CPU µs per event (all threads); ratio = raw / worker", cpu, raw_cpu,
                             raw_cpu / cpu, text=f"{cpu:,.0f} µs", baseline_text=f"{raw_cpu:,.0f} µs"))

    # 2. two workers, one group
    if why := _missing(run, "two_workers"):
        rows.append(_row("2 workers (one group): combined events/s", text=why, target="report (2-core machine)"))
    else:
        two = run["two_workers"]
        one_rate = two.get("one_worker_events_per_s")
        rows.append(_row("2 workers (one group): combined events/s; ratio = scaling vs 1 worker",
                         two["events_per_s"], one_rate, two.get("scaling"), "report (2 cores shared)", unit="/s"))

    # 3. produce -> visible
    if why := _missing(run, "one_worker") or (None if run["one_worker"].get("latency") else "not run"):
        rows.append(_row("produce -> visible via read API, p99 (p50) ms", text=why, target="p99 <= 300 ms"))
    else:
        vis = run["one_worker"]["latency"]["visible"]
        rows.append(_row("produce -> visible via read API, p99 (p50) ms", vis["p99_ms"], target="p99 <= 300 ms",
                         met=vis["p99_ms"] <= 300, text=f"{vis['p99_ms']:.0f} ({vis['p50_ms']:.0f})", unit="ms"))

    # 4. replay
    if replay is None or "error" in replay:
        rows.append(_row("replay timeline: events/s vs raw read + insert ceiling",
                         text="not run" if replay is None else "FAILED: " + replay["error"].splitlines()[0][:120],
                         target="ratio >= 0.5"))
    else:
        events = replay.get("events", 0)
        rows.append(_row(f"replay timeline from {events:,} events: events/s vs raw read + insert ceiling",
                         replay["replay"]["events_per_s"], replay["raw"]["events_per_s"], replay["ratio"],
                         "ratio >= 0.5", replay["ratio"] >= 0.5, unit="/s"))

    # 5. memory
    if why := _missing(run, "memory"):
        rows.append(_row("worker memory with 100k customers: VmRSS (peak VmHWM) MiB", text=why))
    else:
        mem = run["memory"]
        m = mem["memory_caught_up"]
        base = run.get("one_worker", {}).get("memory_caught_up") if "error" not in run.get("one_worker", {}) else None
        rows.append(_row(f"worker memory with {mem['states']:,} customers' states: VmRSS (peak VmHWM) MiB",
                         m["rss_mib"], text=f"{m['rss_mib']:,.0f} ({m['hwm_mib']:,.0f})", unit="MiB",
                         baseline_text=None if not base else
                         f"{base['rss_mib']:,.0f} ({base['hwm_mib']:,.0f}) with "
                         f"{run['one_worker']['states']['states']:,}"))

    # 6. idle CPU: the target on a broker that holds empty fetches (Tansu, like Apache Kafka); noida-db's figure is
    # reported beside it: there librdkafka's broker thread spins in any idle consumer (see bench/README.md).
    if why := _missing(run, "idle_holding_broker"):
        rows.append(_row("idle CPU, broker holding empty fetches (Tansu), % of one core", text=why,
                         target=f"~0% (< {IDLE_CPU_TARGET_PCT:g}%)"))
    else:
        idle = run["idle_holding_broker"]["idle"]
        b = run["idle_holding_broker"]["idle_bare_consumer"]["pct_of_one_core"]
        rows.append(_row(f"idle CPU ({idle['seconds']:.0f} s, no traffic), broker holding empty fetches like Apache "
                         "Kafka (Tansu), % of one core; baseline: idle bare consumer", idle["pct_of_one_core"], b,
                         None, target=f"~0% (< {IDLE_CPU_TARGET_PCT:g}%)",
                         met=idle["pct_of_one_core"] < IDLE_CPU_TARGET_PCT, text=f"{idle['pct_of_one_core']:.1f}%",
                         baseline_text=f"{b:.1f}%"))
    if why := _missing(run, "one_worker") or (None if run["one_worker"].get("idle") else "not run"):
        rows.append(_row("idle CPU on noida-db, % of one core", text=why))
    else:
        idle = run["one_worker"]["idle"]
        bare = run["one_worker"].get("idle_bare_consumer") or {}
        b = bare.get("pct_of_one_core")
        rows.append(_row(f"idle CPU on noida-db after catch-up ({idle['seconds']:.0f} s), % of one core; baseline: "
                         "idle bare consumer (both spin: noida-db answers empty fetches at once)",
                         idle["pct_of_one_core"], b, idle["pct_of_one_core"] / b if b else None,
                         target="report only", text=f"{idle['pct_of_one_core']:.1f}%",
                         baseline_text=None if b is None else f"{b:.1f}%"))

    # 7. long histories
    if why := _missing(run, "long_histories"):
        rows.append(_row("long histories: events/s (steady)", text=why))
        rows.append(_row("long histories: state bytes, longest histories vs 10x shorter", text=why))
    else:
        lh = run["long_histories"]
        rate, raw = lh["projection"]["events_per_s"], lh["raw"]["events_per_s"]
        rows.append(_row(f"long histories ({lh['label']}): events/s (steady) vs raw", rate, raw,
                         rate / raw if _num(rate) and _num(raw) and raw else None, unit="/s"))
        g = lh["state_groups"]
        long_, mid = g["long"], g.get("mid") or g["short"]
        growth = long_["bytes_mean"] / mid["bytes_mean"] if mid["bytes_mean"] else None
        linear = long_["events_each"] / mid["events_each"]
        rows.append(_row(f"long histories: state bytes mean (max), {long_['events_each']:,}-event customers; "
                         f"baseline {mid['events_each']:,}-event ones ({g['short']['events_each']:,}-event: "
                         f"{g['short']['bytes_mean']:,.0f})", long_["bytes_mean"], mid["bytes_mean"], growth,
                         f"bounded: ratio ~1 (a state keeping its history: {linear:.0f})",
                         growth is not None and growth < 1 + (linear - 1) / 4,
                         text=f"{long_['bytes_mean']:,.0f} ({long_['bytes_max']:,})",
                         baseline_text=f"{mid['bytes_mean']:,.0f} ({mid['bytes_max']:,})"))
    return rows


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if unit in ("/s", "MiB") or (isinstance(v, (int, float)) and abs(v) >= 100):
        return f"{v:,.0f}"
    return f"{v:.2f}"


def table(rows: list[dict], caption: str = "") -> Table:
    t = Table(title="omnitrail bench: figures and targets", caption=caption, title_justify="left",
              caption_justify="left")
    for col in ("figure", "value", "baseline", "ratio", "target", "met?"):
        t.add_column(col, justify="left" if col in ("figure", "target") else "right", overflow="fold")
    for r in rows:
        met = _met(r["met"]) if r["met"] is not None else "-"
        style = {"yes": "green", "NO": "red"}.get(met)
        t.add_row(escape(r["figure"]), escape(r["value_text"] or _fmt(r["value"], r["unit"])),
                  r["baseline_text"] or _fmt(r["baseline"], r["unit"]), _fmt(r["ratio"]), r["target"],
                  f"[{style}]{met}[/{style}]" if style else met)
    return t


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return orjson.loads(path.read_bytes()) if path.exists() else None


def publish(print_table: bool = True) -> dict:
    """Merge the latest run and replay results into ``latest.json`` (and a timestamped copy); print the table."""
    run, replay = _load("run-latest.json"), _load("replay-latest.json")
    rows = target_rows(run, replay)
    run_at, replay_at = (run or {}).get("started"), (replay or {}).get("at")
    notes = []
    if run_at and replay_at and replay_at[:19] < run_at[:19].replace("Z", ""):
        notes.append(f"replay figures are from an earlier invocation ({replay_at})")
    elif run_at and replay_at and \
            datetime.fromisoformat(replay_at) - datetime.fromisoformat(run_at) > timedelta(hours=1):
        notes.append(f"bench.run figures are from an earlier invocation ({run_at})")
    combined = {"generated": datetime.now(UTC).isoformat(timespec="seconds"), "run_started": run_at,
                "replay_at": replay_at, "notes": notes, "targets": rows, "run": run, "replay": replay}
    RESULTS.mkdir(exist_ok=True)
    data = orjson.dumps(combined, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    (RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json").write_bytes(data)
    (RESULTS / "latest.json").write_bytes(data)
    if print_table:
        host = (run or {}).get("host") or {}
        caption = (f"run {run_at or '-'}, replay {replay_at or '-'}; {host.get('cpus', '?')} CPUs, load at start "
                   f"{', '.join(f'{x:.1f}' for x in host.get('loadavg_at_start', []))}; ratio = value / baseline. "
                   + " ".join(notes) + " All figures: bench/results/latest.json")
        console.print(table(rows, caption))
    return combined


def main() -> int:
    publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
