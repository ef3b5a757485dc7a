#!/usr/bin/env bash
# Undo scripts/sshfs-up.sh: unmount /mnt/podline-shared, then stop the sshd instance serving it (the one
# whose pid is in /run/podline-sshd.pid and which runs with /etc/podline-sshd/sshd_config), and the
# sftp sessions it started. Keys, config and the data in /srv/podline-shared stay, so sshfs-up.sh brings
# everything back. The system sshd (if any) is not touched. Safe to run when nothing is up.
set -u
export PATH="$PATH:/usr/sbin:/sbin"

MOUNT_DIR=/mnt/podline-shared
CONF=/etc/podline-sshd/sshd_config
PID_FILE=/run/podline-sshd.pid

log() { echo "sshfs-down: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

rc=0
if findmnt -n --mountpoint "$MOUNT_DIR" >/dev/null 2>&1; then
    log "unmounting $MOUNT_DIR"
    if command -v fusermount3 >/dev/null; then FUSERMOUNT=fusermount3; else FUSERMOUNT=fusermount; fi
    if ! "$FUSERMOUNT" -u "$MOUNT_DIR" 2>/dev/null && ! umount "$MOUNT_DIR" 2>/dev/null; then
        log "$MOUNT_DIR is busy (a process still uses it); detaching it lazily"
        "$FUSERMOUNT" -uz "$MOUNT_DIR" 2>/dev/null || umount -l "$MOUNT_DIR" 2>/dev/null \
            || { log "cannot unmount $MOUNT_DIR"; rc=1; }
    fi
else
    log "$MOUNT_DIR is not mounted"
fi

pid=$(cat "$PID_FILE" 2>/dev/null || true)
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] \
        && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-f $CONF"; then
    # Its session processes (sshd: root@notty and their sftp-server) first: the listener's SIGTERM
    # does not end them, and a lazily detached mount would otherwise keep one alive.
    sessions=$(pgrep -P "$pid" -x sshd || true)
    log "stopping sshd (pid $pid${sessions:+, sessions $(echo $sessions)})"
    for p in $sessions "$pid"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "sshd (pid $pid) ignored SIGTERM for 5 s; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
else
    log "sshd for $CONF is not running"
fi
exit "$rc"
