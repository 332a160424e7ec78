#!/usr/bin/env python3
"""Per-minute figures of a soak run (scripts/soak.sh), and its picture.

Every INTERVAL seconds, while the bots run, it reads the server's /proc
(CPU, RSS, bytes written to disk), its /metrics (requests, bytes of state
the entities wrote, heap, active entities by kind, the store's disk bytes),
the data directory's size, and the bots' progress lines of the interval
(one per second: players, p99, errors); it appends one row to
minutes.csv and prints it. At the end it writes soak.html: one small SVG
chart per figure, so that drift shows at a glance. Standard library only.

  soak_sampler.py --pid PID --bots-pid PID --admin HOST:PORT --data DIR
                  --progress FILE --out DIR [--interval 60]
"""

import argparse
import csv
import html
import os
import re
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")

COLUMNS = [
    ("minute", "minute"),
    ("players", "players (mean)"),
    ("req_per_s", "requests/s"),
    ("cores", "server CPU, cores"),
    ("rss_mib", "server RSS, MiB"),
    ("kib_per_player", "RSS per player, KiB"),
    ("heap_mib", "heap in use, MiB"),
    ("p99_worst_ms", "worst 1-s p99, ms"),
    ("s_over_50ms", "seconds with p99 > 50 ms"),
    ("errors", "errors"),
    ("state_mb_s", "state written, MB/s"),
    ("state_b_per_req", "state written per request, bytes"),
    ("disk_write_mb_s", "disk writes, MB/s"),
    ("write_amp", "write amplification"),
    ("disk_mb", "disk use, MB"),
]


def proc(pid):
    """(CPU seconds, RSS KiB, bytes written to disk) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    written = 0
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                written = int(line.split()[1])
    return cpu, rss, written


def metrics(admin):
    """Sums of the families soak reads, from the Prometheus text."""
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=10).read().decode()
    out = {"requests": 0.0, "state_bytes": 0.0, "heap": 0.0, "store_disk": 0.0, "active": {}, "by_kind": {}, "writes": {}}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        value = float(value)
        if name.startswith("guildhall_request_seconds_count"):
            out["requests"] += value
        elif name.startswith("guildhall_entity_written_bytes_total"):
            out["state_bytes"] += value
            kind = re.search(r'kind="([^"]+)"', name)
            if kind:
                out["by_kind"][kind.group(1)] = value
        elif name.startswith("guildhall_entity_writes_total"):
            kind = re.search(r'kind="([^"]+)"', name)
            if kind:
                out["writes"][kind.group(1)] = out["writes"].get(kind.group(1), 0) + value
        elif name == "guildhall_heap_in_use_bytes":
            out["heap"] = value
        elif name == "guildhall_store_disk_bytes":
            out["store_disk"] = value
        elif name.startswith("guildhall_entities_active"):
            kind = re.search(r'kind="([^"]+)"', name)
            if kind:
                out["active"][kind.group(1)] = value
    return out


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


PROGRESS = re.compile(r"t=\s*(\d+)s players=\s*(\d+) .*?p99=\s*([\d.]+)ms errors=(\d+)")


def progress(path):
    """{second: (players, p99 ms, errors so far)} from the bots' progress lines."""
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                m = PROGRESS.search(line)
                if m:
                    rows[int(m.group(1))] = (int(m.group(2)), float(m.group(3)), int(m.group(4)))
    except FileNotFoundError:
        pass
    return rows


def alive(pid):
    """Whether the process runs (the bots are not this script's child: once
    they exit they stay a zombie until the shell reaps them)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def chart(rows, key, title):
    w, h, pad = 420, 150, 34
    pts = [(float(r["minute"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")]
    if not pts:
        return ""
    xmax = max(x for x, _ in pts) or 1
    ymax = max(y for _, y in pts) * 1.1 or 1
    sx = lambda x: pad + (w - pad - 8) * x / xmax
    sy = lambda y: h - 20 - (h - 40) * y / ymax
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
    return (
        f'<figure><figcaption>{html.escape(title)}</figcaption>'
        f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{pad}" y1="{h-20}" x2="{w-8}" y2="{h-20}" stroke="#999"/>'
        f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h-20}" stroke="#999"/>'
        f'<text x="2" y="16" font-size="10">{ymax:.3g}</text>'
        f'<text x="2" y="{h-20}" font-size="10">0</text>'
        f'<text x="{w-60}" y="{h-4}" font-size="10">minute {xmax:.0f}</text>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{line}"/></svg></figure>'
    )


def write_html(out, rows):
    charts = "".join(chart(rows, key, title) for key, title in COLUMNS[1:])
    with open(os.path.join(out, "soak.html"), "w") as f:
        f.write(
            "<!doctype html><meta charset=utf-8><title>Guildhall soak</title>"
            "<style>body{font:13px sans-serif}figure{display:inline-block;margin:6px}"
            "figcaption{font-weight:bold}</style><h1>Guildhall soak, per minute</h1>"
            f"{charts}<p>Raw figures: minutes.csv</p>"
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--bots-pid", type=int, required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--progress", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=60)
    ap.add_argument("--idle-rss-kib", type=int, default=0)
    a = ap.parse_args()

    rows = []
    path = os.path.join(a.out, "minutes.csv")
    csv_file = open(path, "w", newline="")
    writer = csv.DictWriter(csv_file, [k for k, _ in COLUMNS] + ["state_mb_s_by_kind", "bytes_per_write_by_kind", "active_by_kind"])
    writer.writeheader()
    print("  ".join(k for k, _ in COLUMNS), file=sys.stderr)
    prev_proc, prev_m, prev_t = proc(a.pid), metrics(a.admin), time.monotonic()
    prev_errors, second, minute = 0, 0, 0
    while alive(a.bots_pid):
        deadline = prev_t + a.interval
        while time.monotonic() < deadline and alive(a.bots_pid):
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        try:
            cur_proc, cur_m = proc(a.pid), metrics(a.admin)
        except (OSError, ValueError):
            break
        now = time.monotonic()
        dt = now - prev_t
        minute += 1
        seconds = progress(a.progress)
        part = [v for t, v in seconds.items() if second < t <= second + round(dt)]
        second += round(dt)
        if not part:
            # The bots are done: an interval without players is not a minute of the run.
            break
        players = sum(p for p, _, _ in part) / len(part) if part else 0
        errors = max((e for _, _, e in part), default=prev_errors)
        reqs = (cur_m["requests"] - prev_m["requests"]) / dt
        state = (cur_m["state_bytes"] - prev_m["state_bytes"]) / dt
        disk_w = (cur_proc[2] - prev_proc[2]) / dt
        by_kind = {k: (v - prev_m["by_kind"].get(k, 0)) / dt / 1e6 for k, v in cur_m["by_kind"].items()}
        per_write = {}
        for k, v in cur_m["by_kind"].items():
            writes = cur_m["writes"].get(k, 0) - prev_m["writes"].get(k, 0)
            if writes:
                per_write[k] = (v - prev_m["by_kind"].get(k, 0)) / writes
        row = {
            "minute": minute,
            "players": round(players),
            "req_per_s": round(reqs),
            "cores": round((cur_proc[0] - prev_proc[0]) / dt, 3),
            "rss_mib": round(cur_proc[1] / 1024, 1),
            "kib_per_player": round((cur_proc[1] - a.idle_rss_kib) / players, 2) if players else "",
            "heap_mib": round(cur_m["heap"] / 2**20, 1),
            "p99_worst_ms": max((p for _, p, _ in part), default=0),
            "s_over_50ms": sum(1 for _, p, _ in part if p > 50),
            "errors": errors - prev_errors,
            "state_mb_s": round(state / 1e6, 3),
            "state_b_per_req": round(state / reqs) if reqs else "",
            "disk_write_mb_s": round(disk_w / 1e6, 3),
            "write_amp": round(disk_w / state, 2) if state else "",
            "disk_mb": round(du(a.data) / 1e6, 1),
            "state_mb_s_by_kind": " ".join(f"{k}={v:.3f}" for k, v in sorted(by_kind.items())),
            "bytes_per_write_by_kind": " ".join(f"{k}={v:.0f}" for k, v in sorted(per_write.items())),
            "active_by_kind": " ".join(f"{k}={v:.0f}" for k, v in sorted(cur_m["active"].items())),
        }
        rows.append(row)
        writer.writerow(row)
        csv_file.flush()
        print("  ".join(str(row[k]) for k, _ in COLUMNS), file=sys.stderr, flush=True)
        write_html(a.out, rows)
        prev_proc, prev_m, prev_t, prev_errors = cur_proc, cur_m, now, errors
    write_html(a.out, rows)


if __name__ == "__main__":
    main()
