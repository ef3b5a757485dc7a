#!/usr/bin/env bash
# Shared storage for tests and benchmarks (a stand-in for Lustre), as root on a fresh Debian 12 machine,
# idempotently: /srv/podline-shared served by a separate sshd (127.0.0.1:2222) and mounted with sshfs at
# /mnt/podline-shared. It is a real network filesystem: every open, stat and write is an SFTP round trip.
#
# Installs openssh-server and sshfs if missing (without starting the system sshd), writes its own
# sshd config, host key and client key pair under /etc/podline-sshd/ (the system sshd config and
# root's ~/.ssh are not touched), starts `/usr/sbin/sshd -f /etc/podline-sshd/sshd_config` directly
# (no systemd needed; pid in /run/podline-sshd.pid, log in /var/log/podline-sshd.log), mounts with
# sshfs (allow_other: every local user can use it) and proves it by writing and reading a file.
#
# Re-running with everything up and working changes nothing. A mount whose connection died is
# unmounted and mounted again; sshd is restarted only when its config changed or it is not running.
# Exits non-zero with `sshfs-up: ERROR: ...` if FUSE is unavailable or anything else fails.
# Undo with scripts/sshfs-down.sh; see scripts/README-sshfs.md.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

EXPORT_DIR=/srv/podline-shared
MOUNT_DIR=/mnt/podline-shared
CONF_DIR=/etc/podline-sshd
CONF=$CONF_DIR/sshd_config
HOST_KEY=$CONF_DIR/ssh_host_ed25519_key
CLIENT_KEY=$CONF_DIR/id_ed25519
AUTH_KEYS=$CONF_DIR/authorized_keys
PID_FILE=/run/podline-sshd.pid
LOG_FILE=/var/log/podline-sshd.log
PORT=2222

SCRIPT=sshfs-up
. "$(dirname "$(readlink -f "$0")")/common.sh"  # log, die, installed

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages, starts sshd and mounts)"

# --- FUSE first: without it nothing below can work -----------------------------------------------
fuse_ok() { [ -c /dev/fuse ] && (: <>/dev/fuse) 2>/dev/null; }
if ! fuse_ok; then
    modprobe fuse 2>/dev/null || true
    fuse_ok || die "FUSE is unavailable: /dev/fuse is missing or cannot be opened (in a container: run it with
  --device /dev/fuse --cap-add SYS_ADMIN); sshfs cannot mount"
fi

# --- packages -------------------------------------------------------------------------------------
if ! installed openssh-server || ! installed sshfs || ! command -v sshfs >/dev/null || [ ! -x /usr/sbin/sshd ]; then
    log "installing openssh-server and sshfs from Debian"
    apt_install_quietly openssh-server sshfs  # only our own sshd instance should run
fi
command -v sshfs >/dev/null || die "sshfs is not installed"
if command -v fusermount3 >/dev/null; then FUSERMOUNT=fusermount3; else FUSERMOUNT=fusermount; fi

# --- keys and sshd config -------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" /run/sshd
install -d -m 0755 "$EXPORT_DIR"
[ -s "$HOST_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C podline-sshd-host -f "$HOST_KEY"
[ -s "$CLIENT_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C podline-sshfs-client -f "$CLIENT_KEY"
chmod 0600 "$HOST_KEY" "$CLIENT_KEY"
# The key can only ever start the SFTP server (no shell, no forwarding), whatever the client asks.
SFTP_SERVER=/usr/lib/openssh/sftp-server
[ -x "$SFTP_SERVER" ] || SFTP_SERVER=/usr/lib/sftp-server
[ -x "$SFTP_SERVER" ] || die "the OpenSSH sftp-server program is missing (package openssh-sftp-server)"
auth="restrict,command=\"$SFTP_SERVER\" $(cat "$CLIENT_KEY.pub")"
if [ "$(cat "$AUTH_KEYS" 2>/dev/null)" != "$auth" ]; then
    printf '%s\n' "$auth" > "$AUTH_KEYS"
fi
chmod 0644 "$AUTH_KEYS"

conf=$(cat <<CONF
# Written by podline scripts/sshfs-up.sh: the sshd that serves $EXPORT_DIR to the sshfs mount at
# $MOUNT_DIR (see scripts/README-sshfs.md). Edits are overwritten; a changed content restarts it.
Port $PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $PID_FILE
AuthorizedKeysFile $AUTH_KEYS
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers root
StrictModes yes
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
PermitTunnel no
X11Forwarding no
PermitTTY no
PrintMotd no
UseDNS no
ClientAliveInterval 30
ClientAliveCountMax 4
MaxStartups 50:30:200
# A separate sftp-server process per connection (not internal-sftp), so its I/O can be read from
# /proc/<pid>/io: bench/p2_pipeline.py counts the bytes written to shared storage that way.
Subsystem sftp $SFTP_SERVER
CONF
)
conf_changed=0
if [ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]; then
    log "writing $CONF"
    printf '%s\n' "$conf" > "$CONF.tmp"
    chmod 0644 "$CONF.tmp"
    /usr/sbin/sshd -t -f "$CONF.tmp" || die "sshd rejects the generated config $CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    conf_changed=1
fi

# --- sshd -----------------------------------------------------------------------------------------
# The listener's pid: from the pid file when that process is an sshd started with our config.
sshd_pid() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] \
        && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-f $CONF" && echo "$pid"
}
if pid=$(sshd_pid) && [ "$conf_changed" = 1 ]; then
    log "restarting sshd (pid $pid): its config changed (open connections stay up)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
if ! sshd_pid >/dev/null; then
    log "starting sshd on 127.0.0.1:$PORT"
    /usr/sbin/sshd -f "$CONF" -E "$LOG_FILE" || die "sshd did not start" "$LOG_FILE"
    for _ in $(seq 50); do sshd_pid >/dev/null && break; sleep 0.1; done
    sshd_pid >/dev/null || die "sshd did not write $PID_FILE" "$LOG_FILE"
fi

# --- mount ----------------------------------------------------------------------------------------
works() { # write, read back and remove a file through the mount, within 10 s
    local probe="$MOUNT_DIR/.sshfs-up-probe.$$" token
    token="podline $(date +%s%N)"
    mountpoint -q "$MOUNT_DIR" 2>/dev/null || return 1
    timeout 10 bash -c 'printf "%s" "$2" > "$1" && [ "$(cat "$1")" = "$2" ] && rm -f "$1"' _ "$probe" "$token" \
        2>/dev/null
}
is_sshfs() { findmnt -n -o FSTYPE --mountpoint "$MOUNT_DIR" 2>/dev/null | grep -q 'sshfs'; }
# The test hosts of slurm-nodes-up.sh live in mount namespaces of their own, made slaves of this one. The sshfs
# mount sits on a bind mount of the mount point onto itself made `shared`, so that they see it, and see it
# mounted again after a dead connection, without a restart (with a plain mount they kept the dead one).
shared_base() {
    local bottom
    bottom=$(findmnt -n --list -o PROPAGATION,FSTYPE --mountpoint "$MOUNT_DIR" 2>/dev/null | head -n 1)
    [[ "$bottom" == shared* && "$bottom" != *sshfs* ]]
}

if works && is_sshfs && shared_base; then
    log "$MOUNT_DIR is mounted and works; nothing to do"
    echo "sshfs-up: $MOUNT_DIR is mounted"
    exit 0
fi
if is_sshfs; then
    log "$MOUNT_DIR is mounted but does not work (dead connection?) or has no shared base; unmounting it"
    "$FUSERMOUNT" -uz "$MOUNT_DIR" 2>/dev/null || umount -l "$MOUNT_DIR" 2>/dev/null \
        || die "cannot unmount the mount at $MOUNT_DIR"
fi
mkdir -p "$MOUNT_DIR" || die "cannot create $MOUNT_DIR"
if ! shared_base; then
    mount --bind "$MOUNT_DIR" "$MOUNT_DIR" && mount --make-shared "$MOUNT_DIR" \
        || die "cannot make $MOUNT_DIR a shared bind mount"
fi
[ -z "$(ls -A "$MOUNT_DIR" 2>/dev/null)" ] || log "warning: $MOUNT_DIR is not empty; mounting over its content"

log "mounting root@127.0.0.1:$EXPORT_DIR at $MOUNT_DIR"
# allow_other: other local users may use it too (root needs no user_allow_other in /etc/fuse.conf).
# No default_permissions: permissions are the server's (root), so any local user can read and write.
sshfs_log=$(mktemp)
if ! sshfs "root@127.0.0.1:$EXPORT_DIR" "$MOUNT_DIR" \
        -o "IdentityFile=$CLIENT_KEY,IdentitiesOnly=yes,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null" \
        -o "port=$PORT,reconnect,ServerAliveInterval=15,ServerAliveCountMax=3,BatchMode=yes,LogLevel=ERROR" \
        -o "allow_other,fsname=podline-sshfs" >"$sshfs_log" 2>&1; then
    cat "$sshfs_log" >&2
    rm -f "$sshfs_log"
    if grep -qi 'fuse' <<<"$(cat /proc/filesystems)"; then
        die "sshfs could not mount $MOUNT_DIR (see the messages above)" "$LOG_FILE"
    fi
    die "sshfs could not mount $MOUNT_DIR: FUSE is not available in this kernel" "$LOG_FILE"
fi
rm -f "$sshfs_log"
for _ in $(seq 50); do works && break; sleep 0.1; done
works || die "$MOUNT_DIR is mounted but writing and reading a file through it failed" "$LOG_FILE"
echo "sshfs-up: $MOUNT_DIR is mounted"
