#!/usr/bin/env bash
# A single-node SLURM cluster for glmflow's cluster tests (Debian/Ubuntu, as root, no systemd).
#
#   slurm.sh start    install (if needed), configure and start munged, slurmctld, slurmd, then
#                     run one real job; idempotent (already running: READY at once)
#   slurm.sh stop     stop only the daemons this script started (pid files in the state dir)
#   slurm.sh status   what runs, and sinfo
#
# Prints "SLURM READY: ..." on success; exits non-zero with "[slurm] ERROR: ..." and the tail of
# the daemon logs otherwise. Environment: GLMFLOW_CLUSTER_DIR (state, default /tmp/glmflow-
# cluster), SLURM_PARTITION (debug), CLUSTER_TIMEOUT (60 s), CLUSTER_KEEP_ON_FAILURE=1.
set -euo pipefail

ACTION=${1:-start}
TAG=slurm
BASE=${GLMFLOW_CLUSTER_DIR:-/tmp/glmflow-cluster}/slurm
RUN=$BASE/run
LOG=$BASE/log
CONF=/etc/slurm/slurm.conf
MARK="# managed-by: glmflow scripts/cluster/slurm.sh (single-node test cluster)"
PARTITION=${SLURM_PARTITION:-debug}
TIMEOUT=${CLUSTER_TIMEOUT:-60}
KEEP_ON_FAILURE=${CLUSTER_KEEP_ON_FAILURE:-0}
T0=$(date +%s)
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

start_munge() {
    if pid_alive "$RUN/munged.pid" munged; then
        return 0
    fi
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running (not started here: stop will leave it alone)"
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged >>"$LOG/munged.out" 2>&1 ||
        die "munged failed to start: $(tail -n 3 "$LOG/munged.out")"
    wait_for 10 pid_alive /run/munge/munged.pid munged || die "munged did not write a pid file"
    cp /run/munge/munged.pid "$RUN/munged.pid"
    wait_for 10 sh -c 'munge -n | unmunge' || die "munge credential round-trip failed"
    log "munged started (pid $(cat "$RUN/munged.pid"))"
}

write_conf() {
    local host=$1 node mem
    # CPU layout as slurmd sees it; RealMemory lowered to 80 % so that the node never drains
    # with "Low RealMemory" when the machine's free memory fluctuates
    node=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //; s/ RealMemory=[0-9]+//')
    mem=$(slurmd -C | head -n 1 | sed -nE 's/.*RealMemory=([0-9]+).*/\1/p')
    mem=$((${mem:-1024} * 8 / 10))
    [ "$mem" -ge 100 ] || mem=100
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        log "backing up existing $CONF to $CONF.pre-glmflow"
        cp -p "$CONF" "$CONF.pre-glmflow"
    fi
    mkdir -p /etc/slurm
    cat >"$CONF" <<EOF
$MARK
ClusterName=glmflow
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
# no cgroups in containers: track processes by /proc, bind no tasks
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# schedule each submitted or released job at once (the default batch_sched_delay is 3 s per
# job); kill_invalid_depend cancels the dependents of a failed job (SLURMGraph) instead of
# leaving them pending forever
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,kill_invalid_depend
# memory is a consumable resource so that --mem requests schedule honestly; jobs that ask
# for none get DefMemPerCPU instead of the whole node
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
ReturnToService=2
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
InactiveLimit=0
KillWait=5
Waittime=0
# without slurmdbd there is no sacct: keep finished jobs 10 min for 'scontrol show job'
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 $node RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

node_state() { sinfo -h -n "$1" -o %t 2>/dev/null | head -n 1; }

node_usable() {
    case "$(node_state "$1")" in idle | mix | alloc | comp) return 0 ;; *) return 1 ;; esac
}

# submit a trivial batch job and poll it (sbatch --wait backs off to 10 s polls)
smoke_test() {
    local id i
    SMOKE_STATE="not submitted"
    id=$(cd /tmp && sbatch --parsable -o /dev/null -e /dev/null -J glmflow-smoke --wrap true) || return 1
    for i in $(seq 1 $((TIMEOUT * 10))); do
        SMOKE_STATE=$(scontrol show job -o "$id" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2)
        case "$SMOKE_STATE" in
        COMPLETED) return 0 ;;
        PENDING | CONFIGURING | RUNNING | COMPLETING | "") sleep 0.1 ;;
        *) return 1 ;;
        esac
    done
    SMOKE_STATE="timeout (last state $SMOKE_STATE)"
    return 1
}

ready_line() {
    echo "SLURM READY: host=$1 partition=$PARTITION cpus=$(sinfo -h -n "$1" -o %c)" \
        "slurmctld_pid=$(cat "$RUN/slurmctld.pid") slurmd_pid=$(cat "$RUN/slurmd.pid")" \
        "(took $(($(date +%s) - T0)) s)"
}

do_start() {
    local f host
    mkdir -p "$RUN" "$LOG" "$BASE/state" "$BASE/spool"
    host=$(hostname -s)
    if pid_alive "$RUN/slurmctld.pid" slurmctld && pid_alive "$RUN/slurmd.pid" slurmd &&
        node_usable "$host"; then
        ready_line "$host"
        return 0
    fi
    apt_install slurmctld slurmd slurm-client munge
    DIE_LOGS="$LOG/slurmctld.log $LOG/slurmd.log $LOG/slurmctld.out $LOG/slurmd.out"
    start_munge
    write_conf "$host"
    if ! pid_alive "$RUN/slurmctld.pid" slurmctld; then
        # the saved state is kept (stop removes it): a controller restarted after a stop or a
        # crash recovers its jobs and continues their ids; wiping it restarted ids at 1,
        # which collided with the jobs still known to slurmd and drained the node
        for f in slurmctld.log slurmd.log; do [ -e "$LOG/$f" ] && mv -f "$LOG/$f" "$LOG/$f.prev"; done
        slurmctld >>"$LOG/slurmctld.out" 2>&1 || die "slurmctld failed to start"
    else
        scontrol reconfigure >/dev/null 2>&1 || true
    fi
    wait_for "$TIMEOUT" pid_alive "$RUN/slurmctld.pid" slurmctld || die "slurmctld is not running"
    wait_up "$TIMEOUT" slurmctld scontrol ping || die "slurmctld died or does not answer 'scontrol ping'"
    if ! pid_alive "$RUN/slurmd.pid" slurmd; then
        slurmd >>"$LOG/slurmd.out" 2>&1 || die "slurmd failed to start"
    fi
    wait_for "$TIMEOUT" pid_alive "$RUN/slurmd.pid" slurmd || die "slurmd is not running"
    if ! wait_up "$TIMEOUT" slurmd node_usable "$host"; then
        scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
        wait_for 10 node_usable "$host" ||
            die "node $host not usable (state '$(node_state "$host")'): $(scontrol show node "$host" | grep -i reason)"
    fi
    smoke_test || die "smoke test job (sbatch --wrap true) failed: $SMOKE_STATE"
    ready_line "$host"
}

do_stop() {
    stop_recorded slurmd
    stop_recorded slurmctld
    stop_recorded munged
    if [ -e "$CONF" ] && grep -qF "$MARK" "$CONF"; then
        rm -f "$CONF"
        if [ -e "$CONF.pre-glmflow" ]; then mv "$CONF.pre-glmflow" "$CONF"; fi
    fi
    rm -rf "$BASE/state" "$BASE/spool" "$RUN"
    log "stopped (logs kept in $LOG)"
}

case "$ACTION" in
start) require_root && do_start ;;
stop) require_root && do_stop ;;
status)
    show_status munged slurmctld slurmd
    sinfo 2>&1 || true
    ;;
*) die "usage: $0 start|stop|status" ;;
esac
