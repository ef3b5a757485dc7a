#!/usr/bin/env bash
# Add test hosts to the Slurm test cluster of slurm-up.sh, as root, idempotently: PODLINE_TEST_NODES
# (default 2) more nodes, pl-n1, pl-n2, …, in partition `multi`, and one more, the spare (pl-n3 by default),
# alone in partition `spare`: no test drains, kills or fills it, so a test that holds a core for a long time
# (Slurm's time limit is whole minutes) runs there beside the others instead of before or after them.
#
# Each node is a slurmd in namespaces of its own, so that it is another host as far as a job can tell:
#   network  its own address on a bridge (plbr0, 10.231.0.1 on this machine, 10.231.0.1N for node N);
#            slurmctld reaches it there, and it reaches slurmctld at 10.231.0.1
#   UTS      its own hostname, which is its Slurm NodeName
#   mount    its own /dev/shm (a fresh tmpfs: RAM workspaces do not outlive the node) and its own node-local
#            directory at /var/lib/podline-node-local (bound from /var/lib/podline-nodes/<node>/local), while
#            the rest of the filesystem (/tmp, the sshfs mount) is the shared storage every node sees; the
#            namespace is a slave of this machine's, so the sshfs mount reaches a node that started before it
#            (sshfs-up.sh mounts it on a shared bind mount); a node that does not see it is restarted
# Killing every process of a node's network namespace (`ip netns pids pl-n1 | xargs kill -9`) is a node
# failure: its slurmd and its jobs are gone at once, and its RAM with them.
#
# Each node's slurmd reads a copy of slurm.conf that differs only in how it reaches slurmctld and where it
# keeps its pid, spool and log (slurmctld logs that the copies differ; that is expected here). The nodes
# are described to slurmctld in /etc/slurm/test-nodes.conf, which slurm-up.sh includes when it exists.
# Exits non-zero with a reason if a node cannot start; the tests that need these nodes then skip.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

NODES=${PODLINE_TEST_NODES:-2}
BRIDGE=plbr0
NET=10.231.0
CONF_DIR=/etc/slurm
NODES_CONF=$CONF_DIR/test-nodes.conf
NODE_ROOT=/var/lib/podline-nodes
NODE_LOCAL=/var/lib/podline-node-local
SHARED_MOUNT=/mnt/podline-shared  # sshfs-up.sh's mount: made a shared mount there, so nodes see it come and go
LOG_DIR=/var/log/slurm
WAIT_SECONDS=${SLURM_UP_WAIT:-60}
HERE="$(dirname "$(readlink -f "$0")")"

SCRIPT=slurm-nodes-up
. "$HERE/common.sh"  # log, die

[ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces and starts slurmd)"
if ! command -v ip >/dev/null; then
    log "installing iproute2 from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 iproute2 >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; } \
        || die "the ip command (iproute2) is missing and could not be installed"
fi
command -v unshare >/dev/null && command -v nsenter >/dev/null || die "unshare/nsenter (util-linux) are missing"
[ "$NODES" -ge 1 ] && [ "$NODES" -le 8 ] || die "PODLINE_TEST_NODES must be 1 to 8"

SPARE=$((NODES + 1))  # the spare node's number
names=""
for n in $(seq "$SPARE"); do names="$names pl-n$n"; done

# --- the network: a bridge on this machine, a veth pair per node ------------------------------------
# (No `ip … | grep -q` here: ip writes in pieces, grep -q exits at its match, and under pipefail the
# SIGPIPE that ip then gets fails the test at random.)
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (no network namespaces here?)"
fi
ip addr replace "$NET.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
for n in $(seq "$SPARE"); do
    node=pl-n$n
    [ -e "/run/netns/$node" ] || ip netns add "$node" || die "cannot create network namespace $node"
    if ! ip -n "$node" link show eth0 >/dev/null 2>&1; then  # a host end left without its peer goes first
        ip link del "$node" >/dev/null 2>&1 || true
        ip link add "$node" type veth peer name eth0 netns "$node" || die "cannot create the veth pair of $node"
    fi
    ip link set "$node" master "$BRIDGE" up
    ip -n "$node" addr replace "$NET.1$n/24" dev eth0
    ip -n "$node" link set eth0 up
    ip -n "$node" link set lo up
done

# --- slurmctld's view: the nodes and their partition -------------------------------------------------
cpus=1
mem_mb=3000
conf=$(cat <<CONF
# Written by podline scripts/slurm-nodes-up.sh: test hosts in network namespaces (see the script).
# Their slurmds read copies of slurm.conf that differ on purpose (how they reach slurmctld, pid/spool/log).
DebugFlags=NO_CONF_HASH
NodeName=pl-n[1-$SPARE] NodeHostname=pl-n[1-$SPARE] NodeAddr=$NET.1[1-$SPARE] CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=multi Nodes=pl-n[1-$NODES] Default=NO MaxTime=INFINITE State=UP OverSubscribe=NO DefMemPerCPU=1000
PartitionName=spare Nodes=pl-n$SPARE Default=NO MaxTime=INFINITE State=UP OverSubscribe=NO DefMemPerCPU=1000
CONF
)
if [ ! -f "$NODES_CONF" ] || [ "$(cat "$NODES_CONF")" != "$conf" ]; then
    log "writing $NODES_CONF ($NODES nodes in multi, pl-n$SPARE in spare)"
    printf '%s\n' "$conf" > "$NODES_CONF"
fi
bash "$HERE/slurm-up.sh"  # includes the nodes (restarting the daemons if slurm.conf changed)

# --- each node's slurmd, in its namespaces ---------------------------------------------------------------
install -d -m 0755 "$NODE_LOCAL"
node_pid() { # the slurmd of a node: a process named slurmd in the node's network namespace
    local pid
    for pid in $(ip netns pids "$1" 2>/dev/null); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmd ] && { echo "$pid"; return 0; }
    done
    return 1
}
sees_shared_mount() { # the node with slurmd $1 sees the shared storage's mount as this machine does (or none is)
    local here
    here=$(timeout 10 stat -c %d "$SHARED_MOUNT" 2>/dev/null) || return 0
    [ "$(timeout 10 nsenter -t "$1" -m stat -c %d "$SHARED_MOUNT" 2>/dev/null)" = "$here" ]
}
kill_node() { # every process of the node, until none is left (a forking one may add some meanwhile)
    local pids
    for _ in $(seq 50); do
        pids=$(ip netns pids "$1" 2>/dev/null || true)
        [ -n "$pids" ] || return 0
        kill -9 $pids 2>/dev/null || true
        sleep 0.1
    done
    die "processes of $1 survive SIGKILL: $pids"
}
started=""
for n in $(seq "$SPARE"); do
    node=pl-n$n
    node_conf=$NODE_ROOT/$node/slurm.conf
    install -d -m 0755 "$NODE_ROOT/$node/spool" "$NODE_ROOT/$node/local"
    sed -e "s/^SlurmctldHost=\(.*\)(127\.0\.0\.1)$/SlurmctldHost=\1($NET.1)/" \
        -e "s|^SlurmdPidFile=.*|SlurmdPidFile=$NODE_ROOT/$node/slurmd.pid|" \
        -e "s|^SlurmdSpoolDir=.*|SlurmdSpoolDir=$NODE_ROOT/$node/spool|" \
        -e "s|^SlurmdLogFile=.*|SlurmdLogFile=$LOG_DIR/slurmd-$node.log|" \
        "$CONF_DIR/slurm.conf" > "$node_conf.tmp"
    if [ -f "$node_conf" ] && ! cmp -s "$node_conf" "$node_conf.tmp" && node_pid "$node" >/dev/null; then
        log "slurm.conf changed: restarting $node"
        kill_node "$node"
    fi
    mv "$node_conf.tmp" "$node_conf"
    if pid=$(node_pid "$node") && ! sees_shared_mount "$pid"; then
        log "$node does not see $SHARED_MOUNT as this machine does (started before it was mounted): restarting it"
        kill_node "$node"
    fi
    node_pid "$node" >/dev/null && continue
    log "starting $node (slurmd at $NET.1$n)"
    nsenter --net="/run/netns/$node" unshare --uts --mount --propagation slave sh -c '
        set -e
        hostname "$1"
        mount -t tmpfs -o mode=1777,size=2g tmpfs /dev/shm
        mount --bind "$2" "$3"
        exec /usr/sbin/slurmd -f "$4"
    ' sh "$node" "$NODE_ROOT/$node/local" "$NODE_LOCAL" "$node_conf" \
        || die "slurmd of $node did not start" "$LOG_DIR/slurmd-$node.log"
    started="$started $node"
done

# --- wait until every node is idle (resuming one left down by an earlier failure) ----------------------
for i in $(seq $(( WAIT_SECONDS * 2 ))); do
    ready=1
    for node in $names; do
        state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1 || true)
        case "$state" in
            idle|mixed|allocated|completing) ;;
            *) ready=0
               if [ $(( i % 10 )) = 4 ] && [[ "$state" == down* || "$state" == drain* ]]; then
                   scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
               fi ;;
        esac
        node_pid "$node" >/dev/null || die "slurmd of $node exited" "$LOG_DIR/slurmd-$node.log"
    done
    if [ "$ready" = 1 ]; then
        log "nodes$names are up in partitions multi and spare${started:+ (started:$started)}"
        exit 0
    fi
    sleep 0.5
done
die "nodes$names did not all become idle within ${WAIT_SECONDS} s: $(sinfo -h -p multi,spare -o '%n %T' | tr '\n' ' ')" \
    "$LOG_DIR/slurmctld.log"
