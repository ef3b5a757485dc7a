#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this (Debian 12) machine, as root, idempotently.
#
# Installs slurm-wlm and munge from Debian if missing, creates a munge key if missing, writes
# /etc/slurm/slurm.conf sized from nproc and free -m (select/cons_tres + CR_Core_Memory,
# proctrack/linuxproc, task/none, munge auth, no cgroups: none are usable in this sandbox), starts
# munged, slurmctld and slurmd as plain background daemons (there is no systemd; logs in
# /var/log/slurm/), and waits (bounded) until the node is idle, resuming it if it is down or drained.
#
# Re-running with everything up changes nothing and takes well under a second; the Slurm daemons are
# restarted only when slurm.conf's content changed. Job state survives restarts and slurm-down.sh.
# Exits non-zero with a reason (and the log's last lines) if something cannot start.
# Used by .ci/run before the tests; see scripts/README-slurm.md for the choices and what was verified.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
WAIT_SECONDS=${SLURM_UP_WAIT:-60}

SCRIPT=slurm-up
. "$(dirname "$(readlink -f "$0")")/common.sh"  # log, die, installed
. "$(dirname "$(readlink -f "$0")")/slurm-daemons.sh"  # daemon_pid, stop_daemon

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages, writes /etc/slurm and starts daemons)"

# --- packages ---------------------------------------------------------------------------------
if ! installed slurm-wlm || ! installed munge || ! command -v slurmctld >/dev/null \
        || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq -o Dpkg::Use-Pty=0 slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
fi
getent passwd slurm >/dev/null || die "user 'slurm' is missing (the slurm-wlm packages create it)"
getent passwd munge >/dev/null || die "user 'munge' is missing (the munge package creates it)"

# --- munge ------------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
key_created=0
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    key_created=1
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

# --- slurm.conf -------------------------------------------------------------------------------
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld "$LOG_DIR"
install -d -m 0755 /var/spool/slurmd "$CONF_DIR"

host=$(hostname -s)
[ -n "$host" ] || die "hostname -s is empty"
cpus=$(nproc)
mem_mb=$(free -m | awk '/^Mem:/ {print $2}')
[ -n "$mem_mb" ] && [ "$mem_mb" -gt 0 ] || die "cannot read the memory size from free -m"
reserve=$(( mem_mb / 10 > 512 ? mem_mb / 10 : 512 ))
real_mb=$(( mem_mb - reserve ))
[ "$real_mb" -ge 256 ] || real_mb=$(( mem_mb / 2 ))
# Give slurmd's own view of the topology when it agrees with nproc (else slurmd logs "Node
# configuration differs from hardware"): CR_Core allocates whole cores.
topology=""
hw=$(slurmd -C 2>/dev/null | head -n 1 || true)
sockets=$(grep -oE 'SocketsPerBoard=[0-9]+' <<<"$hw" | cut -d= -f2 || true)
cores=$(grep -oE 'CoresPerSocket=[0-9]+' <<<"$hw" | cut -d= -f2 || true)
threads=$(grep -oE 'ThreadsPerCore=[0-9]+' <<<"$hw" | cut -d= -f2 || true)
if [ -n "$sockets" ] && [ -n "$cores" ] && [ -n "$threads" ] \
        && [ $(( sockets * cores * threads )) = "$cpus" ]; then
    topology=" Sockets=${sockets} CoresPerSocket=${cores} ThreadsPerCore=${threads}"
fi
# Without a default, a job that asks for no memory is given ALL of the node's memory under
# CR_Core_Memory, and jobs then run one at a time: give each CPU an equal share by default.
def_mem_per_cpu=$(( real_mb / cpus ))

conf=$(cat <<CONF
# Written by podline scripts/slurm-up.sh: a single-node test cluster (see scripts/README-slurm.md).
# Edits are overwritten when the script runs again; changing this content restarts the daemons.
ClusterName=podline
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: process tracking by /proc, no task containment or binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# No mail on this box (silences "Configured MailProg is invalid").
MailProg=/bin/true
# No slurmdbd: plain sacct is disabled; 'sacct -c' reads finished jobs from the jobcomp file.
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG_DIR}/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${def_mem_per_cpu}
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000,bf_interval=5,bf_continue
MaxArraySize=10001
MaxJobCount=100000
MinJobAge=300
KillWait=5
InactiveLimit=0
ReturnToService=2
SlurmctldTimeout=120
SlurmdTimeout=300
# Nodes with fewer resources than configured are not drained (a test box, nproc may hide topology).
SlurmdParameters=config_overrides
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus}${topology} RealMemory=${real_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
# The test hosts of slurm-nodes-up.sh, once it has described them (their digest here: a change restarts).
[ ! -f "$CONF_DIR/test-nodes.conf" ] || conf="$conf
# test-nodes.conf sha256 $(sha256sum < "$CONF_DIR/test-nodes.conf" | cut -c1-64)
Include $CONF_DIR/test-nodes.conf"
conf_changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$conf" ]; then
    log "writing $CONF (CPUs=$cpus RealMemory=${real_mb}M DefMemPerCPU=${def_mem_per_cpu}M)"
    printf '%s\n' "$conf" > "$CONF.tmp"
    chmod 0644 "$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    conf_changed=1
fi
# Slurm 22.05 has no "disabled" cgroup plugin (CgroupPlugin=disabled makes slurmd fail with "cannot
# find cgroup plugin for disabled"); with no cgroup.conf and linuxproc/task/none it touches no cgroup.
if [ -e "$CONF_DIR/cgroup.conf" ]; then
    log "removing $CONF_DIR/cgroup.conf (no cgroups are used)"
    rm -f "$CONF_DIR/cgroup.conf"
    conf_changed=1
fi

# --- daemons ----------------------------------------------------------------------------------
if [ "$key_created" = 1 ]; then
    stop_daemon slurmd "$SLURMD_PID" || true
    stop_daemon slurmctld "$CTLD_PID" || true
    stop_daemon munged "$MUNGE_PID" || true
elif [ "$conf_changed" = 1 ]; then
    stop_daemon slurmd "$SLURMD_PID" || true
    stop_daemon slurmctld "$CTLD_PID" || true
fi

if ! daemon_pid munged "$MUNGE_PID" >/dev/null; then
    log "starting munged"
    # --force: start even over a stale socket/lock left by a killed munged.
    runuser -u munge -- /usr/sbin/munged --force >/dev/null 2>&1 \
        || die "munged did not start" /var/log/munge/munged.log
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 \
    || die "munge credentials do not work (munge -n | unmunge)" /var/log/munge/munged.log

if ! daemon_pid slurmctld "$CTLD_PID" >/dev/null; then
    log "starting slurmctld"
    # -i: ignore unreadable state files rather than refuse to start (state is kept, never cleared).
    /usr/sbin/slurmctld -i || die "slurmctld did not start" "$LOG_DIR/slurmctld.log"
fi
ctld_up=0
for _ in $(seq $(( WAIT_SECONDS * 2 ))); do
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then ctld_up=1; break; fi
    daemon_pid slurmctld "$CTLD_PID" >/dev/null || die "slurmctld exited" "$LOG_DIR/slurmctld.log"
    sleep 0.5
done
[ "$ctld_up" = 1 ] || die "slurmctld does not answer scontrol ping after ${WAIT_SECONDS} s" "$LOG_DIR/slurmctld.log"

slurmd_started_at=0
if ! daemon_pid slurmd "$SLURMD_PID" >/dev/null; then
    log "starting slurmd"
    slurmd_started_at=$(date +%s)
    /usr/sbin/slurmd || die "slurmd did not start" "$LOG_DIR/slurmd.log"
fi
# slurmctld restores the node's last state from its state files, so "idle" alone does not prove the
# new slurmd has registered: also wait for the node's SlurmdStartTime to be this start's.
registered() {
    [ "$slurmd_started_at" = 0 ] && return 0
    local t
    t=$(scontrol show node "$host" 2>/dev/null | grep -oE 'SlurmdStartTime=[0-9T:-]+' | cut -d= -f2)
    [ -n "$t" ] && [ "$(date -d "$t" +%s 2>/dev/null || echo 0)" -ge "$slurmd_started_at" ]
}

state=unknown
# A slurmd started just now gets ~2 s to register before its node is resumed (a node left down by
# an unclean stop usually comes back by itself: ReturnToService=2).
next_resume=1
[ "$slurmd_started_at" = 0 ] || next_resume=4
for i in $(seq $(( WAIT_SECONDS * 2 ))); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated|completing)
            if registered; then
                log "node $host is $state"
                exit 0
            fi ;;
        down*|drain*|fail*)
            if [ "$i" -ge "$next_resume" ]; then
                log "node $host is $state; resuming it"
                scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
                next_resume=$(( i + 10 ))
            fi ;;
        inval*)
            die "node $host is $state (its registration does not match slurm.conf)" "$LOG_DIR/slurmctld.log" ;;
    esac
    daemon_pid slurmd "$SLURMD_PID" >/dev/null || die "slurmd exited" "$LOG_DIR/slurmd.log"
    sleep 0.5
done
die "node $host did not become idle within ${WAIT_SECONDS} s (state: ${state:-unknown})" "$LOG_DIR/slurmd.log"
