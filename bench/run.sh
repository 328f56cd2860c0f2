#!/bin/bash
# SPDX-License-Identifier: MIT
# Router benchmark: the same XEP-0114 load through parleyd, Prosody and ejabberd; prints a table.
#
# Each server runs as a private instance in a temporary directory, listening on 127.0.0.1 only,
# started and stopped by this script (by PID). See bench/README.md for what is measured.
# Environment (defaults in brackets):
#   BENCH_SERVERS   servers to run, in order ["parley prosody ejabberd"]
#   BENCH_N_SMALL   measured messages per repetition, small size [200000]
#   BENCH_N_LARGE   measured messages per repetition, large size [50000]
#   BENCH_MIN_SECONDS  a measurement goes on (by further rounds of N) until it lasted this long [3]
#   BENCH_SMALL     small message size in bytes [200]
#   BENCH_LARGE     large message size in bytes [4096]
#   BENCH_REPS      repetitions per server and size [3]
#   BENCH_PAIRS     sender/receiver component pairs [4]
#   BENCH_WINDOW    messages in flight per pair [500]
#   BENCH_WARMUP    warm-up messages per pair before each measurement [2000]
#   BENCH_TIMEOUT   time limit of one loadgen phase, seconds [120]
#   BENCH_OUT       where the table is written [bench/results/latest.md]
#   BENCH_KEEP      1 keeps the temporary directories (configs, logs) [0]
#   PARLEYD, LOADGEN  the binaries [build/release/src/main/parleyd, build/release/bench/parley-loadgen]
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIGS=$ROOT/bench/configs
BENCH_SERVERS=${BENCH_SERVERS:-"parley prosody ejabberd"}
BENCH_N_SMALL=${BENCH_N_SMALL:-200000}
BENCH_N_LARGE=${BENCH_N_LARGE:-50000}
BENCH_MIN_SECONDS=${BENCH_MIN_SECONDS:-3}
BENCH_SMALL=${BENCH_SMALL:-200}
BENCH_LARGE=${BENCH_LARGE:-4096}
BENCH_REPS=${BENCH_REPS:-3}
BENCH_PAIRS=${BENCH_PAIRS:-4}
BENCH_WINDOW=${BENCH_WINDOW:-500}
BENCH_WARMUP=${BENCH_WARMUP:-2000}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/latest.md}
BENCH_KEEP=${BENCH_KEEP:-0}
PARLEYD=${PARLEYD:-$ROOT/build/release/src/main/parleyd}
LOADGEN=${LOADGEN:-$ROOT/build/release/bench/parley-loadgen}

for v in BENCH_N_SMALL BENCH_N_LARGE BENCH_SMALL BENCH_LARGE BENCH_REPS BENCH_PAIRS BENCH_WINDOW \
    BENCH_WARMUP BENCH_TIMEOUT BENCH_MIN_SECONDS; do
    case ${!v} in
    '' | *[!0-9]*) echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2 ;;
    esac
done
if [ "$BENCH_REPS" -lt 1 ] || [ "$BENCH_PAIRS" -lt 1 ] || [ "$BENCH_PAIRS" -gt 64 ] ||
    [ "$BENCH_MIN_SECONDS" -ge "$BENCH_TIMEOUT" ]; then
    echo "run.sh: need BENCH_REPS >= 1, 1 <= BENCH_PAIRS <= 64, BENCH_MIN_SECONDS < BENCH_TIMEOUT" >&2
    exit 2
fi
if [ ! -x "$LOADGEN" ]; then
    echo "run.sh: no load generator at $LOADGEN (run 'make build' or set LOADGEN)" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench.XXXXXX") || exit 2
chmod 700 "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
SERVER_PID=
SERVER_DIR=
EPMD_BEFORE=

log() {
    printf '%s\n' "$*" >&2
}

# Stops the server we started, by its PID: SIGTERM, then SIGKILL after 20 s.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid=$SERVER_PID i
    SERVER_PID=
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "  server $pid did not stop within 20 s; killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    stop_new_epmd
}

# Erlang starts epmd only for distributed nodes, which we do not ask for. Should one appear
# anyway, stop it (by PID) if it is ours: it inherited our server's environment, which names
# the server's directory. Any other epmd belongs to someone else and is left alone.
stop_new_epmd() {
    local p
    [ -n "$SERVER_DIR" ] || return 0
    for p in $(pgrep -x epmd 2>/dev/null); do
        case " $EPMD_BEFORE " in *" $p "*) continue ;; esac
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "EJABBERD_CONFIG_PATH=$SERVER_DIR/ejabberd.yml"; then
            log "  stopping the epmd ($p) that our ejabberd started"
            kill -TERM "$p" 2>/dev/null
        fi
    done
}

cleanup() {
    stop_server
    if [ "$BENCH_KEEP" = 1 ]; then
        log "run.sh: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:$1 accepts, while process $2 lives; at most $3 seconds.
wait_port() {
    local port=$1 pid=$2 limit=$3 i
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The component domains: a<i>.r<rep>.bench and b<i>.r<rep>.bench. Each repetition uses new
# names, so that no server can still hold a route from the previous repetition's links.
domains() {
    local r i
    for r in $(seq 1 "$BENCH_REPS"); do
        for i in $(seq 0 $((BENCH_PAIRS - 1))); do
            printf 'a%s.r%s.bench b%s.r%s.bench ' "$i" "$r" "$i" "$r"
        done
    done
}

# Replaces a line consisting of @NAME@ in a template by the contents of a file.
fill_block() {
    awk -v key="$1" -v file="$2" '
        $0 == key { while ((getline line < file) > 0) print line; next }
        { print }'
}

# Each setup_<server> writes a config into $1 (a fresh directory) for port $2 and secret $3,
# and prints the command line; start_server runs it there.
setup_parley() {
    local dir=$1 port=$2 secret=$3 d
    printf '%s\n' "$secret" >"$dir/secret"
    for d in $(domains); do
        printf '[component "%s"]\nsecret_file = secret\n\n' "$d"
    done >"$dir/components"
    sed -e "s|@PORT@|$port|g" "$CONFIGS/parley.conf.in" | fill_block @COMPONENTS@ "$dir/components" \
        >"$dir/parley.conf"
    echo "$PARLEYD --config $dir/parley.conf router"
}

setup_prosody() {
    local dir=$1 port=$2 secret=$3 d
    mkdir -p "$dir/data" "$dir/certs"
    for d in $(domains); do
        printf 'Component "%s"\n    component_secret = "%s"\n' "$d" "$secret"
    done >"$dir/components"
    sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$CONFIGS/prosody.cfg.lua.in" |
        fill_block @COMPONENTS@ "$dir/components" >"$dir/prosody.cfg.lua"
    # -F: stay in the foreground, so that the PID we hold is Prosody's.
    echo "prosody -F --config $dir/prosody.cfg.lua"
}

setup_ejabberd() {
    local dir=$1 port=$2 secret=$3
    mkdir -p "$dir/spool" "$dir/log"
    sed -e "s|@PORT@|$port|g" -e "s|@SECRET@|$secret|g" "$CONFIGS/ejabberd.yml.in" \
        >"$dir/ejabberd.yml"
    # What ejabberdctl would run, minus the node name: without one the VM is not distributed,
    # so no epmd, no Erlang cookie, and no port other than the component listener. The PID of
    # `erl` becomes beam.smp's (erl and erlexec exec it).
    echo "env EJABBERD_CONFIG_PATH=$dir/ejabberd.yml EJABBERD_LOG_PATH=$dir/log/ejabberd.log" \
        "ERL_CRASH_DUMP=$dir/log/erl_crash.dump ERL_LIBS=$EJABBERD_LIBS HOME=$dir" \
        "erl +K true +P 250000 -noinput -env ERL_CRASH_DUMP_BYTES 0" \
        "-mnesia dir '\"$dir/spool\"' -s ejabberd"
}

# Finds what each server needs; prints a reason and returns 1 if it cannot run.
available() {
    case $1 in
    parley)
        [ -x "$PARLEYD" ] && return 0
        log "parleyd not found at $PARLEYD (run 'make build'): skipping Parley"
        ;;
    prosody)
        command -v prosody >/dev/null && return 0
        log "prosody is not installed: skipping Prosody"
        ;;
    ejabberd)
        EJABBERD_LIBS=
        local ctl
        ctl=$(command -v ejabberdctl 2>/dev/null || ls /usr/sbin/ejabberdctl 2>/dev/null)
        [ -n "$ctl" ] && EJABBERD_LIBS=$(sed -n "s/^ERL_LIBS='\(.*\)'$/\1/p" "$ctl" | head -n 1)
        if command -v erl >/dev/null && [ -n "$EJABBERD_LIBS" ] &&
            ls "$EJABBERD_LIBS"/ejabberd-*/ebin/ejabberd.beam >/dev/null 2>&1; then
            return 0
        fi
        log "ejabberd is not installed: skipping ejabberd"
        ;;
    *)
        log "unknown server '$1' in BENCH_SERVERS: skipping it"
        ;;
    esac
    return 1
}

version_of() {
    case $1 in
    parley) git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "working tree" ;;
    *) dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?" ;;
    esac
}

# Runs the repetitions of one server and size against a fresh instance.
bench_one() {
    local server=$1 size=$2 count=$3 dir port secret cmd rep out rc line
    dir=$WORK/$server-$size
    mkdir -p "$dir"
    port=$(free_port) || { log "run.sh: no free port"; return 1; }
    secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$secret" >"$dir/secret"
    cmd=$("setup_$server" "$dir" "$port" "$secret")
    EPMD_BEFORE=$(pgrep -x epmd 2>/dev/null | tr '\n' ' ')
    SERVER_DIR=$dir
    # exec in a subshell: $! is then the server's own PID.
    (cd "$dir" && eval "exec $cmd") >"$dir/server.out" 2>&1 </dev/null &
    SERVER_PID=$!
    if ! wait_port "$port" "$SERVER_PID" 60; then
        log "  $server did not start listening on 127.0.0.1:$port; its output:"
        tail -n 20 "$dir/server.out" "$dir"/*.log "$dir"/log/*.log 2>/dev/null | sed 's/^/    /' >&2
        stop_server
        return 1
    fi
    log "  $server pid $SERVER_PID on 127.0.0.1:$port, $size-byte messages"
    for rep in $(seq 1 "$BENCH_REPS"); do
        out=$("$LOADGEN" --port "$port" --secret-file "$dir/secret" --pairs "$BENCH_PAIRS" \
            --count "$count" --warmup "$BENCH_WARMUP" --size "$size" --window "$BENCH_WINDOW" \
            --timeout "$BENCH_TIMEOUT" --min-seconds "$BENCH_MIN_SECONDS" --domain "r$rep.bench" --server-pid "$SERVER_PID" \
            2>"$dir/loadgen-$rep.err")
        rc=$?
        line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
        if [ -z "$line" ]; then
            log "  rep $rep: the load generator failed (exit $rc):"
            sed 's/^/    /' "$dir/loadgen-$rep.err" >&2
            continue
        fi
        log "  rep $rep: ${line#RESULT }"
        printf '%s %s %s\n' "$server" "$size" "${line#RESULT }" >>"$RESULTS"
    done
    stop_server
    # Keep the server's own output and logs next to the results.
    mkdir -p "$(dirname "$BENCH_OUT")/logs"
    cat "$dir/server.out" "$dir"/*.log "$dir"/log/*.log >"$(dirname "$BENCH_OUT")/logs/$server-$size.log" \
        2>/dev/null
    return 0
}

# Prints the markdown table from the RESULT lines: medians over the repetitions.
report() {
    awk -v servers="$1" -v small="$BENCH_SMALL" -v large="$BENCH_LARGE" '
    function median(s,    a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return -1
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        k = $1 SUBSEP $2
        for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        rate[k] = rate[k] " " f["rate"]
        if (f["server_cpu"] > 0) per_cpu[k] = per_cpu[k] " " f["stanzas"] / f["server_cpu"]
        if (f["seconds"] > 0) lg[k] = lg[k] " " 100 * f["loadgen_cpu"] / f["seconds"]
        if (f["server_hwm_kb"] + 0 > hwm[k] + 0) hwm[k] = f["server_hwm_kb"]
        if (f["complete"] != 1) incomplete[k] = 1
        if (f["bounced"] > 0) bounced[k] += f["bounced"]
        reps[k]++
    }
    END {
        names["parley"] = "Parley"; names["prosody"] = "Prosody"; names["ejabberd"] = "ejabberd"
        ns = split(servers, sv, " ")
        sizes[1] = small; sizes[2] = large
        print "| server | size | stanzas/s | CPU-s per 100k | stanzas per CPU-s | peak RSS MB | loadgen CPU % | reps |"
        print "|---|---|---:|---:|---:|---:|---:|---:|"
        for (s = 1; s <= ns; s++) for (z = 1; z <= 2; z++) {
            k = sv[s] SUBSEP sizes[z]
            if (!(k in reps)) continue
            r = median(rate[k]); c = median(per_cpu[k]); l = median(lg[k])
            pc[k] = c
            note = (k in incomplete) ? " (time limit hit)" : ""
            if (k in bounced) note = note " (" bounced[k] " bounced)"
            printf "| %s | %d B | %.0f%s | %s | %s | %.1f | %.0f | %d |\n", names[sv[s]], sizes[z], r, note,
                (c > 0 ? sprintf("%.3f", 100000 / c) : "n/a"), (c > 0 ? sprintf("%.0f", c) : "n/a"),
                hwm[k] / 1024, l, reps[k]
        }
        printed = 0
        for (s = 1; s <= ns; s++) {
            if (sv[s] == "parley") continue
            for (z = 1; z <= 2; z++) {
                kp = "parley" SUBSEP sizes[z]; kq = sv[s] SUBSEP sizes[z]
                if (!(kp in pc) || !(kq in pc) || pc[kp] <= 0 || pc[kq] <= 0) continue
                if (!printed) {
                    print ""
                    print "| ratio | size | stanzas/s | stanzas per CPU-s |"
                    print "|---|---|---:|---:|"
                    printed = 1
                }
                printf "| Parley / %s | %d B | %.2f | %.2f |\n", names[sv[s]], sizes[z],
                    median(rate[kp]) / median(rate[kq]), pc[kp] / pc[kq]
            }
        }
    }' "$RESULTS"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ran=
for server in $BENCH_SERVERS; do
    available "$server" || continue
    log "== $server $(version_of "$server")"
    bench_one "$server" "$BENCH_SMALL" "$BENCH_N_SMALL" && bench_one "$server" "$BENCH_LARGE" "$BENCH_N_LARGE"
    ran="$ran $server"
done

if [ ! -s "$RESULTS" ]; then
    log "run.sh: no results"
    exit 1
fi

mkdir -p "$(dirname "$BENCH_OUT")"
{
    echo "# Router benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Component-to-component messages through the router (XEP-0114), $BENCH_PAIRS sender/receiver"
    echo "pairs, $BENCH_WINDOW in flight per pair; at least $BENCH_N_SMALL small ($BENCH_SMALL B) and $BENCH_N_LARGE large"
    echo "($BENCH_LARGE B) messages and ${BENCH_MIN_SECONDS} s per measurement, after $BENCH_WARMUP warm-up messages per pair;"
    echo "medians of $BENCH_REPS repetitions, each server a fresh private instance per size."
    echo "Host: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)."
    echo "Versions:$(for s in $ran; do printf ' %s %s;' "$s" "$(version_of "$s")"; done)"
    echo "Load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(other busy processes on the machine slow every server and raise its CPU per stanza)."
    echo
    report "$ran"
    echo
    echo "CPU is the router process's user + system time (all its threads) during the measured"
    echo "phase; peak RSS is its VmHWM. See bench/README.md."
} >"$BENCH_OUT"
echo
cat "$BENCH_OUT"
echo
echo "(written to $BENCH_OUT)"
