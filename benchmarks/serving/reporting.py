"""The results of bench_serving.py in words: one table per concurrency, Shipyard's ratios against
its targets, and the lines of the "## Serving" section of docs/benchmarks.md."""

from __future__ import annotations

import argparse

from loadgen import LOADS, Load
from servers import PEERS, SHIPYARD, Server

# ------------------------------------------------------------------------------------ reporting


def at(server: Server, conns: int) -> Load | None:
    return next((ld for ld in server.loads if ld.connections == conns), None)


def ratios(by_key: dict[str, Server]) -> tuple[list[str], bool]:
    """Lines comparing Shipyard with the best peer and the ceiling; and whether all targets hold."""
    ours = [s for k in SHIPYARD if (s := by_key.get(k)) and at(s, 64)]
    peers = [s for k in PEERS if (s := by_key.get(k)) and at(s, 64)]
    hello = by_key.get("hello")
    if not ours:
        return ["Shipyard did not run: no ratios."], False
    best = max(ours, key=lambda s: at(s, 64).rps)
    b64 = at(best, 64)
    lines, ok = [], True

    def verdict(met: bool) -> str:
        nonlocal ok
        ok &= met
        return "met" if met else "**missed**"

    if peers:
        peer = max(peers, key=lambda s: at(s, 64).rps)
        p64 = at(peer, 64)
        x = b64.rps / p64.rps
        lines.append(
            f"- req/s at c=64, {best.label} vs the best peer ({peer.label}): "
            f"**{x:.1f}×** ({b64.rps:,.0f} vs {p64.rps:,.0f}; target ≥ 5×: {verdict(x >= 5)})"
        )
        low = min(peers, key=lambda s: at(s, 64).p99_ms)
        l64 = at(low, 64)
        lines.append(
            f"- p99 at c=64, {best.label} vs the best peer p99 ({low.label}): "
            f"**{b64.p99_ms:.1f} ms vs {l64.p99_ms:.1f} ms** "
            f"(target no worse: {verdict(b64.p99_ms <= l64.p99_ms)})"
        )
        ours1 = [s for s in ours if at(s, 1)]
        peers1 = [s for s in peers if at(s, 1)]
        if ours1 and peers1:
            o = min(ours1, key=lambda s: at(s, 1).p50_ms)
            p = min(peers1, key=lambda s: at(s, 1).p50_ms)
            o1, q1 = at(o, 1).p50_ms, at(p, 1).p50_ms
            lines.append(
                f"- p50 at c=1, {o.label} vs the best peer ({p.label}): **{o1:.2f} ms vs {q1:.2f} ms** "
                f"= {o1 / q1:.0%} (target ≤ 50 %: {verdict(o1 <= q1 / 2)})"
            )
    else:
        lines.append("- no peer ran: no comparison with peers.")
        ok = False
    if hello and at(hello, 64):
        share = b64.rps / at(hello, 64).rps
        lines.append(
            f"- req/s at c=64, {best.label} vs the bare ASGI hello-world: "
            f"**{share:.0%}** (target ≥ 50 %: {verdict(share >= 0.5)})"
        )
    granian = by_key.get("hello-granian")
    if hello and granian and at(hello, 64) and at(granian, 64) and at(hello, 1) and at(granian, 1):
        lines.append(
            "- HTTP stack, hello-world on granian vs on uvicorn: "
            f"{at(granian, 64).rps / at(hello, 64).rps:.0%}"
            f" of the req/s at c=64, p50 at c=1 {at(granian, 1).p50_ms:.2f} vs {at(hello, 1).p50_ms:.2f} ms"
            " (Shipyard stays on uvicorn + uvloop + httptools unless granian is clearly faster)"
        )
    nonzero = [
        f"{s.label} c={ld.connections}: {ld.non_2xx}" for s in by_key.values() for ld in s.loads if ld.non_2xx
    ]
    if nonzero:
        lines.append(f"- non-2xx answers: {'; '.join(nonzero)}.")
    return lines, ok


def table(servers_: list[Server], conns: int) -> list[str]:
    lines = [
        f"Concurrency {conns} (`wrk -t{dict((c, t) for t, c in LOADS)[conns]} -c{conns}`):",
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in servers_:
        ld = at(s, conns)
        if ld is None:
            lines.append(f"| {s.label} | not run: {s.not_run or 'no result'} | | | |")
            continue
        extra = ""
        if ld.socket_errors or ld.timeouts:
            extra = f" (+{ld.socket_errors} socket errors, {ld.timeouts} timeouts)"
        lines.append(
            f"| {s.label} | {ld.rps:,.0f} | {ld.p50_ms:.2f} | {ld.p99_ms:.2f} | {ld.non_2xx:,}{extra} |"
        )
    return [*lines, ""]


def report(servers_: list[Server], args: argparse.Namespace, pin: str) -> tuple[list[str], bool]:
    by_key = {s.key: s for s in servers_}
    ratio_lines, ok = ratios(by_key)
    lines = [
        "Diabetes Ridge model (alpha 0.5), `POST` of two rows, one server process each, load from "
        f"wrk {args.duration:g} s per concurrency after a {args.warmup:g} s warm-up; {pin}. "
        "Latencies as wrk measures them (closed loop). Absolute numbers on a shared 2-core machine "
        "are noisy; the ratios within one run are the figures.",
        "",
        *[ln for c in (1, 8, 64) for ln in table(servers_, c)],
        "Shipyard against the others (Shipyard's better variant at c=64 by req/s; targets from the brief):",
        "",
        *ratio_lines,
        "",
        "How each server was started:",
        "",
        *[f"- {s.label}: {s.settings or 'not run'}" for s in servers_],
        "",
        "Load average (1/5/15 min) when each server's measurement started: "
        + "; ".join(
            f"{s.label} {s.load_avg[0]:.2f}/{s.load_avg[1]:.2f}/{s.load_avg[2]:.2f}"
            for s in servers_
            if s.load_avg
        )
        + ". See benchmarks/serving/README.md.",
    ]
    return lines, ok
