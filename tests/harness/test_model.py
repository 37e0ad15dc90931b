"""Scenario model, traffic plans, payload generation, fault middleware, ledger: in-process, fast."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import random
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest

import crosswire
from crosswire._types import Attempt, Outcome
from crosswire.harness import (
    POISON_EXTENSION,
    Burst,
    Constant,
    FaultMiddleware,
    HandlerError,
    HandlerLatency,
    Keys,
    Ledger,
    Payload,
    Ramp,
    Scenario,
    Sine,
    Step,
    Sum,
    Traffic,
    TrafficPlan,
    Verdicts,
    generate,
    load,
    loads,
    rate_at,
)
from crosswire.harness.record import recorded_line

SCENARIOS = Path(__file__).parents[2] / "examples" / "scenarios"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Line(msgspec.Struct):
    sku: Annotated[str, msgspec.Meta(min_length=3, max_length=5)]
    qty: Annotated[int, msgspec.Meta(ge=1, le=9)]


@dataclasses.dataclass
class Address:
    city: str
    zip: Annotated[int, msgspec.Meta(ge=10000, le=99999)]


class Order(msgspec.Struct):
    order_id: Annotated[int, msgspec.Meta(gt=0)]
    price: Annotated[float, msgspec.Meta(ge=0.5, lt=2.0)]
    lines: Annotated[list[Line], msgspec.Meta(min_length=1, max_length=3)]
    color: Color
    mode: Literal["fast", "slow"]
    address: Address
    note: str | None = None
    tags: dict[str, int] = {}
    blob: bytes = b""


def test_every_shipped_scenario_loads() -> None:
    files = sorted(SCENARIOS.glob("*.toml"))
    assert len(files) >= 7
    for f in files:
        s = load(f)
        assert s.traffic, f
        assert s.verdicts.lost == 0, f


def test_toml_errors_name_the_field() -> None:
    with pytest.raises(crosswire.ConfigurationError, match=r"rate"):
        loads('[[traffic]]\ntype = "a.b"\nshape = { kind = "constant", rate = -1 }\n')
    with pytest.raises(crosswire.ConfigurationError, match=r"kind"):
        loads('[[traffic]]\ntype = "a.b"\nshape = { kind = "square", rate = 1 }\n')
    with pytest.raises(crosswire.ConfigurationError, match=r"needs a type"):
        loads("[[traffic]]\n")
    with pytest.raises(crosswire.ConfigurationError, match=r"not valid TOML"):
        loads("duration = = 1")


def test_shapes_give_their_rates() -> None:
    assert rate_at(Constant(rate=5), 3.0, 10) == 5
    assert rate_at(Ramp(start_rate=0, end_rate=100), 5.0, 10) == 50
    assert rate_at(Ramp(start_rate=0, end_rate=100, over=2), 5.0, 10) == 100
    assert rate_at(Step(steps=[(0, 10), (2, 30)]), 1.0, 10) == 10
    assert rate_at(Step(steps=[(0, 10), (2, 30)]), 2.5, 10) == 30
    b = Burst(rate=100, on=1, off=3, base=2)
    assert [rate_at(b, t, 10) for t in (0.5, 1.5, 4.2)] == [100, 2, 100]
    sine = Sine(base=100, amplitude=50, period=4)
    assert rate_at(sine, 1.0, 10) == pytest.approx(150)
    assert rate_at(sine, 3.0, 10) == pytest.approx(50)
    assert rate_at(Sine(base=10, amplitude=50, period=4), 3.0, 10) == 0
    assert rate_at(Sum(parts=[Constant(rate=5), Burst(rate=10, on=1, off=1)]), 0.5, 10) == 15


def _plan(**traffic: object) -> TrafficPlan:
    traffic.setdefault("payload", Payload(distinct=32))
    t = Traffic(type="order.created", **traffic)  # type: ignore[arg-type]
    return TrafficPlan(Scenario(duration=4, seed=3, traffic=[t]), lambda _t: Order)


def test_even_arrivals_follow_the_rate_and_the_seed_fixes_everything() -> None:
    offers = _plan(shape=Constant(rate=250), poison=0.1).all()
    assert len(offers) == 1000
    again = _plan(shape=Constant(rate=250), poison=0.1).all()
    assert [(o.id, o.key, o.data, o.poison, o.at) for o in offers] == [
        (o.id, o.key, o.data, o.poison, o.at) for o in again
    ]
    assert 60 <= sum(1 for o in offers if o.poison) <= 140
    assert all(a.at <= b.at for a, b in itertools.pairwise(offers))
    other = TrafficPlan(
        Scenario(
            duration=4,
            seed=4,
            traffic=[Traffic(type="order.created", shape=Constant(rate=250), payload=Payload(distinct=32))],
        ),
        lambda _t: Order,
    ).all()
    assert [o.key for o in other] != [o.key for o in offers]


def test_poisson_arrivals_average_the_rate() -> None:
    offers = _plan(shape=Constant(rate=500), arrivals="poisson").all()
    assert 1800 <= len(offers) <= 2200
    per_tick = Counter(round(o.at / 0.005) for o in offers)
    assert len(set(per_tick.values())) > 1  # not evenly spaced


def test_waveform_plan_is_denser_at_the_peak() -> None:
    offers = _plan(shape=Sine(base=200, amplitude=150, period=4)).all()
    first_half = sum(1 for o in offers if o.at < 2)
    second_half = len(offers) - first_half
    assert first_half > 2 * second_half


def test_zipf_keys_are_hot() -> None:
    offers = _plan(shape=Constant(rate=1000), keys=Keys(kind="zipf", count=100, s=1.2)).all()
    counts = Counter(o.key for o in offers).most_common()
    assert counts[0][0] == "k0"
    assert counts[0][1] > 10 * counts[-1][1]
    uniform = Counter(o.key for o in _plan(shape=Constant(rate=1000), keys=Keys(count=10)).all())
    assert max(uniform.values()) < 2 * min(uniform.values())
    assert all(o.key is None for o in _plan(shape=Constant(rate=10), keys=Keys(kind="none")).all())


def test_payloads_from_the_type_are_valid_by_construction() -> None:
    rng = random.Random(1)
    for _ in range(300):
        order = generate(Order, rng)
        assert isinstance(order, Order)
        assert order.order_id > 0 and 0.5 <= order.price < 2.0
        assert 1 <= len(order.lines) <= 3 and all(3 <= len(line.sku) <= 5 for line in order.lines)
        assert isinstance(order.address, Address) and 10000 <= order.address.zip <= 99999
        # and it round-trips through the handler's decoder
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(order), type=Order) == order
    offers = _plan(shape=Constant(rate=50)).all()
    decoded = [msgspec.msgpack.decode(o.data or b"", type=Order) for o in offers]
    assert len({d.order_id for d in decoded}) > 10


def test_payload_type_with_a_pattern_is_refused_clearly() -> None:
    class Coded(msgspec.Struct):
        code: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]

    with pytest.raises(crosswire.ConfigurationError, match="pattern"):
        generate(Coded, random.Random(1))


def test_sample_and_fixed_payloads(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"a": 1}\n{"a": 2}\n')
    text = f"""
duration = 1
[[traffic]]
type = "x.y"
shape = {{ kind = "constant", rate = 100 }}
payload = {{ kind = "samples", file = "{samples.name}" }}
[[traffic]]
type = "x.z"
shape = {{ kind = "constant", rate = 100 }}
payload = {{ kind = "fixed", value = {{ ms = 5 }}, encoding = "json" }}
"""
    scenario = loads(text, base=tmp_path)
    offers = TrafficPlan(scenario, lambda _t: None).all()
    ys = {msgspec.msgpack.decode(o.data or b"")["a"] for o in offers if o.type == "x.y"}
    assert ys == {1, 2}
    zs = [o for o in offers if o.type == "x.z"]
    assert zs and all(o.data == b'{"ms":5}' and o.content_type == "application/json" for o in zs)
    with pytest.raises(crosswire.ConfigurationError, match="no payload type"):
        TrafficPlan(Scenario(traffic=[Traffic(type="a.b")]), lambda _t: None)


def test_replay_keeps_types_keys_payloads_and_scales_time(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    events = [
        crosswire.Event.new("order.created", b'{"n": 1}', datacontenttype="application/json", key="a"),
        crosswire.Event.new("order.paid", b"\x81\xa1n\x02", datacontenttype="application/msgpack", key="b"),
        crosswire.Event.new("order.created", None, key=None),
        crosswire.Event.new("order.created", b'{"n":3}', datacontenttype="application/json", key="a"),
    ]
    rec.write_bytes(
        b'{"recording": {}}\n'
        + b"".join(recorded_line(e, t) for e, t in zip(events, (0.0, 1.0, 2.0, 2.0), strict=True))
    )
    scenario = loads(f'[[traffic]]\nshape = {{ kind = "replay", file = "{rec}", speed = 4 }}\n')
    offers = TrafficPlan(scenario, lambda _t: None).all()
    assert [(o.type, o.key, o.data) for o in offers] == [(e.type, e.partitionkey, e.data) for e in events]
    assert [round(o.at, 2) for o in offers] == [0.0, 0.25, 0.5, 0.5]
    assert b'"data":{"n":3}' in rec.read_bytes()  # readable when the bytes survive


def test_scaled_multiplies_times_not_rates() -> None:
    s = load(SCENARIOS / "waveform_day.toml")
    big = s.scaled(5)
    assert big.duration == s.duration * 5
    assert big.traffic[0].shape.period == s.traffic[0].shape.period * 5  # type: ignore[union-attr]
    assert big.traffic[0].shape.base == s.traffic[0].shape.base  # type: ignore[union-attr]
    assert [f.at for f in big.faults] == [f.at * 5 for f in s.faults]


def _attempt(event_id: str, number: int = 1, binding: str = "b", **ext: object) -> Attempt:
    return Attempt(
        event=crosswire.Event.new("t.x", None, id=event_id, extensions=ext or None), binding=binding, number=number
    )  # type: ignore[arg-type]


async def _ok(_a: Attempt) -> Outcome:
    return Outcome()


async def test_fault_middleware_is_deterministic_and_logs_every_run() -> None:
    mw = FaultMiddleware(seed=5)
    handler = mw(_ok)
    mw.activate(0, HandlerError(rate=0.3, code="unavailable"))
    first = [(await handler(_attempt(f"e{i}"))).ok for i in range(400)]
    assert 80 <= first.count(False) <= 160
    again = [(await handler(_attempt(f"e{i}"))).ok for i in range(400)]
    assert first == again
    assert sum(1 for r in mw.runs if r[5] == "^") == 800
    runs = [r for r in mw.runs if r[5] != "^"]
    assert len(runs) == 800
    assert {r[5] for r in runs} == {"", "unavailable"}
    assert all(r[6] == (r[5] != "") for r in runs)
    mw.deactivate(0)
    assert (await handler(_attempt("e1"))).ok


async def test_flaky_events_fail_their_first_attempts_then_succeed() -> None:
    mw = FaultMiddleware(seed=1)
    handler = mw(_ok)
    mw.activate(3, HandlerError(rate=0.5, first_attempts=2, code="unavailable", binding="b"))
    flaky = [i for i in range(100) if not (await handler(_attempt(f"e{i}", 1))).ok]
    assert 30 <= len(flaky) <= 70
    for i in flaky:
        assert not (await handler(_attempt(f"e{i}", 2))).ok
        assert (await handler(_attempt(f"e{i}", 3))).ok
    other = [(await handler(_attempt(f"e{i}", 1, binding="other"))).ok for i in range(100)]
    assert all(other)


async def test_poison_marks_fail_every_run_and_latency_waits() -> None:
    mw = FaultMiddleware(seed=1)
    handler = mw(_ok)
    out = await handler(_attempt("p", 1, **{POISON_EXTENSION: 1}))
    assert out.error is not None and out.error.retryable
    marked = await handler(_attempt("m", 1, **{POISON_EXTENSION: 2}))
    assert marked.ok  # "mark": the handler decides
    mw.activate(1, HandlerLatency(dist="fixed", ms=30))
    t0 = asyncio.get_running_loop().time()
    assert (await handler(_attempt("slow"))).ok
    assert asyncio.get_running_loop().time() - t0 >= 0.025
    assert mw.runs[-1][6] is False  # slow is not failed


def test_ledger_fates_and_verdicts() -> None:
    plan = TrafficPlan(
        Scenario(duration=1, traffic=[Traffic(type="t.x", shape=Constant(rate=10), keys=Keys(count=2), poison=0.3)]),
        lambda _t: dict,
    )
    offers = plan.all()
    ledger = Ledger(t0=1000.0, bin_seconds=0.5)
    ledger.routes["t.x"] = ["b"]
    ledger.max_attempts["b"] = 3
    ledger.offer(offers)
    poison = [o for o in offers if o.poison]
    healthy = [o for o in offers if not o.poison]
    assert poison and len(healthy) > 3
    ends = []
    for o in poison:
        ends += [(o.id, "b", n, 1000 + o.at, 1000.1 + o.at, "handler_error", True, "") for n in (1, 2, 3)]
    ok = healthy[:-1]
    ends += [(o.id, "b", 1, 1000 + o.at, 1000.01 + o.at, "", False, "") for o in ok]
    ends.append((ok[0].id, "b", 2, 1001.5, 1001.6, "", False, ""))  # a duplicate
    ends.append(("not-ours", "b", 1, 1000.0, 1000.1, "", False, ""))
    runs = [(i, b, n, s, 0.0, "^", False, "") for i, b, n, s, _e, _c, _f, _r in ends]  # each run starts, then ends
    ledger.add_runs(runs + ends)
    ledger.add_letters([[o.id, "b", "handler_error", 3] for o in poison])
    fates = ledger.fates()
    assert fates["handled"] == len(ok)
    assert fates["dead_lettered"] == len(poison)
    assert fates["lost"] == 1 and healthy[-1].id in fates["lost_examples"][0]
    assert fates["duplicates"] == 1 and fates["foreign_runs"] == 1
    verdicts = {
        v.name: v
        for v in ledger.verdicts(
            Verdicts(lost=0, max_duplicates=0, poison_dead_lettered=True, p99_ms=50, key_order=True, max_rss_mb=100),
            windows=[],
            max_rss=50 * 2**20,
        )
    }
    assert not verdicts["lost"].ok and not verdicts["duplicates"].ok
    assert verdicts["poison_dead_lettered"].ok and verdicts["p99"].ok and verdicts["key_order"].ok
    assert verdicts["rss"].ok
    # a poison event with one run too many fails its verdict; an out-of-order start fails key order
    ledger.add_runs([(poison[0].id, "b", 4, 1002.0, 0.0, "^", False, "")])  # a fourth run, cut short
    k = healthy[1].key
    later = next(o for o in ok if o.key == k and o.at > healthy[1].at)
    ledger.pairs[(ledger.index[later.id], "b")].first_start = 999.0
    verdicts = {
        v.name: v
        for v in ledger.verdicts(Verdicts(poison_dead_lettered=True, key_order=True), windows=[], max_rss=None)
    }
    assert not verdicts["poison_dead_lettered"].ok and "4 runs" in verdicts["poison_dead_lettered"].detail[0]
    assert ledger.fates()["runs"] == len(ends) - 1 + 1  # the foreign run is not counted; the cut-short one is
    assert not verdicts["key_order"].ok


async def test_a_hang_lasts_until_the_timeout_policy_cuts_it_and_the_run_is_logged() -> None:
    from crosswire.harness import HandlerHang

    mw = FaultMiddleware(seed=1)
    handler = mw(_ok)
    mw.activate(0, HandlerHang(rate=1.0, seconds=60))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handler(_attempt("h")), 0.05)
    assert mw.runs[-1][5] == "cancelled" and mw.runs[-1][6] is True


async def test_recording_middleware_writes_first_attempts_replayably(tmp_path: Path) -> None:
    from crosswire.harness.record import RecordingMiddleware
    from crosswire.harness.traffic import read_recording

    rec = RecordingMiddleware(tmp_path / "node.jsonl")
    handler = rec(_ok)
    await handler(_attempt("a", 1))
    await handler(_attempt("a", 2))  # a retry is not a new event
    await handler(_attempt("b", 1))
    rec.close()
    assert [r.id for r in read_recording(tmp_path / "node.jsonl")] == ["a", "b"]


def test_a_seed_reproduces_ids_and_therefore_every_fault_decision() -> None:
    s = load(SCENARIOS / "waveform_day.toml")
    s = msgspec.structs.replace(s, traffic=[msgspec.structs.replace(s.traffic[0], payload=Payload(distinct=8))])
    a = TrafficPlan(s, lambda _t: Order).all()
    b = TrafficPlan(s, lambda _t: Order).all()
    assert [o.id for o in a] == [o.id for o in b] and a[0].id.startswith(f"h{s.seed}.")


def test_a_poison_event_may_end_one_run_short_per_node_kill_it_lived_through() -> None:
    ledger = Ledger(t0=0.0)
    ledger.routes["t.x"] = ["b"]
    ledger.max_attempts["b"] = 3
    from crosswire.harness import Offer

    ledger.offer([Offer("p1", "t.x", None, None, None, 1, 1.0), Offer("p2", "t.x", None, None, None, 1, 9.0)])
    for eid in ("p1", "p2"):
        ledger.add_runs([(eid, "b", n, 10.0, 0.0, "^", False, "") for n in (1, 2)])
    ledger.add_letters([["p1", "b", "cancelled", 2], ["p2", "b", "cancelled", 2]])
    strict = ledger.verdicts(Verdicts(lost=None, poison_dead_lettered=True), windows=[], max_rss=None)
    assert not strict[0].ok
    # a kill at t=5 explains p1 (offered before it), not p2 (offered after)
    (v,) = ledger.verdicts(Verdicts(lost=None, poison_dead_lettered=True), windows=[], max_rss=None, node_kills=[5.0])
    assert not v.ok and "1 not (1 one run short" in v.actual
    (v,) = ledger.verdicts(
        Verdicts(lost=None, poison_dead_lettered=True), windows=[], max_rss=None, node_kills=[5.0, 9.5]
    )
    assert v.ok and "2 one run short" in v.actual


def test_follow_ups_are_traced_to_the_offered_event_and_accounted() -> None:
    from crosswire.harness import Offer

    ledger = Ledger(t0=0.0)
    ledger.routes["order.created"] = ["validate"]
    ledger.max_attempts["validate"] = 3
    ledger.offer([Offer("o1", "order.created", None, None, None, 0, 0.0)])
    ledger.add_runs(
        [
            ("o1", "validate", 1, 1.0, 0.0, "^", False, ""),
            ("o1", "validate", 1, 1.0, 1.1, "", False, ""),
            # its follow-up runs in two worker bindings: handled in one, never finishes in the other
            ("f1", "go:order.validated", 1, 1.2, 0.0, "^", False, "o1"),
            ("f1", "go:order.validated", 1, 1.2, 1.3, "", False, "o1"),
            ("f1", "rust:order.validated", 1, 1.2, 0.0, "^", False, "o1"),
            ("f1", "rust:order.validated", 1, 1.2, 1.3, "worker_lost", False, "o1"),
            ("x", "other", 1, 1.0, 0.0, "^", False, "not-offered"),
        ]
    )
    fates = ledger.fates()
    assert fates["follow_ups"] == {"handled": 1, "dead_lettered": 0, "lost": 1} and fates["foreign_runs"] == 1
    (v,) = ledger.verdicts(Verdicts(), windows=[], max_rss=None)
    assert not v.ok and v.actual == "1 (1 follow-ups)" and "rust:order.validated" in v.detail[0]
    ledger.add_letters([["f1", "rust:order.validated", "worker_lost", 3]])
    (v,) = ledger.verdicts(Verdicts(), windows=[], max_rss=None)
    assert v.ok and ledger.fates()["follow_ups"]["dead_lettered"] == 1
