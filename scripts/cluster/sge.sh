#!/usr/bin/env bash
# A single-node Son of Grid Engine cluster (Debian gridengine 8.1.9) for glmflow's cluster
# tests. Run as root; no systemd needed.
#
#   sge.sh start    install (if needed), start sge_qmaster and sge_execd, create the queue
#                   all.q and the parallel environment smp, run one real job; idempotent
#   sge.sh stop     stop only the daemons this script started, undo its host-name tweaks
#   sge.sh status   what runs, and qstat -f
#
# Prints "SGE READY: ..." on success; exits non-zero with "[sge] ERROR: ..." and the tail of
# the daemon logs otherwise. Environment: GLMFLOW_CLUSTER_DIR (state, default /tmp/glmflow-
# cluster), SGE_QUEUE (all.q), SGE_SLOTS (nproc), CLUSTER_TIMEOUT (60 s),
# CLUSTER_KEEP_ON_FAILURE=1.
set -euo pipefail

ACTION=${1:-start}
TAG=sge
BASE=${GLMFLOW_CLUSTER_DIR:-/tmp/glmflow-cluster}/sge
RUN=$BASE/run # pid files of the daemons started here + markers of what to undo
LOG=$BASE/log
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
SPOOL=/var/spool/gridengine
UTIL=/usr/lib/gridengine
QUEUE=${SGE_QUEUE:-all.q}
PE=smp
SLOTS=${SGE_SLOTS:-$(nproc)}
# 80 % of the machine's memory, as in slurm.sh
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
TIMEOUT=${CLUSTER_TIMEOUT:-120}
KEEP_ON_FAILURE=${CLUSTER_KEEP_ON_FAILURE:-0}
MARK="# added-by-glmflow-sge.sh"
T0=$(date +%s)
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

install_packages() {
    local host
    host=$(hostname)
    # the packages' postinst initialises the cell for this master when preseeded
    debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $host
EOF
    apt_install gridengine-master gridengine-exec gridengine-client
}

# SGE refuses clients whose IP reverse-resolves to another name than the one they claim
# (/etc/hosts "127.0.0.1 localhost" + "127.0.0.1 vm": "client IP resolved to host name
# localhost"); a host_aliases entry makes both names one host.
setup_names() {
    local name ip rev
    name=$(hostname)
    if ! getent hosts "$name" >/dev/null; then
        log "hostname $name does not resolve: adding it to /etc/hosts (removed again by stop)"
        printf '127.0.0.1 %s %s\n' "$name" "$MARK" >>/etc/hosts
        touch "$RUN/etc_hosts_added"
    fi
    SGEHOST=$($UTIL/gethostname -name)
    ip=$(getent ahostsv4 "$SGEHOST" | awk 'NR==1 {print $1}')
    [ -n "$ip" ] || die "cannot resolve $SGEHOST to an IPv4 address"
    rev=$($UTIL/gethostbyaddr -name "$ip" 2>/dev/null || true)
    if [ -n "$rev" ] && [ "$rev" != "$SGEHOST" ]; then
        if ! grep -qxF "$SGEHOST $rev" "$COMMON/host_aliases" 2>/dev/null; then
            if [ -e "$COMMON/host_aliases" ] && [ ! -e "$RUN/host_aliases.orig" ]; then
                cp -p "$COMMON/host_aliases" "$RUN/host_aliases.orig"
            fi
            echo "$SGEHOST $rev" >>"$COMMON/host_aliases"
            touch "$RUN/host_aliases_added"
        fi
        log "host alias: $ip reverse-resolves to '$rev', aliased to '$SGEHOST'"
    fi
    chmod 644 "$COMMON/host_aliases" 2>/dev/null || true
    echo "$SGEHOST" >"$COMMON/act_qmaster"
    chown sgeadmin:sgeadmin "$COMMON/act_qmaster"
}

queue_conf() {
    cat <<EOF
qname                 $QUEUE
hostlist              $SGEHOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               $PE
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        mem_free=${MEM_MB}M
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
EOF
    local l
    for l in s_rt h_rt s_cpu h_cpu s_fsize h_fsize s_data h_data s_stack h_stack s_core h_core \
        s_rss h_rss s_vmem h_vmem; do
        printf '%-21s INFINITY\n' "$l"
    done
}

# "-pe smp N" reserves N slots of one host: what a multi-threaded node needs
pe_conf() {
    cat <<EOF
pe_name            $PE
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    /bin/true
stop_proc_args     /bin/true
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
}

# qconf_apply KIND NAME FILE: add (-A) or modify (-M) a queue (q) or parallel environment (p)
qconf_apply() {
    if qconf -s"$1" "$2" >/dev/null 2>&1; then
        qconf -M"$1" "$3" >>"$LOG/qconf.log" 2>&1 || die "qconf -M$1 $2 failed"
    else
        qconf -A"$1" "$3" >>"$LOG/qconf.log" 2>&1 || die "qconf -A$1 $2 failed"
    fi
}

configure_cluster() {
    mkdir -p "$BASE/conf"
    # allow root (uid/gid 0) jobs, flush accounting every second (qacct), and keep finished
    # jobs visible to "qstat -s z": nipype's SGE plugin sees completion only there and hangs
    # forever with finished_jobs=0. No login shells: a job's bash would read the submitting
    # user's profile, where pyenv's init runs `pyenv rehash`; a job killed inside it (the
    # kill tests do that) leaves its lock file behind, and every later rehash then waits 60 s
    # and fails, in each job and in pip (glmflow's jobs get their environment from qsub -V)
    qconf -sconf global | sed -E 's/^(min_uid|min_gid)( +)[0-9]+/\1\20/;
        s/flush_time=[0-9:]+/flush_time=00:00:01/; s/^(finished_jobs +)[0-9]+/\1200/;
        s/^(login_shells +).*/\1NONE/' \
        >"$BASE/conf/global"
    qconf -Mconf "$BASE/conf/global" >>"$LOG/qconf.log" 2>&1 || die "qconf -Mconf global failed"
    # schedule every second instead of every 15 s, and at once on submit/finish; no load
    # adjustments (they hold back jobs on a busy 2-core CI box)
    qconf -ssconf | sed -E 's/^(schedule_interval +).*/\10:0:1/; s/^(flush_submit_sec +).*/\11/;
        s/^(flush_finish_sec +).*/\11/; s/^(job_load_adjustments +).*/\1NONE/;
        s/^(load_adjustment_decay_time +).*/\10:0:0/' >"$BASE/conf/sched"
    qconf -Msconf "$BASE/conf/sched" >>"$LOG/qconf.log" 2>&1 || die "qconf -Msconf failed"
    # mem_free becomes a per-job consumable (capacity set in the queue) so that "-l mem_free"
    # reserves memory, like SLURM's --mem, and qsub -w e can check it on an empty cluster
    qconf -sc | sed -E 's/^(mem_free +mf +MEMORY +<= +YES +)[A-Z]+/\1JOB/' >"$BASE/conf/complex"
    qconf -Mc "$BASE/conf/complex" >>"$LOG/qconf.log" 2>&1 || die "qconf -Mc failed"
    qconf -ah "$SGEHOST" >/dev/null 2>&1 || true
    qconf -as "$SGEHOST" >/dev/null 2>&1 || die "qconf -as $SGEHOST failed"
    pe_conf >"$BASE/conf/$PE"
    qconf_apply p "$PE" "$BASE/conf/$PE"
    queue_conf >"$BASE/conf/$QUEUE"
    qconf_apply q "$QUEUE" "$BASE/conf/$QUEUE"
}

qmaster_up() { qconf -sh >/dev/null 2>&1; }

# the recorded qmaster runs and keeps answering: a qmaster stopped seconds ago still has
# its pid and may answer once while it shuts down, so look twice, a second apart
qmaster_settled() {
    local pid
    pid_alive "$RUN/sge_qmaster.pid" sge_qmaster && qmaster_up || return 1
    pid=$(cat "$RUN/sge_qmaster.pid")
    sleep 1
    pid_alive "$RUN/sge_qmaster.pid" sge_qmaster && [ "$(cat "$RUN/sge_qmaster.pid")" = "$pid" ] &&
        qmaster_up
}

# the queue instance exists and is in no error/unknown/disabled/alarm state
queue_ready() {
    qstat -f -q "$QUEUE@$SGEHOST" 2>/dev/null | awk -v q="$QUEUE@$SGEHOST" '
        $1 == q { found = 1; if (NF >= 6 && $6 ~ /[uEdaADcCsS]/) bad = 1 }
        END { exit !(found && !bad) }'
}

find_execd_pid() { # copy the pid file of a running execd into $RUN/sge_execd.pid
    local f
    for f in "$SPOOL"/execd/*/execd.pid; do
        pid_alive "$f" sge_execd && { cp "$f" "$RUN/sge_execd.pid"; return 0; }
    done
    return 1
}

start_qmaster() {
    local d
    if pid_alive "$SPOOL/qmaster/qmaster.pid" sge_qmaster; then
        die "an sge_qmaster not started by $0 runs (pid $(cat $SPOOL/qmaster/qmaster.pid)); stop it first"
    fi
    for d in "$SPOOL/qmaster" "$SPOOL/qmaster/job_scripts" "$SPOOL/spooldb" "$SPOOL/execd" /run/gridengine; do
        install -d -o sgeadmin -g sgeadmin -m 0755 "$d"
    done
    if [ ! -e "$SPOOL/spooldb/sge" ]; then # installed without the debconf cluster init
        log "initialising the cluster spool"
        runuser -u sgeadmin -- /usr/share/gridengine/scripts/init_cluster \
            "$SGE_ROOT" "$SGE_CELL" "$SPOOL/spooldb" sgeadmin >>"$LOG/init_cluster.log" 2>&1 ||
            die "init_cluster failed, see $LOG/init_cluster.log"
    fi
    rm -f "$SPOOL/qmaster/qmaster.pid"
    /usr/sbin/sge_qmaster >>"$LOG/sge_qmaster.out" 2>&1 || die "sge_qmaster failed to start"
    wait_for "$TIMEOUT" pid_alive "$SPOOL/qmaster/qmaster.pid" sge_qmaster || die "sge_qmaster is not running"
    cp "$SPOOL/qmaster/qmaster.pid" "$RUN/sge_qmaster.pid"
    wait_up "$TIMEOUT" sge_qmaster qmaster_up || die "sge_qmaster died or does not answer (qconf -sh)"
    log "sge_qmaster started (pid $(cat "$RUN/sge_qmaster.pid"))"
}

start_execd() {
    local f
    for f in "$SPOOL"/execd/*/execd.pid; do
        pid_alive "$f" sge_execd && die "an sge_execd not started by $0 runs (pid $(cat "$f"))"
    done
    /usr/sbin/sge_execd >>"$LOG/sge_execd.out" 2>&1 || die "sge_execd failed to start"
    wait_for "$TIMEOUT" find_execd_pid || die "sge_execd is not running"
    log "sge_execd started (pid $(cat "$RUN/sge_execd.pid"))"
}

ready_line() {
    echo "SGE READY: host=$SGEHOST queue=$QUEUE pe=$PE slots=$SLOTS" \
        "sge_qmaster_pid=$(cat "$RUN/sge_qmaster.pid") sge_execd_pid=$(cat "$RUN/sge_execd.pid")" \
        "(took $(($(date +%s) - T0)) s)"
}

do_start() {
    mkdir -p "$RUN" "$LOG"
    if qmaster_settled && pid_alive "$RUN/sge_execd.pid" sge_execd; then
        SGEHOST=$($UTIL/gethostname -name)
        if queue_ready; then
            ready_line
            return 0
        fi
    fi
    install_packages
    DIE_LOGS="$SPOOL/qmaster/messages $(echo "$SPOOL"/execd/*/messages) $LOG/sge_qmaster.out $LOG/sge_execd.out $LOG/qconf.log"
    setup_names
    if pid_alive "$RUN/sge_qmaster.pid" sge_qmaster && ! wait_for 5 qmaster_settled; then
        # a qmaster on its way out (stopped seconds ago): let it go, then start a new one
        log "sge_qmaster (pid $(cat "$RUN/sge_qmaster.pid")) does not answer: waiting for it to exit"
        wait_for 30 sh -c "! [ -r /proc/$(cat "$RUN/sge_qmaster.pid")/comm ]" ||
            die "sge_qmaster (pid $(cat "$RUN/sge_qmaster.pid")) neither answers nor exits"
    fi
    if ! pid_alive "$RUN/sge_qmaster.pid" sge_qmaster; then
        start_qmaster
    fi
    configure_cluster
    pid_alive "$RUN/sge_execd.pid" sge_execd || start_execd
    wait_up "$TIMEOUT" sge_execd queue_ready ||
        die "queue $QUEUE@$SGEHOST not ready: $(qstat -f -q "$QUEUE" 2>&1 | tail -n 2)"
    (cd /tmp && timeout "$TIMEOUT" qsub -sync y -b y -o /dev/null -e /dev/null -N glmflow_smoke true >/dev/null) ||
        die "smoke test job (qsub -sync y -b y true) failed"
    ready_line
}

do_stop() {
    stop_recorded sge_execd
    stop_recorded sge_qmaster
    if [ -e "$RUN/host_aliases_added" ]; then
        if [ -e "$RUN/host_aliases.orig" ]; then
            cp -p "$RUN/host_aliases.orig" "$COMMON/host_aliases"
        else
            rm -f "$COMMON/host_aliases"
        fi
    fi
    if [ -e "$RUN/etc_hosts_added" ]; then # rewrite in place: /etc/hosts may be a bind mount
        grep -vF "$MARK" /etc/hosts >"$RUN/hosts.tmp" || true
        cat "$RUN/hosts.tmp" >/etc/hosts
    fi
    rm -rf "$RUN" "$BASE/conf"
    log "stopped (logs kept in $LOG, daemon logs in $SPOOL/*/messages)"
}

case "$ACTION" in
start) require_root && do_start ;;
stop) require_root && do_stop ;;
status)
    show_status sge_qmaster sge_execd
    qstat -f 2>&1 || true
    ;;
*) die "usage: $0 start|stop|status" ;;
esac
