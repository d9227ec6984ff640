# Helpers shared by slurm.sh and sge.sh (sourced, not run).
# The caller sets: TAG (log prefix), ACTION, RUN (pid-file dir), LOG (log dir),
# KEEP_ON_FAILURE (1 keeps a half-started cluster for debugging), and defines do_stop.

log() { echo "[$TAG] $*"; }

DIE_LOGS="" # log files whose tail is shown on failure
die() {
    echo "[$TAG] ERROR: $*" >&2
    local f
    for f in $DIE_LOGS; do
        [ -s "$f" ] && { echo "----- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    # a failed start stops whatever it already started, so that a retry begins clean
    if [ "$ACTION" = start ] && [ "${KEEP_ON_FAILURE:-0}" != 1 ] && declare -F do_stop >/dev/null; then
        echo "[$TAG] cleaning up after failed start" >&2
        do_stop >&2 || true
    fi
    exit 1
}

require_root() { [ "$(id -u)" -eq 0 ] || die "must be run as root (e.g. sudo $0 $ACTION)"; }

# pid_alive PIDFILE COMM: the pid in PIDFILE runs and is COMM (guards against pid reuse)
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1 # the daemon may remove it while we look
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

# stop_recorded NAME: SIGTERM (SIGKILL after 30 s) the pid recorded in $RUN/NAME.pid; only
# daemons this script started have such a file, so nothing else is ever stopped
stop_recorded() {
    local f=$RUN/$1.pid pid i
    if pid_alive "$f" "$1"; then
        pid=$(cat "$f")
        log "stopping $1 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 150); do pid_alive "$f" "$1" || break; sleep 0.2; done
        if pid_alive "$f" "$1"; then
            log "$1 (pid $pid) ignored SIGTERM for 30 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$f"
}

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds
wait_for() {
    local t=$1 i
    shift
    for i in $(seq 1 $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# wait_up SECONDS DAEMON CMD...: like wait_for, but give up as soon as DAEMON has died
wait_up() {
    local t=$1 d=$2 i
    shift 2
    for i in $(seq 1 $((t * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        pid_alive "$RUN/$d.pid" "$d" || return 1
        sleep 0.2
    done
    return 1
}

# apt_install PKG...: install the missing Debian packages without starting their services
apt_install() {
    local p need=() guard=0 rc=0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    log "installing: ${need[*]}"
    DIE_LOGS="$LOG/apt.log"
    # postinst scripts would start the daemons with default configs (and exim for SGE)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1
    fi
    {
        # ci-start.sh updates the package lists once for both clusters
        if [ "${CLUSTER_APT_UPDATED:-0}" != 1 ]; then apt-get -o DPkg::Lock::Timeout=120 update -q; fi &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q \
                --no-install-recommends "${need[@]}"
    } >>"$LOG/apt.log" 2>&1 || rc=$?
    [ $guard -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || die "apt-get install ${need[*]} failed (rc=$rc), see $LOG/apt.log"
}

# show_status NAME...: one line per daemon this script manages
show_status() {
    local n
    for n in "$@"; do
        if pid_alive "$RUN/$n.pid" "$n"; then
            echo "$n: running (pid $(cat "$RUN/$n.pid"), started by $0)"
        elif [ -s "$RUN/$n.pid" ]; then
            echo "$n: not running (started by $0 as pid $(cat "$RUN/$n.pid"), ended since)"
        else
            echo "$n: not started by $0"
        fi
    done
}
