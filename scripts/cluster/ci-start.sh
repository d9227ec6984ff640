#!/usr/bin/env bash
# Start the single-node SLURM and SGE clusters that tests/test_cluster.py runs on (CI entry).
# Needs root or password-less sudo; installs the Debian packages on a fresh machine.
# Prints both READY lines; exits non-zero (with the failing scheduler's log tail, printed by
# slurm.sh / sge.sh) when either cluster does not run a job.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n -E)
    else
        echo "[ci-start] ERROR: starting SLURM and SGE needs root or password-less sudo" >&2
        exit 1
    fi
fi

missing=0
for pkg in slurmctld slurmd slurm-client munge gridengine-master gridengine-exec gridengine-client; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing=1
done
if [ $missing -eq 1 ]; then
    echo "[ci-start] apt-get update"
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -q >/dev/null ||
        { echo "[ci-start] ERROR: apt-get update failed" >&2; exit 1; }
fi

status=0
"${SUDO[@]}" env CLUSTER_APT_UPDATED=1 "$HERE/slurm.sh" start || status=1
"${SUDO[@]}" env CLUSTER_APT_UPDATED=1 "$HERE/sge.sh" start || status=1
if [ $status -ne 0 ]; then
    echo "[ci-start] ERROR: a cluster did not start (see its log tail above)" >&2
fi
exit $status
