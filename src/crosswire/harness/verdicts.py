"""The verdicts: what must hold at the end of a run, judged from the ledger's books."""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from .scenario import Verdicts
from .traffic import Offer

__all__ = ["Books", "PairBook", "Verdict", "judge", "percentile"]


class Verdict(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    expected: str
    actual: str
    detail: list[str] = []


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


class PairBook(Protocol):
    """The books of one event in one binding."""

    @property
    def runs(self) -> int: ...
    @property
    def ok(self) -> int: ...
    @property
    def first_start(self) -> float: ...
    @property
    def first_ok(self) -> float: ...
    @property
    def faulted(self) -> bool: ...
    @property
    def dead(self) -> tuple[str, int] | None: ...


class Books(Protocol):
    """What the verdicts read of the ledger."""

    @property
    def t0(self) -> float: ...
    @property
    def offers(self) -> Sequence[Offer]: ...
    @property
    def routes(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def max_attempts(self) -> Mapping[str, int]: ...
    @property
    def pairs(self) -> Mapping[tuple[int, str], PairBook]: ...
    @property
    def refused(self) -> Container[int]: ...
    @property
    def healthy_latencies(self) -> Sequence[float]: ...

    def fates(self) -> dict[str, Any]: ...


def judge(
    books: Books,
    spec: Verdicts,
    *,
    windows: Sequence[tuple[float, float]],
    max_rss: int | None,
    node_kills: Sequence[float] = (),
) -> list[Verdict]:
    """The verdicts ``spec`` asks for; see :meth:`Ledger.verdicts`."""
    fates = books.fates()
    out: list[Verdict] = []
    if spec.lost is not None:
        lost = fates["lost"] + fates["follow_ups"]["lost"]
        actual = str(lost) + (f" ({fates['follow_ups']['lost']} follow-ups)" if fates["follow_ups"]["lost"] else "")
        out.append(Verdict("lost", lost <= spec.lost, f"<= {spec.lost}", actual, fates["lost_examples"]))
    if spec.max_duplicates is not None:
        out.append(
            Verdict(
                "duplicates",
                fates["duplicates"] <= spec.max_duplicates,
                f"<= {spec.max_duplicates}",
                str(fates["duplicates"]),
                fates["duplicate_examples"],
            )
        )
    if spec.max_dead_lettered is not None:
        n, examples = _healthy_dead(books)
        out.append(
            Verdict(
                "dead_lettered",
                n <= spec.max_dead_lettered,
                f"<= {spec.max_dead_lettered} (not poison)",
                str(n),
                examples,
            )
        )
    if spec.poison_dead_lettered:
        out.append(_poison(books, node_kills))
    if spec.p99_ms is not None:
        p99 = percentile(books.healthy_latencies, 99)
        actual = "no healthy event handled" if p99 is None else f"{p99 * 1000:.1f} ms"
        out.append(Verdict("p99", p99 is not None and p99 * 1000 <= spec.p99_ms, f"<= {spec.p99_ms:g} ms", actual))
    if spec.healthy_throughput_pct is not None:
        out.append(_throughput(books, spec.healthy_throughput_pct, windows))
    if spec.key_order:
        out.append(_key_order(books))
    if spec.max_rss_mb is not None:
        mb = (max_rss or 0) / 2**20
        out.append(
            Verdict("rss", max_rss is not None and mb <= spec.max_rss_mb, f"<= {spec.max_rss_mb:g} MB", f"{mb:.0f} MB")
        )
    return out


def _healthy_dead(books: Books) -> tuple[int, list[str]]:
    n = 0
    examples: list[str] = []
    for (idx, binding), pair in books.pairs.items():
        if pair.dead is None or books.offers[idx].poison or pair.ok:
            continue
        n += 1
        if len(examples) < 20:
            o = books.offers[idx]
            examples.append(
                f"{o.id} in {binding}: {pair.dead[0]} after {pair.runs} runs ({pair.dead[1]} in the letter)"
            )
    return n, examples


def _poison(books: Books, node_kills: Sequence[float]) -> Verdict:
    total = bad = short = 0
    detail: list[str] = []
    notes: list[str] = []
    for idx, o in enumerate(books.offers):
        if not o.poison or idx in books.refused:
            continue
        for binding in books.routes.get(o.type, ()):
            total += 1
            pair = books.pairs.get((idx, binding))
            want = books.max_attempts.get(binding, 0)
            runs = pair.runs if pair else 0
            dead = pair.dead if pair else None
            kills = sum(1 for k in node_kills if k >= o.at)
            if dead is not None and want - kills <= runs < want:
                short += 1  # a delivery held by a killed node was counted as a run
                if len(notes) < 5:
                    notes.append(f"{o.id} in {binding}: {runs} runs, {want - runs} delivery lost with a killed node")
            elif dead is None or runs != want:
                bad += 1
                if len(detail) < 20:
                    state = f"dead-lettered ({dead[0]})" if dead else "not dead-lettered"
                    detail.append(f"{o.id} in {binding}: {state} after {runs} runs (max_attempts {want})")
    actual = f"{bad} not" + (f" ({short} one run short after a node SIGKILL)" if short else "")
    return Verdict(
        "poison_dead_lettered",
        bad == 0 and total > 0,
        f"all {total} after max_attempts runs",
        actual,
        detail + notes,
    )


def _throughput(books: Books, pct: float, windows: Sequence[tuple[float, float]]) -> Verdict:
    if not windows:
        return Verdict("healthy_throughput", True, f">= {pct:g}% during faults", "no fault windows")

    def inside(t: float) -> bool:
        return any(a <= t < b for a, b in windows)

    offered = handled = 0
    for idx, o in enumerate(books.offers):
        if o.poison or idx in books.refused:
            continue
        for binding in books.routes.get(o.type, ()):
            pair = books.pairs.get((idx, binding))
            if pair is not None and pair.faulted:
                continue
            if inside(o.at):
                offered += 1
            if pair is not None and pair.ok and inside(pair.first_ok - books.t0):
                handled += 1
    if offered == 0:
        return Verdict("healthy_throughput", True, f">= {pct:g}% during faults", "nothing offered during faults")
    got = 100.0 * handled / offered
    return Verdict("healthy_throughput", got >= pct, f">= {pct:g}% during faults", f"{got:.1f}% ({handled}/{offered})")


def _key_order(books: Books) -> Verdict:
    last: dict[tuple[str, str], tuple[float, str]] = {}
    bad = 0
    detail: list[str] = []
    for idx, o in enumerate(books.offers):
        if o.key is None or idx in books.refused:
            continue
        for binding in books.routes.get(o.type, ()):
            pair = books.pairs.get((idx, binding))
            if pair is None or pair.runs == 0:
                continue
            k = (binding, o.key)
            prev = last.get(k)
            if prev is not None and pair.first_start < prev[0]:
                bad += 1
                if len(detail) < 20:
                    detail.append(f"{binding} key {o.key}: {o.id} started before the earlier {prev[1]}")
            if prev is None or pair.first_start > prev[0]:
                last[k] = (pair.first_start, o.id)
    return Verdict("key_order", bad == 0, "first runs in offer order, per key", f"{bad} out of order", detail)
