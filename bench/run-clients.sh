#!/bin/bash
# SPDX-License-Identifier: MIT
# Client benchmarks: STARTTLS logins, 1:1 messages, the memory of idle connections and messages
# in one multi-user chat room, against parleyd, Prosody and ejabberd.
#
# Each server runs as a private instance in a temporary directory, listening on 127.0.0.1 only,
# started and stopped by this script (by PID). See bench/README.md for what is measured.
# Environment (defaults in brackets):
#   BENCH_SERVERS      servers to run, in order ["parley prosody ejabberd"]; "parley-split"
#                      runs parleyd as three processes (router, sm, c2s); "parley-procs" runs
#                      `parleyd all --processes` (the same three, as its children); "parley-noarchive"
#                      runs `parleyd all` without archive and carbons even with BENCH_ARCHIVE=1
#   BENCH_ARCHIVE      1: every server archives messages (XEP-0313, all of them) and has
#                      carbons (XEP-0280), which each client enables at login [0]
#   BENCH_PARTS        benchmarks to run, of login, message, idle and room
#                      ["login message idle room"]
#   BENCH_REPS         repetitions of each benchmark per server [3]
#   BENCH_USERS        accounts for the login benchmark [100]
#   BENCH_LOGINS       measured logins per repetition (at least) [1000]
#   BENCH_CONCURRENCY  logins in progress at once [20]
#   BENCH_PAIRS        sender/receiver pairs in the message benchmark [10]
#   BENCH_WINDOW       messages in flight per pair [10]
#   BENCH_MESSAGES     measured messages per repetition (at least) [50000]
#   BENCH_MSG_SIZE     bytes per <message/> as sent [200]
#   BENCH_MIN_SECONDS  each measurement goes on until it has lasted this long [5]
#   BENCH_IDLE_SIZES   idle connections held open, one measurement each ["1000 10000"]
#   BENCH_IDLE_SETTLE  seconds of silence before each RSS reading of the idle benchmark [3]
#   BENCH_ROOM_SIZES   room: occupants of the room, one measurement each ["10 100 1000"]
#   BENCH_ROOM_MESSAGES  room: measured messages (at least), one number for every size or one
#                      per size [50000 / occupants, at least 100: 5000, 500, 100]
#   BENCH_ROOM_SENDERS room: occupants that send [4]
#   BENCH_ROOM_WINDOW  room: messages in flight per sender, until its own echo, one number for
#                      every size or one per size [400 / occupants, 4 to 10: 10, 4, 4]
#   BENCH_ROOM_REPS    room: repetitions of each size [1]
#   BENCH_TIMEOUT      time limit of one load generator run, seconds, plus 20 ms for each
#                      connection of a registration, idle or room run (and the idle run's
#                      silences, and the room's joins: 240 s per 1,000 occupants squared)
#                      [120]
#   BENCH_CERT         certificate key type: ec (P-256, as `make run` makes) or rsa (2048) [ec]
#   BENCH_OUT          where the table is written [bench/results/clients.md]
#   BENCH_KEEP         1 keeps the temporary directory (configs, logs) [0]
#   PARLEYD, PARLEYCTL, CLIENTLOAD  the binaries [build/release/...]
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIGS=$ROOT/bench/configs
BENCH_SERVERS=${BENCH_SERVERS:-"parley prosody ejabberd"}
BENCH_PARTS=${BENCH_PARTS:-"login message idle room"}
BENCH_REPS=${BENCH_REPS:-3}
BENCH_USERS=${BENCH_USERS:-100}
BENCH_LOGINS=${BENCH_LOGINS:-1000}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-20}
BENCH_PAIRS=${BENCH_PAIRS:-10}
BENCH_WINDOW=${BENCH_WINDOW:-10}
BENCH_MESSAGES=${BENCH_MESSAGES:-50000}
BENCH_MSG_SIZE=${BENCH_MSG_SIZE:-200}
BENCH_MIN_SECONDS=${BENCH_MIN_SECONDS:-5}
BENCH_IDLE_SIZES=${BENCH_IDLE_SIZES:-"1000 10000"}
BENCH_IDLE_SETTLE=${BENCH_IDLE_SETTLE:-3}
BENCH_ROOM_SIZES=${BENCH_ROOM_SIZES:-"10 100 1000"}
BENCH_ROOM_MESSAGES=${BENCH_ROOM_MESSAGES:-}
BENCH_ROOM_SENDERS=${BENCH_ROOM_SENDERS:-4}
BENCH_ROOM_WINDOW=${BENCH_ROOM_WINDOW:-}
BENCH_ROOM_REPS=${BENCH_ROOM_REPS:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
BENCH_CERT=${BENCH_CERT:-ec}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/clients.md}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_ARCHIVE=${BENCH_ARCHIVE:-0}
PARLEYD=${PARLEYD:-$ROOT/build/release/src/main/parleyd}
PARLEYCTL=${PARLEYCTL:-$ROOT/build/release/src/main/parleyctl}
CLIENTLOAD=${CLIENTLOAD:-$ROOT/build/release/bench/parley-clientload}
# The servers run in their own directories: the binaries' paths must not be relative.
PARLEYD=$(realpath -m "$PARLEYD")
PARLEYCTL=$(realpath -m "$PARLEYCTL")
CLIENTLOAD=$(realpath -m "$CLIENTLOAD")

for v in BENCH_REPS BENCH_USERS BENCH_LOGINS BENCH_CONCURRENCY BENCH_PAIRS BENCH_WINDOW \
    BENCH_MESSAGES BENCH_MSG_SIZE BENCH_MIN_SECONDS BENCH_TIMEOUT BENCH_IDLE_SETTLE BENCH_ARCHIVE \
    BENCH_ROOM_SENDERS BENCH_ROOM_REPS; do
    case ${!v} in
    '' | *[!0-9]*) echo "run-clients.sh: $v must be a whole number, not '${!v}'" >&2; exit 2 ;;
    esac
done
for n in $BENCH_IDLE_SIZES; do
    case $n in
    '' | *[!0-9]* | 0) echo "run-clients.sh: BENCH_IDLE_SIZES holds whole numbers, not '$n'" >&2; exit 2 ;;
    esac
    [ "$n" -le 20000 ] || { echo "run-clients.sh: at most 20000 idle connections" >&2; exit 2; }
done
for n in $BENCH_ROOM_SIZES $BENCH_ROOM_MESSAGES $BENCH_ROOM_WINDOW; do
    case $n in
    '' | *[!0-9]* | 0) echo "run-clients.sh: BENCH_ROOM_SIZES, _MESSAGES and _WINDOW hold whole numbers, not '$n'" >&2; exit 2 ;;
    esac
done
for n in $BENCH_ROOM_SIZES; do
    if [ "$n" -gt 5000 ] || [ "$n" -lt "$BENCH_ROOM_SENDERS" ]; then
        echo "run-clients.sh: a room holds BENCH_ROOM_SENDERS to 5000 occupants, not $n" >&2
        exit 2
    fi
done
# shellcheck disable=SC2086 # the lists are split on purpose
for list in "$BENCH_ROOM_MESSAGES" "$BENCH_ROOM_WINDOW"; do
    if [ -n "$list" ] && [ "$(echo $list | wc -w)" != 1 ] &&
        [ "$(echo $list | wc -w)" != "$(echo $BENCH_ROOM_SIZES | wc -w)" ]; then
        echo "run-clients.sh: BENCH_ROOM_MESSAGES and BENCH_ROOM_WINDOW hold one number, or one" \
            "per BENCH_ROOM_SIZES" >&2
        exit 2
    fi
done
for what in $BENCH_PARTS; do
    case $what in
    login | message | idle | room) ;;
    *) echo "run-clients.sh: BENCH_PARTS holds login, message, idle and room, not '$what'" >&2; exit 2 ;;
    esac
done
has_part() {
    case " $BENCH_PARTS " in *" $1 "*) return 0 ;; esac
    return 1
}
if [ "$BENCH_REPS" -lt 1 ] || [ "$BENCH_USERS" -lt "$BENCH_CONCURRENCY" ] ||
    [ "$BENCH_CONCURRENCY" -lt 1 ] || [ "$BENCH_PAIRS" -lt 1 ] || [ "$BENCH_ROOM_SENDERS" -lt 1 ] ||
    [ "$BENCH_ROOM_SENDERS" -gt 64 ] || [ "$BENCH_ROOM_REPS" -lt 1 ] ||
    [ "$BENCH_MIN_SECONDS" -ge "$BENCH_TIMEOUT" ] || [ "$BENCH_IDLE_SETTLE" -gt 300 ]; then
    echo "run-clients.sh: need BENCH_REPS >= 1, BENCH_USERS >= BENCH_CONCURRENCY >= 1," \
        "BENCH_PAIRS >= 1, BENCH_MIN_SECONDS < BENCH_TIMEOUT, BENCH_IDLE_SETTLE <= 300," \
        "1 <= BENCH_ROOM_SENDERS <= 64, BENCH_ROOM_REPS >= 1" >&2
    exit 2
fi
case $BENCH_CERT in
ec | rsa) ;;
*) echo "run-clients.sh: BENCH_CERT is ec or rsa" >&2; exit 2 ;;
esac
if [ ! -x "$CLIENTLOAD" ]; then
    echo "run-clients.sh: no load generator at $CLIENTLOAD (run 'make build' or set CLIENTLOAD)" >&2
    exit 2
fi

# The login benchmark uses user0 .. user<BENCH_USERS-1>; the message benchmark the next
# 2 * BENCH_PAIRS accounts, so that no login ever meets a message benchmark's session. The
# idle and room benchmarks, on instances of their own, use user0 .. user<N-1>.
MSG_FIRST=$BENCH_USERS
ACCOUNTS=$((BENCH_USERS + 2 * BENCH_PAIRS))
IDLE_MAX=0
if has_part idle; then
    for n in $BENCH_IDLE_SIZES; do
        [ "$n" -gt "$IDLE_MAX" ] && IDLE_MAX=$n
    done
    [ "$IDLE_MAX" -gt "$ACCOUNTS" ] && ACCOUNTS=$IDLE_MAX
fi
ROOM_MAX=0
if has_part room; then
    for n in $BENCH_ROOM_SIZES; do
        [ "$n" -gt "$ROOM_MAX" ] && ROOM_MAX=$n
    done
    [ "$ROOM_MAX" -gt "$ACCOUNTS" ] && ACCOUNTS=$ROOM_MAX
fi
# The idle benchmark holds all its connections open in one load generator and one server
# process (the servers inherit the limit): raise the soft limit, and the hard one if we may.
FDS=$(((IDLE_MAX > ROOM_MAX ? IDLE_MAX : ROOM_MAX) + 1024))
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$FDS" ]; then
    ulimit -Sn "$FDS" 2>/dev/null || ulimit -n "$FDS" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench-clients.XXXXXX") || exit 2
chmod 700 "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
SERVER_PIDS=
# Processes whose CPU counts but which their parent stops (a supervisor's children).
CPU_PIDS=
SERVER_DIR=
EPMD_BEFORE=
# "-room" while the room benchmark runs: the servers then start with their MUC service
# (parley-room.conf, prosody-room.cfg.lua, ejabberd-room.yml); the other parts run without.
VARIANT=
# Servers left out of the room part, with why, for the report.
ROOM_SKIPPED=

log() {
    printf '%s\n' "$*" >&2
}

# Stops the processes we started, last started first, by PID: SIGTERM, SIGKILL after 20 s.
stop_server() {
    local pid list=$SERVER_PIDS
    SERVER_PIDS=
    CPU_PIDS=
    # shellcheck disable=SC2086 # the list of PIDs is split on purpose
    for pid in $(printf '%s\n' $list | tac); do
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "  process $pid did not stop within 20 s; killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    stop_new_epmd
}

# Erlang starts epmd only for distributed nodes, which we do not ask for. Should one appear
# anyway, stop it (by PID) if it is ours: it inherited our server's environment.
stop_new_epmd() {
    local p
    [ -n "$SERVER_DIR" ] || return 0
    for p in $(pgrep -x epmd 2>/dev/null); do
        case " $EPMD_BEFORE " in *" $p "*) continue ;; esac
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "EJABBERD_CONFIG_PATH=$SERVER_DIR/ejabberd$VARIANT.yml"; then
            log "  stopping the epmd ($p) that our ejabberd started"
            kill -TERM "$p" 2>/dev/null
        fi
    done
}

cleanup() {
    stop_server
    if [ "$BENCH_KEEP" = 1 ]; then
        log "run-clients.sh: kept $WORK"
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
    local port=$1 pid=$2 limit=$3
    for _ in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Starts "$2..." in directory $1 with its output in $1/server.out; its PID joins SERVER_PIDS.
# exec in a subshell: $! is then the server's own PID.
start_process() {
    local dir=$1
    shift
    (cd "$dir" && exec "$@") >>"$dir/server.out" 2>&1 </dev/null &
    LAST_PID=$!
    SERVER_PIDS="$SERVER_PIDS $LAST_PID"
}

# One self-signed certificate for every server, made like scripts/make-default-config.sh.
make_cert() {
    local d=$WORK/certs
    mkdir -p "$d"
    if [ "$BENCH_CERT" = ec ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
            -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
            -keyout "$d/localhost.key" -out "$d/localhost.crt" 2>/dev/null
    else
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
            -addext "subjectAltName=DNS:localhost" \
            -keyout "$d/localhost.key" -out "$d/localhost.crt" 2>/dev/null
    fi || return 1
    cat "$d/localhost.key" "$d/localhost.crt" >"$d/localhost.pem"
    chmod 600 "$d"/*
}

# Makes the accounts user0 .. user<ACCOUNTS-1> by running the shell command $3 with the
# password file, the rest of our arguments, and the first and one past the last account
# number of a run of at most $2 accounts: user0 alone (it may create the storage), then the
# others, eight runs at a time. Errors go to $1/accounts.log.
make_accounts() {
    local dir=$1 run=$2 cmd=$3 t0=$SECONDS i=1 end
    shift 3
    {
        sh -c "$cmd" _ "$WORK/password" "$@" 0 1
        while [ "$i" -lt "$ACCOUNTS" ]; do
            end=$((i + run < ACCOUNTS ? i + run : ACCOUNTS))
            echo "$i $end"
            i=$end
        done | xargs -P 8 -L 1 sh -c "$cmd" _ "$WORK/password" "$@"
    } 2>>"$dir/accounts.log"
    if [ -s "$dir/accounts.log" ]; then
        head -n 5 "$dir/accounts.log" | sed 's/^/    /' >&2
        return 1
    fi
    log "  $ACCOUNTS accounts made in $((SECONDS - t0)) s"
}

# Each setup_<server> prepares directory $1 for c2s port $2: config, certificate, accounts.
# It sets PORT (where clients connect) and leaves the server to start_<server>.
setup_parley() {
    local dir=$1 port=$2 rport disable='mam, carbons'
    rport=$(free_port) || return 1
    # The archive and carbons run unless the benchmark is without them, or for parley-noarchive.
    [ "$BENCH_ARCHIVE" = 1 ] && [ "$(basename "$dir")" != parley-noarchive ] && disable='""'

    mkdir -p "$dir/certs" "$dir/data" "$dir/secrets"
    cp "$WORK/certs/localhost.crt" "$WORK/certs/localhost.key" "$dir/certs/"
    openssl rand -hex 24 >"$dir/secrets/sm"
    openssl rand -hex 24 >"$dir/secrets/c2s"
    chmod 600 "$dir/secrets/"*
    sed -e "s|@PORT_ROUTER@|$rport|g" -e "s|@PORT_C2S@|$port|g" -e "s|@SM_DISABLE@|$disable|g" \
        "$CONFIGS/parley-c2s.conf.in" >"$dir/parley.conf"
    cat "$dir/parley.conf" "$CONFIGS/parley-muc.conf.in" >"$dir/parley-room.conf"
    ROUTER_PORT=$rport
    # Both topologies have the same storage: the accounts are made once, then copied.
    if [ -d "$WORK/parley-accounts" ]; then
        cp -a "$WORK/parley-accounts/." "$dir/data/"
        return
    fi
    # parleyctl makes one account (password on stdin); SQLite lets the writers take turns.
    # shellcheck disable=SC2016 # expanded by the inner sh
    make_accounts "$dir" 1 'out=$(cd "$2" && "$3" --config parley.conf adduser "user$4@localhost" \
        <"$1" 2>&1) || echo "parleyctl adduser user$4: $out" >&2' "$dir" "$PARLEYCTL" &&
        cp -a "$dir/data" "$WORK/parley-accounts"
}
setup_parley_split() {
    setup_parley "$@"
}
setup_parley_procs() {
    setup_parley "$@"
}

setup_parley_noarchive() {
    setup_parley "$@"
}
start_parley_noarchive() {
    start_parley "$@"
}

start_parley() {
    start_process "$1" "$PARLEYD" --config "parley$VARIANT.conf" all
}

start_parley_procs() {
    local dir=$1 pid
    start_process "$dir" "$PARLEYD" --config parley.conf all --processes
    # The c2s starts last: once it accepts, every child is there. Their CPU is counted.
    wait_port "$PORT" "$LAST_PID" 60 || return 1
    for pid in $(ps --ppid "$LAST_PID" -o pid=); do CPU_PIDS="$CPU_PIDS $pid"; done
}

start_parley_split() {
    local dir=$1
    start_process "$dir" "$PARLEYD" --config parley.conf router
    wait_port "$ROUTER_PORT" "$LAST_PID" 30 || return 1
    start_process "$dir" "$PARLEYD" --config parley.conf sm
    start_process "$dir" "$PARLEYD" --config parley.conf c2s
}

setup_prosody() {
    local dir=$1 port=$2
    mkdir -p "$dir/data" "$dir/certs"
    cp "$WORK/certs/localhost.crt" "$WORK/certs/localhost.key" "$dir/certs/"
    local archive=''
    [ "$BENCH_ARCHIVE" = 1 ] && archive='"mam", "carbons"'
    sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@PLUGINS@|$CONFIGS/prosody-plugins|g" \
        -e "s|@ARCHIVE_MODULES@|$archive|g" \
        "$CONFIGS/prosody-c2s.cfg.lua.in" >"$dir/prosody.cfg.lua"
    cat "$dir/prosody.cfg.lua" "$CONFIGS/prosody-muc.cfg.lua.in" >"$dir/prosody-room.cfg.lua"
    # prosodyctl writes the account files while the server is down: `prosodyctl register`
    # for each would start Prosody 10,000 times, mod_bench_accounts makes a run of them.
    # shellcheck disable=SC2016 # expanded by the inner sh
    make_accounts "$dir" 500 'out=$(prosodyctl --config "$2" mod_bench_accounts localhost "$3" "$4" \
        "$1" 2>&1) || echo "prosodyctl mod_bench_accounts: $(echo "$out" | tail -n 2)" >&2' \
        "$dir/prosody.cfg.lua"
}

start_prosody() {
    # -F: stay in the foreground, so that the PID we hold is Prosody's.
    start_process "$1" prosody -F --config "$1/prosody$VARIANT.cfg.lua"
}

setup_ejabberd() {
    local dir=$1 port=$2
    mkdir -p "$dir/spool" "$dir/log" "$dir/certs"
    cp "$WORK/certs/localhost.pem" "$dir/certs/"
    sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$CONFIGS/ejabberd-c2s.yml.in" \
        >"$dir/ejabberd.yml"
    if [ "$BENCH_ARCHIVE" = 1 ]; then
        # Every message archived, as the other servers do here, in SQLite (the archive in
        # Mnesia, the default, writes every message to a disc log: about 170 messages/s
        # here); carbons for every client.
        # (The modules block ends the file: its entries first, then top-level keys.)
        printf '  mod_mam:\n    db_type: sql\n    default: always\n  mod_carboncopy: {}\n' \
            >>"$dir/ejabberd.yml"
        printf 'sql_type: sqlite\nsql_database: "%s/archive.db"\n' "$dir" >>"$dir/ejabberd.yml"
    fi
    # The room benchmark's config: mod_muc among the modules.
    sed "/^modules:\$/r $CONFIGS/ejabberd-muc.yml.in" "$dir/ejabberd.yml" >"$dir/ejabberd-room.yml"
}

start_ejabberd() {
    local dir=$1
    # What ejabberdctl would run, minus the node name: without one the VM is not distributed,
    # so no epmd, no Erlang cookie, and no port other than the c2s listener (and so no
    # ejabberdctl either: accounts come by in-band registration, see register_ejabberd).
    start_process "$dir" env EJABBERD_CONFIG_PATH="$dir/ejabberd$VARIANT.yml" \
        EJABBERD_LOG_PATH="$dir/log/ejabberd.log" ERL_CRASH_DUMP="$dir/log/erl_crash.dump" \
        ERL_LIBS="$EJABBERD_LIBS" HOME="$dir" \
        erl +K true +P 250000 -noinput -env ERL_CRASH_DUMP_BYTES 0 \
        -mnesia dir "\"$dir/spool\"" -s ejabberd
}

# The time limit of a load generator run that opens $1 connections in all.
time_limit_for() {
    echo $((BENCH_TIMEOUT + $1 / 50))
}

# The time limit of a room run with $1 occupants: the logins, and the joins, whose presence
# broadcasts grow with the square of the occupants (240 s for 1,000: Prosody had seated 899
# of 1,000 after 200 s on a busy machine).
room_time_limit() {
    echo $(($(time_limit_for "$1") + $1 * $1 * 240 / 1000000))
}

# The setting for room size $2, number $1 (from 1) in BENCH_ROOM_SIZES, from the list $3 (one
# number for every size, or one per size); if $3 is empty, $4 / size bounded to $5 .. $6: a
# large room gets fewer messages (each is more deliveries) and a smaller window (each message in
# flight is already size deliveries of work), which keeps its latency the fan-out's, not a queue's.
room_setting() {
    local k=$1 size=$2 list=$3 v
    if [ -z "$list" ]; then
        v=$(($4 / size))
        [ "$v" -lt "$5" ] && v=$5
        [ "$v" -gt "$6" ] && v=$6
        echo "$v"
        return
    fi
    # shellcheck disable=SC2086 # the list is split on purpose
    set -- "$k" $list
    [ $# = 2 ] && { echo "$2"; return; }
    shift "$k"
    echo "$1"
}

# Whether server $1 (directory $2) can run the room benchmark; says why not.
room_possible() {
    local out
    case $1 in
    parley-split | parley-procs)
        log "  room: not measured for $1 (the room benchmark runs \`parleyd all\`)"
        ROOM_SKIPPED="$ROOM_SKIPPED $1 (the room part runs \`parleyd all\`);"
        return 1
        ;;
    parley*)
        # Until parleyd has its MUC component, it refuses the [muc] section.
        if ! out=$(cd "$2" && "$PARLEYD" --config parley-room.conf --check-config all 2>&1); then
            log "  room: parleyd refuses parley-room.conf, so no room rows for $1 (no MUC component" \
                "in this parleyd?): $(printf '%s\n' "$out" | grep -v '^$' | head -n 1)"
            ROOM_SKIPPED="$ROOM_SKIPPED $1 (parleyd --check-config refused its [muc] section: no MUC component yet?);"
            return 1
        fi
        ;;
    esac
    return 0
}

# After start: ejabberd's accounts, by XEP-0077 in-band registration over STARTTLS.
register_ejabberd() {
    local dir=$1 port=$2 out
    out=$("$CLIENTLOAD" register --port "$port" --password-file "$WORK/password" \
        --users "$ACCOUNTS" --concurrency 10 --timeout "$(time_limit_for "$ACCOUNTS")" \
        --server-name ejabberd \
        2>"$dir/register.err") || {
        log "  in-band registration failed:"
        sed 's/^/    /' "$dir/register.err" >&2
        return 1
    }
    log "  registered: ${out#RESULT }"
}

# Finds what each server needs; prints a reason and returns 1 if it cannot run.
available() {
    case $1 in
    parley | parley-split | parley-procs | parley-noarchive)
        if [ -x "$PARLEYD" ] && [ -x "$PARLEYCTL" ] &&
            "$PARLEYD" --help 2>&1 | grep -q '^  c2s '; then
            return 0
        fi
        log "parleyd with c2s and sm not found at $PARLEYD (run 'make build'): skipping $1"
        ;;
    prosody)
        command -v prosody >/dev/null && command -v prosodyctl >/dev/null && return 0
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
    parley*) git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "working tree" ;;
    *) dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?" ;;
    esac
}

# Runs the load generator once (repetition $5, or idle connections); appends its RESULT line
# to $RESULTS under the server's name.
run_load() {
    local server=$1 dir=$2 port=$3 what=$4 rep=$5 out rc line pids limit=$BENCH_TIMEOUT
    shift 5
    # shellcheck disable=SC2086 # the list of PIDs is split on purpose
    pids=$(echo $SERVER_PIDS $CPU_PIDS | tr ' ' ',')
    [ "$what" = idle ] && limit=$(($(time_limit_for "$rep") + 2 * BENCH_IDLE_SETTLE))
    [ "$what" = room ] && limit=$(room_time_limit "${rep%-*}")
    out=$("$CLIENTLOAD" "$what" --port "$port" --password-file "$WORK/password" \
        --timeout "$limit" --min-seconds "$BENCH_MIN_SECONDS" --server-pid "$pids" \
        --server-name "$server" "$@" 2>"$dir/$what-$rep.err")
    rc=$?
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
    if [ -z "$line" ]; then
        log "  $what rep $rep: the load generator failed (exit $rc):"
        sed 's/^/    /' "$dir/$what-$rep.err" >&2
        return 1
    fi
    if [ "$what" = idle ]; then
        log "  idle: $(printf '%s' "$line" | grep -o 'users=.* kb_per_conn=[^ ]*')"
    elif [ "$what" = room ]; then
        log "  room ${rep%-*} rep ${rep#*-}: $(printf '%s' "${line#RESULT }" | cut -d' ' -f3-10)" \
            "$(printf '%s' "$line" | grep -o 'messages=[^ ]* msg_rate=[^ ]*')" \
            "$(printf '%s' "$line" | grep -o 'join_seconds=[^ ]*')"
    else
        log "  $what rep $rep: $(printf '%s' "${line#RESULT }" | cut -d' ' -f3-10)"
    fi
    printf '%s\n' "${line#RESULT }" >>"$RESULTS"
}

# Starts server $1 in $2 (c2s on port $3) and waits until it accepts clients.
start_server() {
    local server=$1 dir=$2 port=$3
    EPMD_BEFORE=$(pgrep -x epmd 2>/dev/null | tr '\n' ' ')
    SERVER_DIR=$dir
    PORT=$port
    if ! "start_${server//-/_}" "$dir" || ! wait_port "$port" "$LAST_PID" 60; then
        log "  $server did not start listening on 127.0.0.1:$port; its output:"
        tail -n 20 "$dir/server.out" "$dir"/*.log "$dir"/log/*.log 2>/dev/null | sed 's/^/    /' >&2
        stop_server
        return 1
    fi
}

# Sets up one server (config, accounts), then measures each benchmark and repetition (and
# each number of idle connections) against a freshly started instance: Prosody's CPU per login
# and per message grows with the logins an instance has served (see bench/README.md), so no
# measurement inherits another's.
bench_server() {
    local server=$1 dir port rep what run runs='' shown='' room_failed='' n k m
    dir=$WORK/$server
    mkdir -p "$dir"
    port=$(free_port) || { log "run-clients.sh: no free port"; return 1; }
    "setup_${server//-/_}" "$dir" "$port" || { log "  $server: setup failed"; return 1; }
    if [ "$server" = ejabberd ]; then
        # Accounts by in-band registration; they stay in the Mnesia spool across restarts.
        start_server "$server" "$dir" "$port" || return 1
        register_ejabberd "$dir" "$port" || { stop_server; return 1; }
        stop_server
    fi
    for rep in $(seq 1 "$BENCH_REPS"); do
        for what in login message; do
            has_part "$what" && runs="$runs $what:$rep"
        done
    done
    if has_part idle; then
        for rep in $BENCH_IDLE_SIZES; do
            runs="$runs idle:$rep"
        done
    fi
    if has_part room && room_possible "$server" "$dir"; then
        for n in $BENCH_ROOM_SIZES; do
            for rep in $(seq 1 "$BENCH_ROOM_REPS"); do
                runs="$runs room:$n-$rep"
            done
        done
    fi
    for run in $runs; do
        what=${run%:*} rep=${run#*:}
        VARIANT=
        [ "$what" = room ] && VARIANT=-room
        if [ "$what" = idle ] && [ "$(ulimit -Sn)" != unlimited ] &&
            [ "$(ulimit -Sn)" -lt $((rep + 512)) ]; then
            log "  idle $rep: skipped, it needs $((rep + 512)) descriptors (ulimit -n $(ulimit -Sn))"
            continue
        fi
        if [ "$what" = room ] && [ -n "$room_failed" ]; then
            continue
        fi
        if ! start_server "$server" "$dir" "$port"; then
            # Without its room, a server still has the other parts' rows.
            [ "$what" = room ] || return 1
            room_failed=1
            ROOM_SKIPPED="$ROOM_SKIPPED $server from ${rep%-*} occupants on (it did not start with its MUC service);"
            continue
        fi
        [ -n "$shown" ] || log "  $server pids$SERVER_PIDS, c2s on 127.0.0.1:$port"
        shown=1
        case $what in
        login)
            run_load "$server" "$dir" "$port" login "$rep" --users "$BENCH_USERS" \
                --count "$BENCH_LOGINS" --concurrency "$BENCH_CONCURRENCY"
            ;;
        message)
            # shellcheck disable=SC2046 # an option or none
            run_load "$server" "$dir" "$port" message "$rep" --first "$MSG_FIRST" \
                --pairs "$BENCH_PAIRS" --window "$BENCH_WINDOW" --count "$BENCH_MESSAGES" \
                --size "$BENCH_MSG_SIZE" --concurrency "$BENCH_CONCURRENCY" \
                $([ "$BENCH_ARCHIVE" = 1 ] && echo --carbons)
            ;;
        idle)
            run_load "$server" "$dir" "$port" idle "$rep" --users "$rep" \
                --concurrency "$BENCH_CONCURRENCY" --settle-ms $((BENCH_IDLE_SETTLE * 1000))
            ;;
        room)
            n=${rep%-*} k=1
            for m in $BENCH_ROOM_SIZES; do
                [ "$m" = "$n" ] && break
                k=$((k + 1))
            done
            run_load "$server" "$dir" "$port" room "$rep" --users "$n" \
                --senders "$BENCH_ROOM_SENDERS" \
                --window "$(room_setting "$k" "$n" "$BENCH_ROOM_WINDOW" 400 4 10)" \
                --count "$(room_setting "$k" "$n" "$BENCH_ROOM_MESSAGES" 50000 100 1000000000)" \
                --size "$BENCH_MSG_SIZE" \
                --concurrency "$BENCH_CONCURRENCY" --room "bench$n-${rep#*-}"
            ;;
        esac
        stop_server
    done
    VARIANT=
    mkdir -p "$(dirname "$BENCH_OUT")/logs"
    cat "$dir/server.out" "$dir"/*.log "$dir"/log/*.log "$dir"/*.err \
        >"$(dirname "$BENCH_OUT")/logs/clients-$server.log" 2>/dev/null
    return 0
}

# Prints the login and message tables from the RESULT lines: medians over the repetitions.
report() {
    awk -v servers="$1" '
    function median(s,    a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return -1
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(k, name, v) { vals[k, name] = vals[k, name] " " v }
    function m(k, name) { return median(vals[k, name]) }
    $1 != "mode=idle" && $1 != "mode=room" {
        delete f
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        k = f["server"] SUBSEP f["mode"]
        has[f["mode"]] = 1
        add(k, "rate", f["rate"])
        if (f["server_cpu"] > 0) add(k, "per_cpu", f["count"] / f["server_cpu"])
        add(k, "cpu_us", f["cpu_per_unit_us"])
        add(k, "p50", f["lat_p50_ms"])
        add(k, "p99", f["lat_p99_ms"])
        if (f["seconds"] > 0) add(k, "lg", 100 * f["loadgen_cpu"] / f["seconds"])
        if (f["complete"] != 1) incomplete[k] = 1
        errors[k] += f["errors"] + f["bounced"] + f["out_of_order"]
        reps[k]++
    }
    END {
        names["parley"] = "Parley"; names["parley-split"] = "Parley (3 processes)"; names["parley-procs"] = "Parley (all --processes)"; names["parley-noarchive"] = "Parley (no archive, no carbons)"
        names["prosody"] = "Prosody"; names["ejabberd"] = "ejabberd"
        ns = split(servers, sv, " ")
        if (has["login"]) {
            print "### Logins (STARTTLS, SCRAM-SHA-1, bind, roster, initial presence)"
            print ""
            print "| server | logins/s | server CPU ms per login | logins per server CPU-s | p50 ms | p99 ms | loadgen CPU % | reps |"
            print "|---|---:|---:|---:|---:|---:|---:|---:|"
        }
        for (s = 1; s <= ns; s++) {
            k = sv[s] SUBSEP "login"
            if (!(k in reps)) continue
            note = (k in incomplete) ? " (time limit hit)" : ""
            if (errors[k] > 0) note = note " (" errors[k] " errors)"
            printf "| %s | %.0f%s | %.2f | %.0f | %.1f | %.1f | %.0f | %d |\n", names[sv[s]], m(k, "rate"),
                note, m(k, "cpu_us") / 1000, m(k, "per_cpu"), m(k, "p50"), m(k, "p99"), m(k, "lg"), reps[k]
        }
        if (has["message"]) {
            if (has["login"]) print ""
            print "### 1:1 messages between online users over TLS"
            print ""
            print "| server | messages/s | server CPU µs per message | messages per server CPU-s | p50 ms | p99 ms | loadgen CPU % | reps |"
            print "|---|---:|---:|---:|---:|---:|---:|---:|"
        }
        for (s = 1; s <= ns; s++) {
            k = sv[s] SUBSEP "message"
            if (!(k in reps)) continue
            note = (k in incomplete) ? " (time limit hit)" : ""
            if (errors[k] > 0) note = note " (" errors[k] " errors)"
            printf "| %s | %.0f%s | %.1f | %.0f | %.2f | %.2f | %.0f | %d |\n", names[sv[s]], m(k, "rate"),
                note, m(k, "cpu_us"), m(k, "per_cpu"), m(k, "p50"), m(k, "p99"), m(k, "lg"), reps[k]
        }
        printed = 0
        for (p = 1; p <= ns; p++) {
            if (sv[p] !~ /^parley/) continue
            for (s = 1; s <= ns; s++) {
                if (sv[s] ~ /^parley/) continue
                kl = sv[p] SUBSEP "login"; ql = sv[s] SUBSEP "login"
                km = sv[p] SUBSEP "message"; qm = sv[s] SUBSEP "message"
                if (!(kl in reps) || !(ql in reps) || !(km in reps) || !(qm in reps)) continue
                if (!printed) {
                    print ""
                    print "### Ratios (above 1: Parley does better)"
                    print ""
                    print "| ratio | logins per CPU-s | logins/s | login p50 | login p99 | messages per CPU-s | messages/s | message p50 | message p99 |"
                    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
                    printed = 1
                }
                printf "| %s / %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                    names[sv[p]], names[sv[s]],
                    ratio(m(kl, "per_cpu"), m(ql, "per_cpu")), ratio(m(kl, "rate"), m(ql, "rate")),
                    ratio(m(ql, "p50"), m(kl, "p50")), ratio(m(ql, "p99"), m(kl, "p99")),
                    ratio(m(km, "per_cpu"), m(qm, "per_cpu")), ratio(m(km, "rate"), m(qm, "rate")),
                    ratio(m(qm, "p50"), m(km, "p50")), ratio(m(qm, "p99"), m(km, "p99"))
            }
        }
    }
    function ratio(a, b) { return (a > 0 && b > 0) ? a / b : 0 }' "$RESULTS"
}

# Prints the idle benchmark's tables from the RESULT lines: one measurement per size.
report_idle() {
    awk -v servers="$1" -v sizes="$BENCH_IDLE_SIZES" -v settle="$BENCH_IDLE_SETTLE" '
    $1 == "mode=idle" {
        delete f
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        k = f["server"] SUBSEP f["users"]
        before[k] = f["rss_before_kb"]; after[k] = f["rss_after_kb"]; per[k] = f["kb_per_conn"]
        note[k] = f["complete"] == 1 ? "" : " (time limit hit: " f["online"] " online)"
    }
    END {
        names["parley"] = "Parley"; names["parley-split"] = "Parley (3 processes)"; names["parley-procs"] = "Parley (all --processes)"; names["parley-noarchive"] = "Parley (no archive, no carbons)"
        names["prosody"] = "Prosody"; names["ejabberd"] = "ejabberd"
        ns = split(servers, sv, " "); nz = split(sizes, sz, " ")
        print "### Idle connections (STARTTLS, SCRAM-SHA-1, bind, roster, initial presence, then " settle " s of silence)"
        print ""
        print "| server | connections | RSS before MiB | RSS after MiB | KiB per connection |"
        print "|---|---:|---:|---:|---:|"
        for (s = 1; s <= ns; s++)
            for (z = 1; z <= nz; z++) {
                k = sv[s] SUBSEP sz[z]
                if (k in per)
                    printf "| %s | %d | %.1f | %.1f | %.1f%s |\n", names[sv[s]], sz[z],
                        before[k] / 1024, after[k] / 1024, per[k], note[k]
            }
        head = "| ratio: peer KiB per connection / Parley'"'"'s (above 1: Parley uses less) |"
        line = "|---|"
        for (z = 1; z <= nz; z++) { head = head " " sz[z] " |"; line = line "---:|" }
        printed = 0
        for (p = 1; p <= ns; p++) {
            if (sv[p] !~ /^parley/) continue
            for (s = 1; s <= ns; s++) {
                if (sv[s] ~ /^parley/) continue
                row = "| " names[sv[s]] " / " names[sv[p]] " |"; any = 0
                for (z = 1; z <= nz; z++) {
                    a = per[sv[s] SUBSEP sz[z]]; b = per[sv[p] SUBSEP sz[z]]
                    row = row (a > 0 && b > 0 ? sprintf(" %.2f |", a / b) : " |")
                    any += a > 0 && b > 0
                }
                if (!any) continue
                if (!printed) { print ""; print head; print line; printed = 1 }
                print row
            }
        }
    }' "$RESULTS"
}

# Prints the room benchmark's tables from the RESULT lines: medians per server and room size.
report_room() {
    awk -v servers="$1" -v sizes="$BENCH_ROOM_SIZES" '
    function median(s,    a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return -1
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(k, name, v) { vals[k, name] = vals[k, name] " " v }
    function m(k, name) { return median(vals[k, name]) }
    function ratio(a, b) { return (a > 0 && b > 0) ? a / b : 0 }
    $1 == "mode=room" {
        delete f
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        k = f["server"] SUBSEP f["occupants"]
        add(k, "rate", f["rate"])
        add(k, "msg_rate", f["msg_rate"])
        add(k, "cpu", f["server_cpu"])
        if (f["server_cpu"] > 0) add(k, "per_cpu", f["count"] / f["server_cpu"])
        add(k, "p50", f["lat_p50_ms"])
        add(k, "p99", f["lat_p99_ms"])
        if (f["seconds"] > 0) add(k, "lg", 100 * f["loadgen_cpu"] / f["seconds"])
        add(k, "join", f["join_seconds"])
        window[k] = f["senders"] " × " f["window"]
        if (f["complete"] != 1) incomplete[k] = 1
        errors[k] += f["errors"] + f["out_of_order"]
        reps[k]++
    }
    END {
        names["parley"] = "Parley"; names["parley-noarchive"] = "Parley (no archive, no carbons)"
        names["prosody"] = "Prosody"; names["ejabberd"] = "ejabberd"
        ns = split(servers, sv, " "); nz = split(sizes, sz, " ")
        print "### One room: groupchat messages delivered to every occupant"
        print ""
        print "| server | occupants | in flight | delivered stanzas/s | messages/s | p50 ms | p99 ms | server CPU s | delivered per server CPU-s | loadgen CPU % | joins s | reps |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (s = 1; s <= ns; s++)
            for (z = 1; z <= nz; z++) {
                k = sv[s] SUBSEP sz[z]
                if (!(k in reps)) continue
                note = (k in incomplete) ? " (time limit hit)" : ""
                if (errors[k] > 0) note = note " (" errors[k] " errors)"
                printf "| %s | %d | %s | %.0f%s | %.0f | %.2f | %.2f | %.2f | %.0f | %.0f | %.1f | %d |\n", names[sv[s]],
                    sz[z], window[k], m(k, "rate"), note, m(k, "msg_rate"), m(k, "p50"), m(k, "p99"), m(k, "cpu"),
                    m(k, "per_cpu"), m(k, "lg"), m(k, "join"), reps[k]
            }
        printed = 0
        for (p = 1; p <= ns; p++) {
            if (sv[p] !~ /^parley/) continue
            for (z = 1; z <= nz; z++) {
                kp = sv[p] SUBSEP sz[z]
                if (!(kp in reps)) continue
                best = 0; bestname = ""
                for (s = 1; s <= ns; s++) {
                    if (sv[s] ~ /^parley/) continue
                    kq = sv[s] SUBSEP sz[z]
                    if (!(kq in reps)) continue
                    if (!printed) {
                        print ""
                        print "### Ratios (above 1: Parley does better; the goal of issue 6 is 3 against the faster peer)"
                        print ""
                        print "| ratio | occupants | delivered stanzas/s | delivered per server CPU-s | p50 | p99 |"
                        print "|---|---:|---:|---:|---:|---:|"
                        printed = 1
                    }
                    printf "| %s / %s | %d | %.2f | %.2f | %.2f | %.2f |\n", names[sv[p]], names[sv[s]], sz[z],
                        ratio(m(kp, "rate"), m(kq, "rate")), ratio(m(kp, "per_cpu"), m(kq, "per_cpu")),
                        ratio(m(kq, "p50"), m(kp, "p50")), ratio(m(kq, "p99"), m(kp, "p99"))
                    if (m(kq, "rate") > best) { best = m(kq, "rate"); bestname = names[sv[s]] }
                }
                if (bestname != "")
                    printf "| %s / the faster peer (%s) | %d | %.2f | | | |\n", names[sv[p]], bestname, sz[z],
                        ratio(m(kp, "rate"), best)
            }
        }
    }' "$RESULTS"
}

make_cert || { log "run-clients.sh: openssl could not make a certificate"; exit 2; }
openssl rand -hex 16 >"$WORK/password"
chmod 600 "$WORK/password"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ran=
versions=
for server in $BENCH_SERVERS; do
    available "$server" || continue
    # Taken now: the tree may change while the run goes on.
    version=$(version_of "${server%-split}")
    log "== $server $version"
    bench_server "$server" && ran="$ran $server" && versions="$versions $server $version;"
done

if [ ! -s "$RESULTS" ]; then
    log "run-clients.sh: no results"
    exit 1
fi

mkdir -p "$(dirname "$BENCH_OUT")"
{
    echo "# Client benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    if has_part login || has_part message; then
        echo "Logins: at least $BENCH_LOGINS per repetition (and ${BENCH_MIN_SECONDS} s), $BENCH_CONCURRENCY at once, over"
        echo "$BENCH_USERS accounts, after a warm-up round of one login per account. Messages: $BENCH_PAIRS"
        echo "sender/receiver pairs, $BENCH_WINDOW in flight per pair, $BENCH_MSG_SIZE B each, at least $BENCH_MESSAGES"
        echo "(and ${BENCH_MIN_SECONDS} s) per repetition. Medians of $BENCH_REPS repetitions, each against a freshly started"
        echo "instance."
    fi
    if has_part room; then
        echo "Room: one room of N occupants for N in ($BENCH_ROOM_SIZES), each in $BENCH_ROOM_REPS repetition(s)"
        echo "on a freshly started instance, every join confirmed, no history; $BENCH_ROOM_SENDERS senders with"
        echo "(${BENCH_ROOM_WINDOW:-400 / N, 4 to 10}) messages in flight each until their own echo, $BENCH_MSG_SIZE B"
        echo "each, at least (${BENCH_ROOM_MESSAGES:-50000 / N, at least 100}) messages and ${BENCH_MIN_SECONDS} s per measurement."
    fi
    if has_part idle; then
        echo "Idle: $BENCH_IDLE_SIZES connections (one measurement each, on a freshly started instance),"
        echo "$BENCH_CONCURRENCY logins at once; VmRSS of all the server's processes after one warm-up login"
        echo "and with every connection online, each after ${BENCH_IDLE_SETTLE} s of silence."
    fi
    echo "Certificate: self-signed $([ "$BENCH_CERT" = ec ] && echo 'ECDSA P-256' || echo 'RSA 2048'); TLS: $(grep -o 'tls=[^ ]*' "$RESULTS" | sort -u | sed 's/tls=//' | tr '\n' ' ')"
    echo "Host: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); the load generator"
    echo "shares them with the server."
    echo "Versions:$versions"
    echo "Load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(other busy processes on the machine slow every server and raise its CPU per unit)."
    if has_part login || has_part message; then
        echo
        report "$ran"
        echo
        echo "Server CPU is user + system time of the server's processes (all threads) during the"
        echo "measured phase; latencies are from connect to logged in, and from send to parsed by the"
        echo "receiver. See bench/README.md."
    fi
    if has_part room && grep -q '^mode=room ' "$RESULTS"; then
        echo
        report_room "$ran"
        echo
        echo "Delivered stanzas = messages x the occupants that received them (the sender's own echo"
        echo "included); latency from send to receipt at each occupant; server CPU = user + system"
        echo "time of the server's processes during the measured phase. See bench/README.md."
    fi
    if has_part room && [ -n "$ROOM_SKIPPED" ]; then
        echo
        echo "No room rows for:$ROOM_SKIPPED"
    fi
    if has_part idle; then
        echo
        report_idle "$ran"
        echo
        echo "KiB per connection = (RSS after - RSS before) / connections. See bench/README.md."
    fi
} >"$BENCH_OUT"
echo
cat "$BENCH_OUT"
echo
echo "(written to $BENCH_OUT)"
