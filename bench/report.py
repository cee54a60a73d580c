#!/usr/bin/env python3
"""Turn the benchmark's raw records into the Markdown report (bench/RESULTS.md).

    python3 bench/report.py WORKDIR/meta.tsv WORKDIR/runs.tsv [--smoke]

meta.tsv: `key<TAB>value` lines written by run.sh (machine, date, versions, settings).
runs.tsv: one line per run, columns as in FIELDS below; run.sh appends one after each run.

Prints the report on stdout. Standard library only.
"""

import argparse
import csv
import sys

FIELDS = [
    "n",          # recipients
    "id",         # rb-check rb-preview rb-send mm-dry mm-send src-1 src-8
    "status",     # ok | fail | timeout | skipped | est
    "wall_s",     # wall-clock seconds (for est: estimated; for timeout: the limit)
    "rss_kb",     # peak RSS from /usr/bin/time -v, KiB ("" if none)
    "rc",         # exit code
    "sink_msgs",  # messages the sink counted ("" for runs that send nothing)
    "sink_sess",  # SMTP sessions the sink counted
    "ledger",     # rb-send: delivered records in the ledger
    "note",
]

LABELS = {
    "rb-check": "rundbrev check",
    "rb-preview": "rundbrev preview",
    "rb-send": "rundbrev send --yes",
    "rb-send-noarchive": "rundbrev send --yes, archive off",
    "mm-dry": "mailmerge --dry-run --no-limit",
    "mm-send": "mailmerge --no-dry-run --no-limit",
    "src-1": "smtp-source -s 1 -d",
    "src-8": "smtp-source -s 8 -d",
}
ORDER = list(LABELS)
SENDS = {"rb-send", "rb-send-noarchive", "mm-send", "src-1", "src-8"}

MiB = 1024.0


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def fmt_n(n):
    return f"{int(n):,}"


def rate(r):
    """Letters per second, or None. Estimates and timeouts are rates too (labelled)."""
    w = num(r["wall_s"])
    if r["status"] in ("ok", "est", "timeout") and w and w > 0:
        return int(r["n"]) / w
    return None


def fmt_rate(r):
    x = rate(r)
    if x is None:
        return "—"
    s = f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"
    if r["status"] == "est":
        return f"~{s} (est.)"
    if r["status"] == "timeout":
        return f"< {s}"
    return s


def fmt_wall(r):
    w = num(r["wall_s"])
    if w is None:
        return "—"
    if r["status"] == "est":
        return f"~{w:,.0f} (est.)" if w >= 100 else f"~{w:,.1f} (est.)"
    if r["status"] == "timeout":
        return f"> {w:,.0f} (timed out)"
    return f"{w:,.2f}"


def fmt_rss(r):
    k = num(r["rss_kb"])
    if k is None or r["status"] in ("est", "skipped"):
        return "—"
    return f"{k / MiB:,.1f}"


def fmt_sink(r):
    if r["id"] not in SENDS or r["status"] in ("est", "skipped"):
        return "—"
    n = int(r["n"])
    m = r["sink_msgs"]
    if m == "":
        return "? (no count)"
    mark = "✓" if int(m) == n else "✗ WRONG"
    sess = f", {int(r['sink_sess']):,} sess." if r["sink_sess"] else ""
    return f"{int(m):,} {mark}{sess}"


def ratio(a, b):
    """(value, text) of rate(a) / rate(b); the text marks bounds and estimates."""
    ra, rb_ = (rate(a) if a else None), (rate(b) if b else None)
    if ra is None or rb_ is None or rb_ == 0:
        return None, ""
    x = ra / rb_
    bound = ""
    if a["status"] == "timeout" and b["status"] != "timeout":
        bound = "< "  # a's rate is an upper bound
    elif b["status"] == "timeout" and a["status"] != "timeout":
        bound = "> "
    est = " (from an estimate)" if "est" in (a["status"], b["status"]) else ""
    if a["status"] == "timeout" or b["status"] == "timeout":
        est += " (a run timed out)"
    return x, f"{bound}{x:,.2f}×{est}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("meta")
    ap.add_argument("runs")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    meta = {}
    with open(a.meta, encoding="utf-8") as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                meta[k] = v
    with open(a.runs, encoding="utf-8", newline="") as f:
        runs = [dict(zip(FIELDS, row)) for row in csv.reader(f, delimiter="\t") if row]

    by = {}
    ns = []
    for r in runs:
        n = int(r["n"])
        if n not in ns:
            ns.append(n)
        by[(n, r["id"])] = r

    out = []
    p = out.append
    title = "rundbrev benchmark — smoke run" if a.smoke else "rundbrev benchmark — results"
    p(f"# {title}\n")
    p(f"Made by `bash bench/run.sh {meta.get('args', '')}`".rstrip() + f" on {meta.get('date', '?')}.\n")
    p("| | |")
    p("| --- | --- |")
    for k, label in [
        ("machine", "machine"),
        ("os", "system"),
        ("load", "load average"),
        ("rundbrev", "rundbrev"),
        ("binary", "binary"),
        ("connections", "SMTP connections"),
        ("mailmerge", "mailmerge"),
        ("postfix", "Postfix (smtp-sink, smtp-source)"),
        ("python", "Python"),
        ("letter", "letter"),
        ("sink", "sink"),
    ]:
        if meta.get(k):
            p(f"| {label} | {meta[k]} |")
    p("")

    for n in ns:
        p(f"## N = {fmt_n(n)}\n")
        p("| run | wall s | letters/s | peak RSS MiB | sink received | notes |")
        p("| --- | ---: | ---: | ---: | --- | --- |")
        for rid in ORDER:
            r = by.get((n, rid))
            if not r:
                continue
            note = r["note"]
            if rid in ("rb-send", "rb-send-noarchive") and r["ledger"]:
                led = r["ledger"]
                note = (f"ledger: {led} delivered" + ("" if led == str(n) else " ✗") + "; " + note).rstrip("; ")
            if r["status"] == "fail":
                note = f"FAILED (exit {r['rc']}); {note}".rstrip("; ")
            if r["status"] == "skipped":
                note = f"not run: {note}"
            p(f"| {LABELS[rid]} | {fmt_wall(r)} | {fmt_rate(r)} | {fmt_rss(r)} | {fmt_sink(r)} | {note} |")
        p("")
        rows = []
        for num_id, den_id, what in [
            ("rb-check", "mm-dry", "rundbrev check / mailmerge dry run"),
            ("rb-send", "mm-send", "rundbrev send / mailmerge send"),
            ("rb-send", "src-1", "rundbrev send / smtp-source, 1 session"),
            ("rb-send", "src-8", "rundbrev send / smtp-source, 8 sessions"),
            ("rb-send-noarchive", "src-8", "rundbrev send, archive off / smtp-source, 8 sessions"),
            ("rb-send-noarchive", "rb-send", "rundbrev send, archive off / archive on"),
        ]:
            x, text = ratio(by.get((n, num_id)), by.get((n, den_id)))
            if x is not None:
                rows.append(f"| {what} | {text} |")
        if rows:
            p("| ratio of letters/s | |")
            p("| --- | ---: |")
            out.extend(rows)
            p("")

    # --- the product targets ----------------------------------------------------------------
    if not a.smoke and any(n in (10000, 100000) for n in ns):
        p("## Targets\n")
        p("| target | measured | met? |")
        p("| --- | --- | --- |")

        def verdict(ok):
            return "yes" if ok else "**no**"

        s, m, src = by.get((10000, "rb-send")), by.get((10000, "mm-send")), by.get((10000, "src-8"))
        x, text = ratio(s, m)
        y, text_src = ratio(s, src)
        if x is not None and y is not None:
            led_ok = s["ledger"] == "10000" and s["sink_msgs"] == "10000"
            p(f"| send 10,000 (ledger and archive on, 8 connections): ≥ 0.4× smtp-source -s 8 -d "
              f"and ≥ 25× mailmerge's send, every outcome in the ledger | "
              f"{text_src} smtp-source, {text} mailmerge; ledger {s['ledger'] or '?'} delivered, "
              f"sink {s['sink_msgs'] or '?'} | "
              f"{verdict(y >= 0.4 and x >= 25 and led_ok and s['status'] == 'ok')} |")
        pv = by.get((10000, "rb-preview"))
        if pv and rate(pv) is not None:
            p(f"| preview 10,000: ≥ 6,000 letters/s | {fmt_rate(pv)} | "
              f"{verdict(rate(pv) >= 6000 and pv['status'] == 'ok')} |")
        c, d = by.get((100000, "rb-check")), by.get((100000, "mm-dry"))
        x, text = ratio(c, d)
        if x is not None:
            ok = x >= 100 and c["status"] == "ok" and d["status"] in ("ok", "est")
            p(f"| check 100,000: ≥ 100× mailmerge's dry-run rate | {text} | {verdict(ok)} |")
        for rid in ("rb-check", "rb-send"):
            big = by.get((1000000, rid))
            if big and big["status"] == "ok" and big["rss_kb"]:
                mb = float(big["rss_kb"]) / MiB
                p(f"| peak RSS of `{LABELS[rid]}` at 1,000,000 ≤ 40 MiB, duplicates found exactly | "
                  f"{mb:,.1f} MiB | {verdict(mb <= 40)} |")
        small = min(ns) if ns else None
        for rid in ("rb-check", "rb-preview", "rb-send"):
            big = by.get((100000, rid))
            lo = by.get((small, rid)) if small else None
            if not big or big["status"] != "ok" or not big["rss_kb"]:
                if big:
                    p(f"| peak RSS of `{LABELS[rid]}` at 100,000 ≤ 64 MiB, flat in N | "
                      f"not measured ({big['status']}) | — |")
                continue
            hi_mb = float(big["rss_kb"]) / MiB
            lo_mb = float(lo["rss_kb"]) / MiB if lo and lo["rss_kb"] else None
            series = ", ".join(
                f"{fmt_n(n)}: {float(by[(n, rid)]['rss_kb']) / MiB:,.1f}"
                for n in ns
                if (n, rid) in by and by[(n, rid)]["rss_kb"] and by[(n, rid)]["status"] == "ok"
            )
            flat = lo_mb is not None and hi_mb - lo_mb <= 8.0
            growth = ""
            if lo_mb is not None:
                per = (hi_mb - lo_mb) * MiB * 1024 / (100000 - small) if small < 100000 else 0
                growth = f"; +{hi_mb - lo_mb:,.1f} MiB from {fmt_n(small)} to 100,000 (~{per:,.0f} bytes per recipient)"
            p(f"| peak RSS of `{LABELS[rid]}` at 100,000 ≤ 64 MiB, flat in N "
              f"(taken as: at most 8 MiB more than at {fmt_n(small)}) | {series} MiB{growth} | "
              f"{verdict(hi_mb <= 64 and flat)} |")
        p("")

    notes = meta.get("notes", "")
    if notes:
        p("## Notes\n")
        for line in notes.split(" ¶ "):
            p(f"- {line}")
        p("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
