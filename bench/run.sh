#!/usr/bin/env bash
# The side-by-side benchmark: rundbrev check / preview / send against Python mailmerge and
# Postfix smtp-source, on the same synthetic recipients and the shipped circular, into Postfix
# smtp-sink on 127.0.0.1. See bench/README.md.
#
#   bash bench/run.sh                  # full run: N = 1,000 10,000 100,000, and check at 1,000,000;
#                                      # writes bench/RESULTS.md
#   bash bench/run.sh --smoke          # N = 200, every run, < 30 s; exit 1 if anything is off
#   bash bench/run.sh --help
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

usage() {
    cat <<'EOF'
usage: bash bench/run.sh [options]

  --smoke                 N = 200, every run, strict (any failure, timeout or wrong sink count
                          exits 1); writes no RESULTS.md (the report goes to stdout only)
  --n "1000 10000 100000" the recipient counts (space- or comma-separated)
  --check-n "1000000"     counts at which only `rundbrev check` runs (and mailmerge's dry-run
                          time is estimated); "" for none
  --connections K         `connections = K` in [transport.smtp] (default 8); a binary that rejects
                          the key is detected and run without it (one connection)
  --rev REV               build and run this committed git revision (git archive + cargo build
                          --release in ~/.cache/rundbrev-bench), ignoring uncommitted changes
  --bin PATH              run this rundbrev binary (no build); --bin-label TEXT describes it
  --no-build              run target/release/rundbrev as it is (default: cargo build --release)
  --timeout S             limit for each rundbrev / smtp-source run (default 300; smoke 60)
  --mailmerge-send-max N  run `mailmerge --no-dry-run` only up to this N (default 10000); above
                          it, its time is estimated from the largest measured N, and labelled so
  --mailmerge-dry-max N   the same for `mailmerge --dry-run` (default 100000: all measured)
  --mailmerge-timeout S   limit for each mailmerge run (default 1200)
  --mailmerge PATH        the mailmerge to run (default: a venv with mailmerge==$MAILMERGE_VERSION,
                          made on first use in ~/.cache/rundbrev-bench/venv)
  --workdir DIR           where campaigns and logs go (default: a new folder under $TMPDIR or /tmp)
  --keep                  keep the work folder (default: keep only when something failed)
  --results FILE          where a full run writes its report (default bench/RESULTS.md)
  --no-results            write no report file
EOF
}

# --- options ---------------------------------------------------------------------------------
SMOKE=0
NS="1000 10000 100000"
CHECK_NS="1000000"
CONNECTIONS=8
REV=""
BIN=""
BIN_LABEL=""
BUILD=1
TIMEOUT=""
MM_SEND_MAX=10000
MM_DRY_MAX=100000
MM_TIMEOUT=1200
MAILMERGE=""
MAILMERGE_VERSION="${MAILMERGE_VERSION:-2.3.0}"
WORK=""
KEEP=0
RESULTS="$BENCH_DIR/RESULTS.md"
ARGS="$*"
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) SMOKE=1 ;;
    --n) NS="${2//,/ }"; shift ;;
    --check-n) CHECK_NS="${2//,/ }"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --rev) REV="$2"; shift ;;
    --bin) BIN="$2"; shift ;;
    --bin-label) BIN_LABEL="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --timeout) TIMEOUT="$2"; shift ;;
    --mailmerge-send-max) MM_SEND_MAX="$2"; shift ;;
    --mailmerge-dry-max) MM_DRY_MAX="$2"; shift ;;
    --mailmerge-timeout) MM_TIMEOUT="$2"; shift ;;
    --mailmerge) MAILMERGE="$2"; shift ;;
    --workdir) WORK="$2"; shift ;;
    --keep) KEEP=1 ;;
    --results) RESULTS="$2"; shift ;;
    --no-results) RESULTS="" ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$SMOKE" = 1 ]; then
    NS="200"
    CHECK_NS=""
    TIMEOUT="${TIMEOUT:-60}"
    MM_TIMEOUT=60
    RESULTS=""
fi
TIMEOUT="${TIMEOUT:-300}"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; FAILED=1; exit 2; }

# --- tools -----------------------------------------------------------------------------------
apt_install() {
    [ "$(id -u)" = 0 ] || die "$* missing (install it, or run as root to have it installed)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "$@" >&2; }
}
export PATH="$PATH:/usr/sbin:/sbin"
command -v smtp-sink >/dev/null && command -v smtp-source >/dev/null || {
    log "installing postfix (for smtp-sink and smtp-source; its mail daemon is not started)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt_install postfix
}
[ -x /usr/bin/time ] || apt_install time
command -v ss >/dev/null || apt_install iproute2
command -v timeout >/dev/null || die "timeout (coreutils) missing"
command -v python3 >/dev/null || die "python3 missing"

if [ -z "$MAILMERGE" ]; then
    VENV="${RUNDBREV_BENCH_VENV:-$HOME/.cache/rundbrev-bench/venv}"
    if ! "$VENV/bin/mailmerge" --version 2>/dev/null | grep -q "version $MAILMERGE_VERSION\$"; then
        log "installing mailmerge==$MAILMERGE_VERSION into $VENV"
        python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$VENV/bin/pip" install -q --disable-pip-version-check "mailmerge==$MAILMERGE_VERSION" >&2
    fi
    MAILMERGE="$VENV/bin/mailmerge"
fi
MM_VERSION=$("$MAILMERGE" --version 2>&1 | sed 's/.*version //')

# --- work folder and the binary under test ---------------------------------------------------
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/rundbrev-bench.XXXXXX")
else
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd)
fi
mkdir -p "$WORK/logs" "$WORK/bin"
FAILED=0
SINK_PID=""
cleanup() {
    if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; fi
    if [ "$KEEP" = 0 ] && [ "$FAILED" = 0 ]; then
        rm -rf "$WORK"
    else
        log "work folder kept: $WORK (logs in $WORK/logs)"
    fi
}
trap cleanup EXIT
# Files the runs are done with are moved aside into $WORK/retired, and deleted only when every
# run is over. On a file system that avoids reusing recently freed inodes (ext4 without a
# journal scans past them for minutes after a delete), deleting thousands of files would
# otherwise slow down every later run that creates files: charging one run's clean-up to the
# next.
retire() { # retire PATH...: out of the way, not deleted (see above)
    local p to
    for p in "$@"; do
        [ -e "$p" ] || continue
        # A folder of its own each time, also when --workdir is a folder used before.
        mkdir -p "$WORK/retired"
        to=$(mktemp -d "$WORK/retired/XXXXXX")
        mv "$p" "$to/"
    done
}
trap 'FAILED=1; exit 130' INT TERM

short_rev() { git -C "$REPO" rev-parse --short=12 "$1" 2>/dev/null || echo "?"; }
if [ -n "$BIN" ]; then
    [ -x "$BIN" ] || die "--bin $BIN: not an executable"
    RB_LABEL="${BIN_LABEL:-binary $BIN}"
elif [ -n "$REV" ]; then
    full=$(git -C "$REPO" rev-parse --verify "$REV^{commit}") || die "--rev $REV: no such commit"
    SRC="$HOME/.cache/rundbrev-bench/src-$full"
    if [ ! -d "$SRC" ]; then
        mkdir -p "$SRC.tmp" && git -C "$REPO" archive "$full" | tar -x -C "$SRC.tmp" && mv "$SRC.tmp" "$SRC"
    fi
    log "building revision $(short_rev "$full") (cargo build --release in $SRC)"
    (cd "$SRC" && CARGO_TARGET_DIR="$HOME/.cache/rundbrev-bench/target" cargo build --release -q) >&2
    BIN="$HOME/.cache/rundbrev-bench/target/release/rundbrev"
    RB_LABEL="git $(short_rev "$full") (committed tree, built from git archive)"
else
    if [ "$BUILD" = 1 ]; then
        log "cargo build --release"
        (cd "$REPO" && cargo build --release -q) >&2
    fi
    BIN="$REPO/target/release/rundbrev"
    [ -x "$BIN" ] || die "$BIN missing: run cargo build --release"
    dirty=$(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
    RB_LABEL="git $(short_rev HEAD)${dirty:+ + uncommitted changes in ${dirty% }} (target/release/rundbrev)"
fi
# Snapshots: a rebuild or an edit in the repo during the run cannot change what is measured.
# The campaign (config.toml, templates/) comes from the measured revision with --rev, else
# from the work tree as it is now.
CAMPAIGN_SRC="${SRC:-$REPO}"
mkdir -p "$WORK/src"
cp "$CAMPAIGN_SRC/config.toml" "$WORK/src/config.toml"
cp -r "$CAMPAIGN_SRC/templates" "$WORK/src/templates"
cp "$BIN" "$WORK/bin/rundbrev"
RB="$WORK/bin/rundbrev"
RB_SHA=$(sha256sum "$RB" | cut -c1-16)

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SINK_USER=()
[ "$(id -u)" = 0 ] && SINK_USER=(-u nobody)

# --- measuring ---------------------------------------------------------------------------------
RUNS="$WORK/runs.tsv"
: >"$RUNS"
# record N ID STATUS WALL RSS RC SINK_MSGS SINK_SESS LEDGER NOTE
record() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$RUNS"
}

# measure NAME LIMIT CWD STDOUT -- CMD...: runs CMD under /usr/bin/time -v and timeout; sets
# M_WALL (seconds), M_RSS (KiB), M_RC, M_STATUS (ok | fail | timeout).
measure() {
    local name=$1 limit=$2 cwd=$3 out=$4
    shift 5
    local tf="$WORK/logs/$name.time" t0 t1
    t0=$EPOCHREALTIME
    set +e
    (cd "$cwd" && exec /usr/bin/time -v -o "$tf" timeout "$limit" "$@" >"$out" 2>"$WORK/logs/$name.err" </dev/null)
    M_RC=$?
    set -e
    t1=$EPOCHREALTIME
    M_WALL=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    M_RSS=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$tf" 2>/dev/null | tail -1)
    if [ "$M_RC" = 124 ]; then
        M_STATUS=timeout
        M_WALL=$limit
    elif [ "$M_RC" = 0 ]; then
        M_STATUS=ok
    else
        M_STATUS=fail
    fi
}

start_sink() { # start_sink NAME: a fresh smtp-sink (so its counters start at 0)
    SINK_OUT="$WORK/logs/$1.sink"
    # shellcheck disable=SC2086 # RUNDBREV_BENCH_SINK_ARGS: extra smtp-sink options, to test the harness
    smtp-sink "${SINK_USER[@]}" ${RUNDBREV_BENCH_SINK_ARGS:-} -c "127.0.0.1:$PORT" 1024 >"$SINK_OUT" 2>"$WORK/logs/$1.sink.err" &
    SINK_PID=$!
    local i
    for i in $(seq 100); do
        [ -n "$(ss -Hltn "sport = :$PORT")" ] && return 0
        kill -0 "$SINK_PID" 2>/dev/null || break
        sleep 0.05
    done
    die "smtp-sink did not start on 127.0.0.1:$PORT (see $WORK/logs/$1.sink.err)"
}
# stop_sink: sets SINK_MSGS and SINK_SESS from smtp-sink -c's last counter line,
# "sess=S quit=Q mesg=M" (written and flushed as each message's final "." arrives, before the
# 250 reply, so once the client has its last reply the count is complete).
stop_sink() {
    sleep 0.2 # let the last sessions end, for the session count (the message count is final)
    kill "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
    local last
    last=$(tr '\r' '\n' <"$SINK_OUT" | grep 'mesg=' | tail -1 || true)
    SINK_MSGS=$(sed -n 's/.*mesg=\([0-9]*\).*/\1/p' <<<"$last")
    SINK_SESS=$(sed -n 's/.*sess=\([0-9]*\).*/\1/p' <<<"$last")
    SINK_MSGS=${SINK_MSGS:-0}
    SINK_SESS=${SINK_SESS:-0}
}

judge() { # a failed run fails the benchmark; so does a timeout in --smoke
    if [ "$M_STATUS" = fail ] || { [ "$M_STATUS" = timeout ] && [ "$SMOKE" = 1 ]; }; then
        FAILED=1
    fi
}

say() { # say N ID: one progress line
    local extra=""
    [ -n "${SINK_MSGS:-}" ] && extra=", sink $SINK_MSGS"
    log "$(printf '%-7s %-10s %-8s %9ss  %s KiB%s' "N=$1" "$2" "$M_STATUS" "$M_WALL" "${M_RSS:-?}" "$extra")"
}

# The `connections` key is new: an older binary refuses it as an unknown key (exit 2, naming
# transport.smtp...connections). Then the run is repeated with the config without the key.
CONFIG=config.toml
CONN_STATE="connections = $CONNECTIONS"
rejects_connections() {
    [ "$M_RC" = 2 ] && grep -q 'connections' "$1" && grep -qi 'unknown key' "$1"
}
rb_measure() { # rb_measure N ID DIR SUBCOMMAND...
    local n=$1 id=$2 dir=$3
    shift 3
    measure "$id-$n" "$TIMEOUT" "$dir" "$WORK/logs/$id-$n.out" -- "$RB" --config "$CONFIG" "$@"
    if [ "$CONFIG" = config.toml ] && rejects_connections "$WORK/logs/$id-$n.err"; then
        log "this rundbrev rejects transport.smtp.connections: running with one connection"
        CONFIG=config-noconn.toml
        CONN_STATE="1 (this binary rejects the \`connections\` key, so the config leaves it out)"
        measure "$id-$n" "$TIMEOUT" "$dir" "$WORK/logs/$id-$n.out" -- "$RB" --config "$CONFIG" "$@"
    fi
}

gen() { # gen N DIR
    python3 "$BENCH_DIR/gen.py" --repo "$WORK/src" --out "$2" --n "$1" --port "$PORT" --connections "$CONNECTIONS"
}

# --- a probe: the letter's size (for smtp-source) and whether `connections` is accepted ---------
gen 20 "$WORK/probe"
measure probe "$TIMEOUT" "$WORK/probe" "$WORK/logs/probe.out" -- "$RB" --config config.toml check
if rejects_connections "$WORK/logs/probe.err"; then
    log "this rundbrev rejects transport.smtp.connections: running with one connection"
    CONFIG=config-noconn.toml
    CONN_STATE="1 (this binary rejects the \`connections\` key, so the config leaves it out)"
elif [ "$M_RC" != 0 ]; then
    cat "$WORK/logs/probe.err" >&2
    FAILED=1
    die "rundbrev check fails on the generated campaign"
fi
# Whether this binary has the archive switch: an older one refuses or warns about the key.
no_archive() { sed 's/^\[archive\]$/[archive]\nenabled = false/' "$1"; }
NOARCHIVE=0
no_archive "$WORK/probe/$CONFIG" >"$WORK/probe/config-noarchive.toml"
if "$RB" --config "$WORK/probe/config-noarchive.toml" check >"$WORK/logs/probe-noarchive.out" 2>&1 &&
    ! grep -q 'enabled' "$WORK/logs/probe-noarchive.out"; then
    NOARCHIVE=1
fi
"$RB" --config "$WORK/probe/$CONFIG" preview >/dev/null 2>"$WORK/logs/probe-preview.err" ||
    { FAILED=1; die "rundbrev preview fails on the generated campaign"; }
LETTER_BYTES=$(python3 -c '
import pathlib, sys
s = [p.stat().st_size for p in pathlib.Path(sys.argv[1]).glob("*.eml")]
print(round(sum(s) / len(s)))' "$WORK/probe/preview")
retire "$WORK/probe"

# --- the runs ----------------------------------------------------------------------------------
MM_SEND_RATE="" # letters/s at the largest measured N, for estimates above the caps
MM_DRY_RATE=""
SINK_BAD=0
for N in $NS; do
    C="$WORK/n$N"
    log "N=$N: generating $N recipients"
    gen "$N" "$C"

    # rundbrev check: render and compose every letter in memory.
    SINK_MSGS=""
    rb_measure "$N" rb-check "$C" check
    say "$N" rb-check
    record "$N" rb-check "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "" "" "" ""
    CHECK_STATUS=$M_STATUS
    judge

    if [ "$CHECK_STATUS" = timeout ]; then
        # preview and send plan and merge every letter the same way first: they would only
        # time out too. Noted, and the run goes on with the peers.
        why="check timed out after ${TIMEOUT} s at this N, and preview/send merge every letter the same way first"
        record "$N" rb-preview skipped "" "" "" "" "" "" "$why"
        record "$N" rb-send skipped "" "" "" "" "" "" "$why"
        [ "$SMOKE" = 1 ] && FAILED=1
    else
        # rundbrev preview: every letter as .eml + .html, and index.html.
        rb_measure "$N" rb-preview "$C" preview
        say "$N" rb-preview
        files=$( (find "$C/preview" -name '*.eml' 2>/dev/null || true) | wc -l)
        note="$files .eml files written"
        record "$N" rb-preview "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "" "" "" "$note"
        judge
        # The preview's files stay until the whole benchmark is done (see `retire`).

        # rundbrev send over SMTP into the sink, the ledger on (beside config.toml, as usual).
        start_sink "rb-send-$N"
        rb_measure "$N" rb-send "$C" send --yes
        stop_sink
        say "$N" rb-send
        ledger=$("$RB" --config "$C/$CONFIG" status --format json 2>/dev/null |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"].get("delivered", 0))' || echo "?")
        conn_note=$([ "$CONFIG" = config.toml ] && echo "connections = $CONNECTIONS" || echo "1 connection")
        base_note=$conn_note
        # The shipped config also archives every letter as sent (if the binary has [archive]).
        archived=$( (find "$C/archive" -name '*.eml' 2>/dev/null || true) | wc -l)
        [ "$archived" -gt 0 ] && conn_note="$conn_note; $archived letters archived (.eml, as the shipped config says)"
        record "$N" rb-send "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "$SINK_MSGS" "$SINK_SESS" "$ledger" "$conn_note"
        judge
        [ "$SINK_MSGS" = "$N" ] || SINK_BAD=1
        [ "$ledger" = "$N" ] || SINK_BAD=1
        retire "$C"/*.ledger.sqlite* "$C/archive"

        # The same send with the archive off ([archive] enabled = false): what the archive costs.
        if [ "$NOARCHIVE" = 1 ]; then
            no_archive "$C/$CONFIG" >"$C/config-noarchive.toml"
            start_sink "rb-send-noarchive-$N"
            saved=$CONFIG
            CONFIG=config-noarchive.toml
            rb_measure "$N" rb-send-noarchive "$C" send --yes
            CONFIG=$saved
            stop_sink
            say "$N" rb-send-noarchive
            ledger=$("$RB" --config "$C/config-noarchive.toml" status --format json 2>/dev/null |
                python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"].get("delivered", 0))' || echo "?")
            archived=$( (find "$C/archive" -name '*.eml' 2>/dev/null || true) | wc -l)
            record "$N" rb-send-noarchive "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "$SINK_MSGS" "$SINK_SESS" "$ledger" "$base_note; archive off: $archived letters archived"
            judge
            [ "$SINK_MSGS" = "$N" ] || SINK_BAD=1
            [ "$ledger" = "$N" ] || SINK_BAD=1
            retire "$C"/*.ledger.sqlite* "$C/archive"
        else
            record "$N" rb-send-noarchive skipped "" "" "" "" "" "" "this rundbrev has no [archive] enabled switch"
        fi
    fi

    # mailmerge: its dry run renders every message (and prints it; to /dev/null here).
    SINK_MSGS=""
    if [ "$N" -le "$MM_DRY_MAX" ]; then
        measure "mm-dry-$N" "$MM_TIMEOUT" "$C/mailmerge" /dev/null -- "$MAILMERGE" --dry-run --no-limit
        say "$N" mm-dry
        record "$N" mm-dry "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "" "" "" "output to /dev/null"
        judge
        [ "$M_STATUS" = ok ] && MM_DRY_RATE=$(python3 -c "print($N / $M_WALL)")
    elif [ -n "$MM_DRY_RATE" ]; then
        record "$N" mm-dry est "$(python3 -c "print(f'{$N / $MM_DRY_RATE:.1f}')")" "" "" "" "" "" \
            "not run above N=$MM_DRY_MAX: time estimated from the largest measured N's rate"
    fi

    # mailmerge send: one new SMTP connection per message, no rate limit.
    if [ "$N" -le "$MM_SEND_MAX" ]; then
        start_sink "mm-send-$N"
        measure "mm-send-$N" "$MM_TIMEOUT" "$C/mailmerge" /dev/null -- "$MAILMERGE" --no-dry-run --no-limit
        stop_sink
        say "$N" mm-send
        record "$N" mm-send "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "$SINK_MSGS" "$SINK_SESS" "" "output to /dev/null"
        judge
        [ "$SINK_MSGS" = "$N" ] || SINK_BAD=1
        [ "$M_STATUS" = ok ] && MM_SEND_RATE=$(python3 -c "print($N / $M_WALL)")
    elif [ -n "$MM_SEND_RATE" ]; then
        record "$N" mm-send est "$(python3 -c "print(f'{$N / $MM_SEND_RATE:.1f}')")" "" "" "" "" "" \
            "not run above N=$MM_SEND_MAX: time estimated from the largest measured N's rate"
    fi

    # smtp-source: the loopback limit, messages of the letter's size, connection reuse (-d).
    for S in 1 8; do
        start_sink "src-$S-$N"
        measure "src-$S-$N" "$TIMEOUT" "$C" "$WORK/logs/src-$S-$N.out" -- \
            smtp-source -s "$S" -m "$N" -l "$LETTER_BYTES" -d -f uim@uim.dk -t post1@kommune1.dk "127.0.0.1:$PORT"
        stop_sink
        say "$N" "src-$S"
        record "$N" "src-$S" "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "$SINK_MSGS" "$SINK_SESS" "" "-l $LETTER_BYTES"
        judge
        [ "$SINK_MSGS" = "$N" ] || SINK_BAD=1
    done
    [ "$KEEP" = 1 ] || retire "$C"
done

# Check only, at the largest counts: preview and send would write or send a million letters.
for N in $CHECK_NS; do
    C="$WORK/n$N"
    log "N=$N: generating $N recipients (check only)"
    gen "$N" "$C"
    SINK_MSGS=""
    rb_measure "$N" rb-check "$C" check
    say "$N" rb-check
    record "$N" rb-check "$M_STATUS" "$M_WALL" "$M_RSS" "$M_RC" "" "" "" "check only at this N"
    judge
    if [ -n "$MM_DRY_RATE" ]; then
        record "$N" mm-dry est "$(python3 -c "print(f'{$N / $MM_DRY_RATE:.1f}')")" "" "" "" "" "" \
            "not run at this N: time estimated from the largest measured N's rate"
    fi
    [ "$KEEP" = 1 ] || retire "$C"
done

# --- the report --------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
os="$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), Linux $(uname -r)"
pf=$(postconf -d mail_version 2>/dev/null | sed 's/.*= //' || true)
notes=(
    "Every send run has its own fresh smtp-sink (\`smtp-sink -c\`, counting only, no dump); its message counter is read when the run is over and must equal N: $([ "$SINK_BAD" = 0 ] && echo "it did in every send run" || echo "**it did NOT in some run, see the tables**")."
    "rundbrev send: SMTP with security = \"none\" and retries = 0 to 127.0.0.1; the ledger in its normal place beside config.toml, new for each N; afterwards \`rundbrev status --format json\` must count N delivered."
    "mailmerge gets the same letter: templates/rundbrev.md as a Jinja2 template with \`CONTENT-TYPE: text/markdown\`, so it also sends text + HTML; its database is the same CSV plus an akt_id column. It prints every message: its stdout goes to /dev/null."
    "smtp-source sends messages of the letter's average size (-l $LETTER_BYTES: the average .eml of rundbrev preview) over reused connections (-d)."
    "All programs and the sink share the machine's $(nproc) cores; the runs are one after another, once each (no repetitions)."
    "No files are deleted between runs: what a run leaves is moved aside and deleted after the last run, so that no run pays for an earlier run's clean-up (ext4 without a journal, as here, passes over inodes freed in the last few minutes each time it creates a file). Files deleted on the machine shortly before the benchmark still slow the first runs that write files."
)
[ "$CONFIG" = config.toml ] || notes+=("This rundbrev rejects the \`connections\` key: it was run without it, i.e. with one SMTP connection.")
{
    printf 'date\t%s\n' "$(date '+%Y-%m-%d %H:%M %Z')"
    printf 'args\t%s\n' "$ARGS"
    printf 'machine\t%s cores (nproc), %s, %s RAM\n' "$(nproc)" "$cpu" "$mem"
    printf 'os\t%s\n' "$os"
    printf 'load\t%s at the start, %s at the end (1, 5, 15 min; other work on the machine shows here)\n' "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'rundbrev\t%s, %s\n' "$RB_LABEL" "$("$RB" --version)"
    printf 'binary\tsha256 %s…\n' "$RB_SHA"
    printf 'connections\t%s\n' "$CONN_STATE"
    printf 'mailmerge\t%s (PyPI, awdeorio), %s\n' "$MM_VERSION" "$("$(dirname "$MAILMERGE")/python" --version 2>/dev/null || python3 --version)"
    printf 'postfix\t%s\n' "${pf:-?}"
    printf 'letter\t%s bytes on average as sent (templates/rundbrev.md + config.toml: text + HTML, multipart/alternative)\n' "$LETTER_BYTES"
    printf 'sink\tsmtp-sink -c 127.0.0.1:PORT 1024, one per send run\n'
    printf 'notes\t%s\n' "$(printf '%s ¶ ' "${notes[@]}" | sed 's/ ¶ $//')"
} >"$WORK/meta.tsv"

SMOKE_FLAG=()
[ "$SMOKE" = 1 ] && SMOKE_FLAG=(--smoke)
python3 "$BENCH_DIR/report.py" "$WORK/meta.tsv" "$RUNS" "${SMOKE_FLAG[@]}" >"$WORK/RESULTS.md"
cat "$WORK/RESULTS.md"
if [ -n "$RESULTS" ]; then
    cp "$WORK/RESULTS.md" "$RESULTS"
    log "report written to $RESULTS"
fi
if [ "$SINK_BAD" = 1 ]; then
    FAILED=1
    log "FAILED: a sink did not receive exactly N messages, or the ledger does not count N delivered"
    exit 1
fi
if [ "$FAILED" = 1 ]; then
    log "FAILED: a run failed$([ "$SMOKE" = 1 ] && echo " or timed out")"
    exit 1
fi
log "ok"
