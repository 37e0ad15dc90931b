"""The report: one JSON document with every series and verdict, a PNG of rate,
latency and queue depth over time with the fault markers (matplotlib, the
``crosswire[harness]`` extra), and a self-contained HTML page with both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TextIO

import msgspec

from .accounting import Ledger, Verdict, percentile
from .scenario import Scenario

__all__ = ["build_report", "write_html", "write_json", "write_png"]

REPORT_VERSION = 1


def _node_series(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "t": [s["t"] for s in samples],
        "queued": [s["queued"] for s in samples],
        "running": [s["running"] for s in samples],
        "backlog": [s.get("backlog", 0) for s in samples],
        "pending": [s["pending"] for s in samples],
        "rss_mb": [s["rss_mb"] for s in samples],
        "node": [s["node"] for s in samples],
    }
    # counters restart with a new node process: make them cumulative over the run
    for name in ("retried", "dead_lettered"):
        total, base, prev_node, prev = 0, 0, None, 0
        values: list[int] = []
        for s in samples:
            if s["node"] != prev_node:
                base, prev_node, prev = total, s["node"], 0
            prev = int(s[name])
            total = base + prev
            values.append(total)
        out[name] = values
    for name in ("breakers", "credit", "worker_in_flight", "worker_restarts"):
        keys = sorted({k for s in samples for k in (s.get(name) or {})})
        out[name] = {k: [(s.get(name) or {}).get(k) for s in samples] for k in keys}
    return out


def build_report(
    *,
    scenario: Scenario,
    app: str,
    transport: str,
    started: float,
    ledger: Ledger,
    verdicts: list[Verdict],
    fates: dict[str, Any],
    samples: list[dict[str, Any]],
    unsettled: list[tuple[float, int]],
    markers: list[dict[str, Any]],
    notes: list[str],
    node_restarts: int,
    max_rss: int | None,
    bindings: dict[str, Any],
    node_log: str,
) -> dict[str, Any]:
    lat = ledger.healthy_latencies
    return {
        "report_version": REPORT_VERSION,
        "scenario": msgspec.to_builtins(scenario),
        "app": app,
        "transport": transport,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "ok": all(v.ok for v in verdicts),
        "verdicts": msgspec.to_builtins(verdicts),
        "fates": fates,
        "latency_ms": {
            q: (None if (v := percentile(lat, p)) is None else round(v * 1000, 3))
            for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
        "bindings": bindings,
        "peak_rss_mb": None if max_rss is None else round(max_rss / 2**20, 1),
        "node_faults": node_restarts,
        "series": ledger.series(),
        "node_series": _node_series(samples),
        "unsettled_series": {"t": [t for t, _ in unsettled], "unsettled": [n for _, n in unsettled]},
        "markers": markers,
        "notes": notes,
        "node_log_tail": node_log,
    }


_COLORS = {"handler_error": "tab:red", "handler_latency": "tab:orange", "handler_hang": "tab:purple",
           "worker": "tab:brown", "broker": "tab:gray", "node": "black"}  # fmt: skip


def write_json(report: dict[str, Any], path: str | Path, out: TextIO | None = None) -> None:
    """The report as an indented JSON document (``out`` is not used)."""
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=1))


def write_png(report: dict[str, Any], path: str | Path) -> None:
    """Draw the report: offered/handled rate, p50/p99 latency, queue depth and dead
    letters over time; fault windows shaded, instant faults as lines.

    :raises RuntimeError: matplotlib is not installed (``pip install 'crosswire[harness]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("the PNG needs matplotlib: pip install 'crosswire[harness]'") from None
    s, n = report["series"], report["node_series"]
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, constrained_layout=True)
    ok = "passed" if report["ok"] else "FAILED"
    fates = report["fates"]
    fig.suptitle(
        f"{report['scenario']['name']} — {report['transport']}, seed {report['scenario']['seed']}: {ok}  "
        f"(offered {fates['offered']}, handled {fates['handled']}, dead-lettered {fates['dead_lettered']}, "
        f"lost {fates['lost']})",
        fontsize=11,
    )
    ax = axes[0]
    ax.plot(s["t"], s["offered_per_s"], label="offered/s", color="tab:blue", drawstyle="steps-post")
    ax.plot(s["t"], s["handled_per_s"], label="handled/s", color="tab:green", drawstyle="steps-post")
    ax.plot(s["t"], s["failed_runs_per_s"], label="failed runs/s", color="tab:red", alpha=0.6, drawstyle="steps-post")
    ax.set_ylabel("events/s")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    t_lat = [t for t, v in zip(s["t"], s["p99_ms"], strict=True) if v is not None]
    ax.plot(t_lat, [v for v in s["p50_ms"] if v is not None], label="p50", color="tab:green")
    ax.plot(t_lat, [v for v in s["p99_ms"] if v is not None], label="p99", color="tab:red")
    ax.set_ylabel("latency, ms (healthy)")
    if t_lat and max(v for v in s["p99_ms"] if v is not None) > 50 * max(
        1e-3, min(v for v in s["p50_ms"] if v is not None)
    ):
        ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    depth = [q + r + b for q, r, b in zip(n["queued"], n["running"], n["backlog"], strict=True)]
    u = report["unsettled_series"]
    ax.plot(u["t"], u["unsettled"], label="unsettled (offered, not yet handled or failed for good)", color="tab:purple")
    ax.plot(n["t"], depth, label="node queue (transport backlog + queued + running)", color="tab:blue")
    ax.plot(n["t"], n["dead_lettered"], label="dead letters (total)", color="tab:red")
    ax.plot(n["t"], n["retried"], label="retries (total)", color="tab:orange", alpha=0.7)
    ax.set_ylabel("events")
    ax.set_xlabel("seconds")
    ax.legend(loc="upper left", fontsize=8)
    for i, m in enumerate(report["markers"]):
        color = _COLORS.get(m["kind"], "tab:gray")
        for a in axes:
            if m["end"] - m["t"] > 0.2:
                a.axvspan(m["t"], m["end"], color=color, alpha=0.12)
            else:
                a.axvline(m["t"], color=color, linestyle="--", linewidth=1)
        y = 1.0 - 0.06 * (i % 4)  # faults at the same time get their own line
        axes[0].annotate(m["label"], (m["t"], y), xycoords=("data", "axes fraction"), fontsize=7, va="top", color=color)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_html(report: dict[str, Any], path: str | Path) -> None:
    """One self-contained HTML page: verdicts, fates, latency, markers, notes, and the
    picture inlined (when matplotlib is installed)."""
    import base64
    import html
    import io
    import tempfile

    picture = ""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "report.png"
            write_png(report, png)
            picture = base64.b64encode(png.read_bytes()).decode()
    except RuntimeError:
        pass
    e = html.escape
    out = io.StringIO()
    ok = report["ok"]
    name = report["scenario"]["name"]
    out.write(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{e(name)}: {'passed' if ok else 'FAILED'}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}code{font-size:12px}</style>"
    )
    out.write(
        f"<h1>{e(name)} — <span class='{'pass' if ok else 'fail'}'>{'passed' if ok else 'FAILED'}</span></h1>"
        f"<p>{e(report['scenario'].get('description') or '')} app <code>{e(report['app'])}</code>, "
        f"{e(report['transport'])}, seed {report['scenario']['seed']}, started {e(report['started_at'])}, "
        f"{report['seconds']} s</p><h2>Verdicts</h2><table><tr><th></th><th>verdict</th><th>expected</th>"
        "<th>actual</th><th>examples</th></tr>"
    )
    for v in report["verdicts"]:
        cls = "pass" if v["ok"] else "fail"
        examples = "<br>".join(e(d) for d in v["detail"][:10])
        out.write(
            f"<tr><td class='{cls}'>{'PASS' if v['ok'] else 'FAIL'}</td><td>{e(v['name'])}</td>"
            f"<td>{e(v['expected'])}</td><td>{e(v['actual'])}</td><td><code>{examples}</code></td></tr>"
        )
    out.write("</table><h2>Fates</h2><table>")
    for k, v in report["fates"].items():
        if not k.endswith("_examples"):
            out.write(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>")
    out.write("</table><h2>Healthy latency (ms)</h2><table><tr>")
    out.write("".join(f"<th>{e(k)}</th>" for k in report["latency_ms"]) + "</tr><tr>")
    out.write("".join(f"<td>{v}</td>" for v in report["latency_ms"].values()) + "</tr></table>")
    if picture:
        out.write(f"<h2>Over time</h2><img alt='rate, latency and queue depth' src='data:image/png;base64,{picture}'>")
    out.write("<h2>Faults</h2><table><tr><th>from (s)</th><th>to (s)</th><th>fault</th></tr>")
    for m in report["markers"]:
        out.write(f"<tr><td>{m['t']}</td><td>{m['end']}</td><td>{e(m['label'])}</td></tr>")
    out.write("</table>")
    if report["notes"]:
        out.write("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"]) + "</ul>")
    Path(path).write_text(out.getvalue())
