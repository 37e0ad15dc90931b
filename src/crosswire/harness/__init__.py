"""crosswire's traffic and chaos harness.

A :class:`Scenario` says what traffic to offer (composable shapes over time, payloads
generated from the handler's type, key distributions), which faults to inject and
when (handler faults through a middleware; worker, broker and node process faults),
and what must hold at the end (:class:`Verdicts`). :func:`run` runs it against an app
— the node in a child process — and accounts for every event::

    from crosswire.harness import Scenario, Traffic, Sine, HandlerError, Verdicts, run

    scenario = Scenario(
        name="orders-wave", duration=30, seed=7,
        traffic=[Traffic(type="order.created", shape=Sine(base=300, amplitude=200, period=10), poison=0.01)],
        faults=[HandlerError(binding="reserve_stock", at=10, duration=5, rate=0.2)],
        verdicts=Verdicts(lost=0, poison_dead_lettered=True, p99_ms=250),
    )
    result = await run(scenario, app="myapp:app")

From the command line: ``crosswire load scenario.toml --app myapp:app --png out.png``.
"""

from .accounting import Ledger, Verdict
from .faults import FaultMiddleware
from .payloads import generate
from .report import build_report, write_html, write_json, write_png
from .runner import HarnessError, Result, run
from .scenario import (
    Broker,
    Burst,
    Constant,
    Fault,
    HandlerError,
    HandlerHang,
    HandlerLatency,
    Keys,
    NodeFault,
    Payload,
    Ramp,
    Replay,
    Scenario,
    Shape,
    Sine,
    Step,
    Sum,
    Traffic,
    Verdicts,
    WorkerFault,
    load,
    loads,
)
from .traffic import POISON_EXTENSION, Offer, TrafficPlan, rate_at

__all__ = [
    "POISON_EXTENSION",
    "Broker",
    "Burst",
    "Constant",
    "Fault",
    "FaultMiddleware",
    "HandlerError",
    "HandlerHang",
    "HandlerLatency",
    "HarnessError",
    "Keys",
    "Ledger",
    "NodeFault",
    "Offer",
    "Payload",
    "Ramp",
    "Replay",
    "Result",
    "Scenario",
    "Shape",
    "Sine",
    "Step",
    "Sum",
    "Traffic",
    "TrafficPlan",
    "Verdict",
    "Verdicts",
    "WorkerFault",
    "build_report",
    "generate",
    "load",
    "loads",
    "rate_at",
    "run",
    "write_html",
    "write_json",
    "write_png",
]
