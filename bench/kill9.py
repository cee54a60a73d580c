#!/usr/bin/env python3
"""kill -9 a send of N letters (default 10,000) over 8 connections into smtp-sink at several
moments, then run send again into a fresh sink. Prints one JSON line per moment: the letters the
second run reports unknown, how many of those the first sink saw the data of (and received
completely), whether any address got two copies, and whether the archive holds a file under a letter's name
that is not a whole letter (or a leftover .partial file), at the kill and after. Needs Postfix's
smtp-sink; run as root (smtp-sink -u nobody). Standard library only.

    python3 bench/kill9.py REPO BINARY 4,7,10,13
"""
import json, os, pathlib, re, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time

REPO = pathlib.Path(sys.argv[1]); BIN = sys.argv[2]; DELAYS = [float(x) for x in sys.argv[3].split(",")]
N = int(os.environ.get("N", "10000"))
WORK = pathlib.Path(tempfile.mkdtemp(prefix="rundbrev-kill9."))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def sink(dump):
    dump.mkdir(parents=True); os.chmod(dump, 0o777); os.chmod(dump.parent, 0o755)
    port = free_port()
    p = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", "-d", f"{dump}/%M.", f"127.0.0.1:{port}", "1024"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close(); break
        except OSError:
            time.sleep(0.05)
    return p, port

def archive_check(folder):
    """(files, files under a letter's name that are not a whole letter, leftover .partial files)."""
    files = list(folder.iterdir()) if folder.exists() else []
    bad = 0
    for f in files:
        if f.name.endswith(".eml"):
            data = f.read_bytes()
            m = re.search(rb'boundary="([^"]+)"', data)
            if not m or not data.rstrip().endswith(b"--" + m.group(1) + b"--"):
                bad += 1
    return len(files), bad, sum(1 for f in files if f.name.endswith(".partial"))

def received(dump):
    """address -> (data started, complete) per dump file."""
    got = {}
    for f in dump.iterdir():
        data = f.read_bytes()
        rcpt = re.findall(rb"^X-Rcpt-Args: <([^>]*)>", data, re.M)
        started = b"\nReceived: " in data
        complete = started and re.search(rb"\n--[^\n]+--\n+$", data) is not None
        for r in rcpt:
            a = r.decode()
            s0, c0 = got.get(a, (0, 0))
            got[a] = (s0 + started, c0 + complete)
    return got

for delay in DELAYS:
    shutil.rmtree(WORK, ignore_errors=True); WORK.mkdir(parents=True)
    os.chmod(WORK, 0o755)
    s1, port = sink(WORK / "s1" / "dump")
    camp = WORK / "c"
    subprocess.run([sys.executable, REPO / "bench/gen.py", "--repo", REPO, "--out", camp, "--n", str(N),
                    "--port", str(port), "--connections", "8"], check=True, stdout=subprocess.DEVNULL)
    rb = subprocess.Popen([BIN, "--config", "config.toml", "--quiet", "send", "--yes"], cwd=camp,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    rb.send_signal(signal.SIGKILL); rb.wait()
    time.sleep(0.5); s1.terminate(); s1.wait()
    first = received(WORK / "s1" / "dump")
    archived_at_kill = archive_check(camp / "archive")
    found = list(camp.glob("*.ledger.sqlite"))
    if not found:
        print(json.dumps({"bin": BIN, "kill_after_s": delay, "note": "killed before the ledger existed"}), flush=True)
        continue
    db = sqlite3.connect(found[0])
    sending = db.execute("select count(*) from recipients where state='sending'").fetchone()[0]
    delivered1 = db.execute("select count(*) from recipients where state='delivered'").fetchone()[0]
    db.close()
    s2, port2 = sink(WORK / "s2" / "dump")
    cfg = (camp / "config.toml").read_text().replace(f"port = {port}", f"port = {port2}")
    (camp / "config.toml").write_text(cfg)
    r = subprocess.run([BIN, "--config", "config.toml", "--quiet", "send", "--yes"], cwd=camp,
                       capture_output=True, text=True)
    time.sleep(0.3); s2.terminate(); s2.wait()
    second = received(WORK / "s2" / "dump")
    st = json.loads(subprocess.run([BIN, "--config", "config.toml", "status", "--format", "json"], cwd=camp,
                                   capture_output=True, text=True).stdout)
    unknown = [x for x in st["recipients"] if x["state"] == "unknown"]
    unk_started = sum(1 for x in unknown if first.get(x["address"], (0, 0))[0])
    unk_complete = sum(1 for x in unknown if first.get(x["address"], (0, 0))[1])
    twice = [a for a in set(first) | set(second) if first.get(a, (0, 0))[1] + second.get(a, (0, 0))[1] > 1]
    missing = [x["address"] for x in st["recipients"] if x["state"] == "delivered"
               and first.get(x["address"], (0, 0))[1] + second.get(x["address"], (0, 0))[1] != 1]
    print(json.dumps({"bin": BIN, "kill_after_s": delay, "delivered_before_kill": delivered1,
                      "sending_at_kill": sending, "unknown_next_run": len(unknown),
                      "of_those_data_started_at_sink": unk_started, "of_those_complete_at_sink": unk_complete,
                      "addresses_with_two_copies": len(twice), "delivered_but_not_exactly_once": len(missing),
                      "second_run_exit": r.returncode,
                      "archive_at_kill_files_notwhole_partial": archived_at_kill,
                      "archive_after_files_notwhole_partial": archive_check(camp / "archive")}), flush=True)
shutil.rmtree(WORK, ignore_errors=True)
