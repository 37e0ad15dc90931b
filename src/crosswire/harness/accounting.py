"""The ledger: every offered event, every handler run, every dead letter — and the
verdicts computed from them (in :mod:`.verdicts`).

The fate of an event in a binding is one of: **handled** (n successful runs; more
than one is a duplicate), **dead-lettered** (with its code, after n runs), **refused**
(``submit`` did not accept it: backpressure) or **lost** (none of these).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .scenario import Verdicts
from .traffic import Offer
from .verdicts import Verdict, judge, percentile

__all__ = ["Ledger", "Verdict", "percentile"]


class _Pair:
    """One event in one binding."""

    __slots__ = ("code", "dead", "faulted", "first_ok", "first_start", "ok", "runs")

    def __init__(self) -> None:
        self.runs = 0
        self.ok = 0
        self.first_start = math.inf
        self.first_ok = 0.0  # wall time the first successful run ended
        self.code = ""  # the last failed run's code
        self.faulted = False
        self.dead: tuple[str, int] | None = None  # (code, attempts in the letter)


class Ledger:
    """The harness's books. ``t0`` is the wall time of scenario second 0."""

    def __init__(self, t0: float, bin_seconds: float = 1.0) -> None:
        self.t0 = t0
        self.bin = bin_seconds
        self.index: dict[str, int] = {}
        self.offers: list[Offer] = []
        self.routes: dict[str, list[str]] = {}
        self.max_attempts: dict[str, int] = {}
        self.pairs: dict[tuple[int, str], _Pair] = {}
        self.refused: set[int] = set()
        self.foreign_runs = 0  # runs of events the harness did not offer and cannot trace to one
        # follow-up events (emitted by handlers) traced to an offered event, per binding;
        # accounted once they reach a handler
        self.follow_ups: dict[tuple[str, str], _Pair] = {}
        self.run_count = 0
        self.failed_runs = 0
        self.handled_pairs = 0
        self.final_failures = 0
        self.offered_bins: list[int] = []
        self.handled_bins: list[int] = []
        self.failed_bins: list[int] = []
        self.latency_bins: list[list[float]] = []
        self.healthy_latencies: list[float] = []
        self.letters_seen = False
        self.expected = 0

    # -- input -------------------------------------------------------------------------

    def offer(self, offers: Iterable[Offer]) -> None:
        index, store, bins, routes = self.index, self.offers, self.offered_bins, self.routes
        width = self.bin
        expected = 0
        for o in offers:
            expected += len(routes.get(o.type, ()))
            index[o.id] = len(store)
            store.append(o)
            b = int(o.at / width)
            if b >= len(bins):
                bins.extend([0] * (b + 1 - len(bins)))
            bins[b] += 1
        self.expected += expected

    def refuse(self, ids: Iterable[str]) -> None:
        for i in ids:
            idx = self.index.get(i)
            if idx is not None and idx not in self.refused:
                self.refused.add(idx)
                self.expected -= len(self.routes.get(self.offers[idx].type, ()))

    def add_runs(self, runs: Iterable[Sequence[Any]]) -> None:
        index, pairs, offers, max_attempts = self.index, self.pairs, self.offers, self.max_attempts
        t0, width = self.t0, self.bin
        handled_bins, failed_bins, latency_bins = self.handled_bins, self.failed_bins, self.latency_bins
        healthy = self.healthy_latencies
        count = failed = handled = final = foreign = 0
        follow = self.follow_ups
        for event_id, binding, number, start, end, code, faulted, root in runs:
            idx = index.get(event_id)
            if idx is None:
                if root and root in index:  # a follow-up of an offered event: its own books
                    fkey = (event_id, binding)
                    fpair = follow.get(fkey)
                    if fpair is None:
                        fpair = follow[fkey] = _Pair()
                    if code == "^":
                        fpair.runs += 1
                    elif code == "~":
                        fpair.runs -= 1
                    elif code:
                        fpair.code = code
                    else:
                        fpair.ok += 1
                elif code == "^":
                    foreign += 1  # runs of events the harness knows nothing of
                continue
            key = (idx, binding)
            pair = pairs.get(key)
            if pair is None:
                pair = pairs[key] = _Pair()
            if code == "^":  # a run started: it counts even if the node dies before it ends
                pair.runs += 1
                count += 1
                if start < pair.first_start:
                    pair.first_start = start
                continue
            if code == "~":  # dedup acknowledged it without running the handler
                pair.runs -= 1
                count -= 1
                continue
            if faulted:
                pair.faulted = True
            b = int((end - t0) / width)
            if b < 0:
                b = 0
            if code:
                pair.code = code
                failed += 1
                if b >= len(failed_bins):
                    failed_bins.extend([0] * (b + 1 - len(failed_bins)))
                failed_bins[b] += 1
                maximum = max_attempts.get(binding, 0)
                if number >= maximum > 0 and pair.ok == 0:
                    final += 1
                continue
            pair.ok += 1
            if pair.ok == 1:
                handled += 1
                pair.first_ok = end
                if b >= len(handled_bins):
                    handled_bins.extend([0] * (b + 1 - len(handled_bins)))
                handled_bins[b] += 1
                offer = offers[idx]
                if not offer.poison and not pair.faulted:
                    latency = end - (t0 + offer.at)
                    healthy.append(latency)
                    while b >= len(latency_bins):
                        latency_bins.append([])
                    latency_bins[b].append(latency)
        self.run_count += count
        self.failed_runs += failed
        self.handled_pairs += handled
        self.final_failures += final
        self.foreign_runs += foreign

    def add_letters(self, letters: Iterable[Sequence[Any]]) -> None:
        self.letters_seen = True
        for event_id, binding, code, attempts in letters:
            idx = self.index.get(event_id)
            if idx is None:
                fpair = self.follow_ups.get((event_id, binding))
                if fpair is not None:
                    fpair.dead = (code, int(attempts))
                continue
            pair = self.pairs.get((idx, binding))
            if pair is None:
                pair = self.pairs[(idx, binding)] = _Pair()
            pair.dead = (code, int(attempts))

    # -- questions ---------------------------------------------------------------------

    def expected_pairs(self) -> int:
        return self.expected

    def unresolved(self) -> int:
        """Pairs with no successful run and no sign of a final failure (an estimate,
        until the dead letters are read)."""
        return max(0, self.expected_pairs() - self.handled_pairs - self.final_failures)

    def fates(self) -> dict[str, Any]:
        handled = dead = lost = dup = 0
        both = 0
        dead_codes: dict[str, int] = {}
        lost_ids: list[str] = []
        dup_ids: list[str] = []
        for idx, o in enumerate(self.offers):
            if idx in self.refused:
                continue
            for binding in self.routes.get(o.type, ()):
                pair = self.pairs.get((idx, binding))
                if pair is not None and pair.ok:
                    handled += 1
                    if pair.ok > 1:
                        dup += 1
                        if len(dup_ids) < 20:
                            dup_ids.append(f"{o.id} in {binding}: {pair.ok} times")
                    if pair.dead is not None:
                        both += 1
                elif pair is not None and pair.dead is not None:
                    dead += 1
                    dead_codes[pair.dead[0]] = dead_codes.get(pair.dead[0], 0) + 1
                else:
                    lost += 1
                    if len(lost_ids) < 20:
                        runs = pair.runs if pair else 0
                        lost_ids.append(
                            f"{o.id} in {binding} ({runs} runs{', last ' + pair.code if pair and pair.code else ''})"
                        )
        f_handled = f_dead = f_lost = 0
        for (fid, binding), fpair in self.follow_ups.items():
            if fpair.ok:
                f_handled += 1
            elif fpair.dead is not None:
                f_dead += 1
            else:
                f_lost += 1
                if len(lost_ids) < 20:
                    lost_ids.append(f"follow-up {fid} in {binding} ({fpair.runs} runs, last {fpair.code or '-'})")
        return {
            "offered": len(self.offers),
            "follow_ups": {"handled": f_handled, "dead_lettered": f_dead, "lost": f_lost},
            "refused": len(self.refused),
            "expected": self.expected_pairs(),
            "handled": handled,
            "dead_lettered": dead,
            "dead_letter_codes": dead_codes,
            "lost": lost,
            "duplicates": dup,
            "handled_and_dead_lettered": both,
            "runs": self.run_count,
            "failed_runs": self.failed_runs,
            "foreign_runs": self.foreign_runs,
            "lost_examples": lost_ids,
            "duplicate_examples": dup_ids,
        }

    # -- verdicts ----------------------------------------------------------------------

    def verdicts(
        self,
        spec: Verdicts,
        *,
        windows: Sequence[tuple[float, float]],
        max_rss: int | None,
        node_kills: Sequence[float] = (),
    ) -> list[Verdict]:
        """``node_kills``: scenario times of node SIGKILLs. A delivery a killed node held
        may count as a run without running (its fate cannot be known after the crash);
        a poison event offered before a kill may therefore end one run short per kill,
        and says so in the verdict's detail."""
        return judge(self, spec, windows=windows, max_rss=max_rss, node_kills=node_kills)

    # -- series --------------------------------------------------------------------------

    def series(self) -> dict[str, list[Any]]:
        n = max(len(self.offered_bins), len(self.handled_bins), len(self.failed_bins), len(self.latency_bins))

        def pad(xs: list[Any], zero: Any) -> list[Any]:
            return xs + [zero] * (n - len(xs))

        lat = pad(self.latency_bins, [])
        return {
            "t": [round(i * self.bin, 3) for i in range(n)],
            "offered_per_s": [x / self.bin for x in pad(self.offered_bins, 0)],
            "handled_per_s": [x / self.bin for x in pad(self.handled_bins, 0)],
            "failed_runs_per_s": [x / self.bin for x in pad(self.failed_bins, 0)],
            "p50_ms": [_ms(percentile(v, 50)) for v in lat],
            "p99_ms": [_ms(percentile(v, 99)) for v in lat],
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)
