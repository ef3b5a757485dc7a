#!/usr/bin/env bash
# Stop the single-node test cluster started by slurm-up.sh (daemons only; configuration stays).
set -u
pkill -x slurmd; pkill -x slurmctld; pkill -x munged
alive() { pgrep -x slurmctld || pgrep -x slurmd || pgrep -x munged; }
for _ in $(seq 50); do alive >/dev/null || exit 0; sleep 0.1; done
pkill -9 -x slurmd; pkill -9 -x slurmctld; pkill -9 -x munged
exit 0
