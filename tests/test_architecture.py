"""The shape of the package: no import cycles (``TYPE_CHECKING`` imports included), no
module past ~400 lines, an event path that does not import the exporters, and public
names that keep their types under ``mypy --strict``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import crosswire

SRC = Path(crosswire.__file__).parent
MAX_LINES = 430  # "no module over ~400 lines"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every crosswire module ``name`` imports, at any depth of the file (function bodies
    and ``if TYPE_CHECKING:`` blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            submodules = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
            # ``from . import sub`` imports ``sub``; only names that are not modules come from ``mod``
            targets = [*submodules, *([mod] if len(submodules) < len(node.names) else [])]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target in modules and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # a package's __init__ re-exports its children; edges *into* a package from its own
    # children are what a cycle through it would need, so keep them all
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_cycle_check_can_fail() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_too_long() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_event_path_does_not_import_the_exporters() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        import crosswire

        app = crosswire.App("hot")

        @app.handler("t.x")
        async def h(event: crosswire.Event) -> None:
            pass

        async def main() -> None:
            async with crosswire.Node(app) as node:
                await node.submit("t.x", b"")
                await node.wait_idle(5)

        asyncio.run(main())
        heavy = sorted(m for m in ("prometheus_client", "rich", "nats", "crosswire._metrics", "crosswire._cli")
                       if m in sys.modules)
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"the event path imported {out.stdout.strip()}"


def test_worker_option_arguments_match_worker_options() -> None:
    from crosswire import WorkerOptionArgs, WorkerOptions

    assert set(WorkerOptionArgs.__annotations__) == set(WorkerOptions.__struct_fields__)


TYPED_USE = '''
from __future__ import annotations

import crosswire
from crosswire import App, ErrorInfo, Event, Handler, Attempt, Outcome, Middleware, ReplayResult


class Fixed:
    """A user's own retry policy: the protocol, not a subclass."""

    max_attempts = 5

    def next_delay(self, attempt: int, error: ErrorInfo) -> float | None:
        return 1.0 if attempt < self.max_attempts else None


def logging_mw(inner: Handler) -> Handler:
    async def wrapped(attempt: Attempt) -> Outcome:
        return await inner(attempt)

    return wrapped


mw: Middleware = logging_mw
app = App("typed", middleware=[mw])


@app.handler("t.x", retry=Fixed(), middleware=[logging_mw])
async def h(event: Event[dict[str, int]]) -> None:
    pass


app.worker("w", command=["./w"], heartbeat_interval=2.0, ready_timeout=10.0)
transport: crosswire.JetStreamTransport = crosswire.JetStreamTransport()
node = crosswire.Node(app, transport)
stats: crosswire.NodeStatistics = node.statistics()
handled: int = stats.bindings["h"].handled
result: ReplayResult | None = None
registry = crosswire.metrics_registry(node)
reveal_type(crosswire.JetStreamTransport)
reveal_type(crosswire.metrics_registry)
'''


@pytest.mark.skipif(os.environ.get("CROSSWIRE_SKIP_MYPY") == "1", reason="mypy disabled")
def test_public_names_keep_their_types_under_mypy_strict(tmp_path: Path) -> None:
    (tmp_path / "use.py").write_text(TYPED_USE)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", "use.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    notes = [line for line in out.stdout.splitlines() if "Revealed type" in line]
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert not errors, "\n".join(errors)
    assert len(notes) == 2, out.stdout
    assert "JetStreamTransport" in notes[0] and "builtins.object" not in notes[0], notes[0]
    assert "CollectorRegistry" in notes[1], notes[1]
