"""What the harness shows while it runs: a live rich view on a terminal, one plain
line per second otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["LiveView", "PlainView"]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _line(s: dict[str, Any]) -> str:
    parts = [
        f"t={s['t']:6.1f}s",
        s["phase"],
        f"offered {s['offered_per_s']:.0f}/s",
        f"handled {s['handled_per_s']:.0f}/s",
        f"p50 {_ms(s['p50_ms'])} ms",
        f"p99 {_ms(s['p99_ms'])} ms",
        f"queue {s['backlog']}+{s['queued']}+{s['running']}",
        f"retries {s['retried']}",
        f"dead {s['dead_lettered']}",
        f"unsettled {s['unresolved']}",
    ]
    if s["breakers"]:
        parts.append("breakers " + ",".join(f"{k}={v}" for k, v in s["breakers"].items()))
    if s["credit"]:
        parts.append("credit " + ",".join(f"{k}={v}" for k, v in s["credit"].items()))
    if not s["node_alive"]:
        parts.append("NODE DOWN")
    if s["faults"]:
        parts.append("faults: " + "; ".join(s["faults"]))
    return "  ".join(parts)


class PlainView:
    """One line per ``every`` seconds (logs, CI)."""

    def __init__(self, out: TextIO | None = None, every: float = 1.0) -> None:
        self.out = out or sys.stdout
        self.every = every
        self._last = 0.0

    def __call__(self, harness: Any) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        print(_line(harness.snapshot()), file=self.out, flush=True)

    def close(self) -> None:
        pass


class LiveView:
    """A rich Live panel: rates, latency, queue depth, retries, dead letters, breaker
    states, credit per worker, and the faults in effect."""

    def __init__(self, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def __call__(self, harness: Any) -> None:
        self.live.update(self._render(harness.snapshot()))

    def _render(self, s: dict[str, Any]) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.title} — {s['phase']} {s['t']:.1f}/{s['duration']:g}s", expand=False)
        cols = (
            "offered/s",
            "handled/s",
            "p50 ms",
            "p99 ms",
            "backlog",
            "queued",
            "running",
            "retries",
            "dead",
            "unsettled",
        )
        for col in cols:
            table.add_column(col, justify="right")
        table.add_row(
            f"{s['offered_per_s']:.0f}",
            f"{s['handled_per_s']:.0f}",
            _ms(s["p50_ms"]),
            _ms(s["p99_ms"]),
            str(s["backlog"]),
            str(s["queued"]),
            str(s["running"]),
            str(s["retried"]),
            str(s["dead_lettered"]),
            str(s["unresolved"]),
        )
        grid = Table.grid(padding=(0, 2))
        grid.add_row(table)
        info = [
            f"node #{s['node']} {'up' if s['node_alive'] else '[bold red]DOWN[/]'}  rss {s['rss_mb']:.0f} MB  "
            f"offered {s['offered_total']}  handled {s['handled_total']}"
        ]
        if s["breakers"]:
            info.append("breakers: " + "  ".join(f"{k} [bold]{v}[/]" for k, v in s["breakers"].items()))
        if s["credit"]:
            info.append(
                "credit: " + "  ".join(f"{k} {v} (restarts {s['restarts'].get(k, 0)})" for k, v in s["credit"].items())
            )
        info.append("faults: " + ("[bold yellow]" + "; ".join(s["faults"]) + "[/]" if s["faults"] else "none"))
        for line in info:
            grid.add_row(line)
        return grid

    def close(self) -> None:
        self.live.stop()
