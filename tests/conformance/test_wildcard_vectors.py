"""spec/vectors/wildcards/subjects.json against every Python matcher.

- ``matches``: ``{pattern, subject, matches}`` — the node's matcher
  (:func:`crosswire._subjects.subject_matches`), the node's router and the Python worker
  SDK's routing (:class:`crosswire.worker.Worker`) all agree with ``matches``;
- ``invalid_patterns``: refused by the node's validator (``ValueError``) and at
  registration in the worker SDK;
- ``routing``: ``{patterns (registration order), subject, handler}`` — one delivery goes
  to one worker handler: an exact registration wins, else the first registered wildcard
  that matches; ``null`` means no handler. (The node fans out to every match instead.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crosswire._router import Router
from crosswire._subjects import subject_matches, validate_pattern
from crosswire.worker import Context, Worker

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "vectors" / "wildcards" / "subjects.json").read_text()
)
MATCHES = VECTORS["matches"]
INVALID = VECTORS["invalid_patterns"]
ROUTING = VECTORS["routing"]


def _ids(cases: list[dict[str, Any]], *keys: str) -> list[str]:
    return [" ".join(repr(c[k]) for k in keys) for c in cases]


@dataclass(frozen=True)
class _Binding:
    name: str
    pattern: str


def _worker(patterns: list[str]) -> Worker:
    worker = Worker("vectors")
    for pattern in patterns:

        async def handle(ctx: Context, event: Any, _p: str = pattern) -> None:
            return None

        handle.__name__ = f"handle_{pattern}"
        worker.handler(pattern)(handle)
    return worker


def _routed(worker: Worker, patterns: list[str], subject: str) -> str | None:
    """The pattern whose handler the worker picks for ``subject`` (None: no handler)."""
    fn = worker._lookup(subject)
    if fn is None:
        return None
    return next(p for p in patterns if worker._handlers[p] is fn)


def test_vector_counts() -> None:
    assert len(MATCHES) >= 25 and len(INVALID) >= 8 and len(ROUTING) >= 5
    assert any(c["matches"] for c in MATCHES) and not all(c["matches"] for c in MATCHES)


@pytest.mark.parametrize("case", MATCHES, ids=_ids(MATCHES, "pattern", "subject"))
def test_node_matcher(case: dict[str, Any]) -> None:
    assert subject_matches(case["pattern"], case["subject"]) is case["matches"], case["description"]


@pytest.mark.parametrize("case", MATCHES, ids=_ids(MATCHES, "pattern", "subject"))
def test_node_router(case: dict[str, Any]) -> None:
    router = Router([_Binding("b", case["pattern"])])
    assert bool(router.route(case["subject"])) is case["matches"], case["description"]


@pytest.mark.parametrize("case", MATCHES, ids=_ids(MATCHES, "pattern", "subject"))
def test_python_worker_routing_matches(case: dict[str, Any]) -> None:
    worker = _worker([case["pattern"]])
    assert (_routed(worker, [case["pattern"]], case["subject"]) is not None) is case["matches"], case["description"]


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID, "pattern"))
def test_node_refuses_invalid_pattern(case: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="pattern"):
        validate_pattern(case["pattern"])


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID, "pattern"))
def test_python_worker_refuses_invalid_pattern(case: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="pattern"):
        _worker([case["pattern"]])


@pytest.mark.parametrize("case", ROUTING, ids=_ids(ROUTING, "patterns", "subject"))
def test_python_worker_precedence(case: dict[str, Any]) -> None:
    worker = _worker(case["patterns"])
    assert _routed(worker, case["patterns"], case["subject"]) == case["handler"], case["description"]


@pytest.mark.parametrize("case", ROUTING, ids=_ids(ROUTING, "patterns", "subject"))
def test_node_router_fans_out_to_every_match(case: dict[str, Any]) -> None:
    router = Router([_Binding(f"b{i}", p) for i, p in enumerate(case["patterns"])])
    want = [p for p in case["patterns"] if subject_matches(p, case["subject"])]
    assert [b.pattern for b in router.route(case["subject"])] == want
