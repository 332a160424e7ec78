#!/usr/bin/env python3
"""Summary of a soak run (scripts/soak.sh) against issue 15's acceptance.

Reads OUT/minutes.csv (the sampler's rows) and OUT/soak.json (the bots'
report, one sample per second) and prints each criterion with its figures,
then the slopes of disk use and RSS over the second half of the run and
their projection to 24 hours and to 30 days.

  soak_summary.py OUT PLAYERS [--table]   # --table: the per-minute rows as a Markdown table
"""

import csv
import json
import sys


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx, my = mean(x for x, _ in points), mean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def main():
    out, players = sys.argv[1], int(sys.argv[2])
    table = "--table" in sys.argv[3:]
    rows = [{k: float(v) if v not in ("",) and not k.endswith("_by_kind") else v
             for k, v in r.items()} for r in csv.DictReader(open(f"{out}/minutes.csv"))]
    rows = [r for r in rows if r["players"]]
    report = json.load(open(f"{out}/soak.json"))
    samples = report["samples"]
    n = len(rows)
    if table:
        print("| minute | cores | RSS MiB | KiB/player | heap MiB | worst p99 ms | s > 50 ms | errors | state MB/s | state B/req | disk MB/s | write amp. | disk MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]) for k in (
                "minute", "cores", "rss_mib", "kib_per_player", "heap_mib", "p99_worst_ms", "s_over_50ms", "errors",
                "state_mb_s", "state_b_per_req", "disk_write_mb_s", "write_amp", "disk_mb")) + " |")
        print()
    print(f"soak: {n} minutes, peak {report['peak_players']} players, {report['requests']} requests, "
          f"errors {report['errors']} {report['errors_by_kind']}")

    def seconds(first_min, last_min):
        return [s for s in samples if first_min * 60 <= s["t_secs"] < last_min * 60 and s["players"] >= 0.97 * players]

    def share_ok(part):
        return 100 * sum(1 for s in part if s["p99_ms"] < 50) / len(part) if part else float("nan")

    last10 = (max(n - 10, 0), n)
    print(f"p99 < 50 ms: {share_ok(seconds(1, 2)):.2f} % of the seconds of minute 2, "
          f"{share_ok(seconds(*last10)):.2f} % of the last ten minutes, {share_ok(seconds(1, n)):.2f} % overall (target >= 99.5 %)")

    by_min = {int(r["minute"]): r for r in rows}

    def avg(key, first, last):
        return mean(by_min[m][key] for m in range(first, last + 1) if m in by_min and by_min[m][key] != "")

    cpu_early, cpu_late = avg("cores", 2, 3), avg("cores", n - 9, n)
    print(f"server CPU: minutes 2-3 {cpu_early:.3f} cores, last ten {cpu_late:.3f}: {100*(cpu_late/cpu_early-1):+.1f} % (target within 10 %)")
    rss10, rss_late = avg("kib_per_player", 10, 10), avg("kib_per_player", n - 9, n)
    rss_max = max((r["kib_per_player"] for r in rows[9:] if r["kib_per_player"] != ""), default=float("nan"))
    print(f"RSS per player: minute 10 {rss10:.2f} KiB, last ten {rss_late:.2f} KiB: {100*(rss_late/rss10-1):+.1f} % "
          f"(target within 5 %); largest after minute 10 {rss_max:.2f} KiB (target <= 8)")
    w_early, w_late = avg("state_b_per_req", 2, 3), avg("state_b_per_req", n - 9, n)
    print(f"state written per request: minutes 2-3 {w_early:.0f} B, last ten {w_late:.0f} B: {100*(w_late/w_early-1):+.1f} % (target within 10 %)")
    amp_early, amp_late = avg("write_amp", 2, 3), avg("write_amp", n - 9, n)
    print(f"write amplification (disk writes / state written): minutes 2-3 {amp_early:.2f}, last ten {amp_late:.2f}")

    # Disk use swings with the store's compactions: its slope is fitted to the
    # largest figure of each five minutes, over the whole run; RSS over the
    # second half (after warm-up).
    peaks = [max(rows[i:i + 5], key=lambda r: r["disk_mb"]) for i in range(0, n, 5)]
    disk_slope = max(slope([(r["minute"], r["disk_mb"]) for r in peaks]), 0.0)
    half = [r for r in rows if r["minute"] > n / 2]
    rss_slope = slope([(r["minute"], r["rss_mib"]) for r in half])
    disk_end, rss_end = max(r["disk_mb"] for r in rows[-5:]), rows[-1]["rss_mib"]
    for label, minutes in (("24 hours", 24 * 60), ("30 days", 30 * 24 * 60)):
        more = minutes - n
        print(f"projection to {label} at the measured slopes: disk {disk_end + disk_slope * more:,.0f} MB "
              f"({disk_slope:+.2f} MB/min), RSS {rss_end + rss_slope * more:,.0f} MiB ({rss_slope:+.3f} MiB/min)")


if __name__ == "__main__":
    main()
