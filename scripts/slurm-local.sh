#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying `npm run sweep -- --slurm` and for the
# sweep tests: munge + slurmctld + slurmd from Debian's packages (bash scripts/setup.sh installs
# them), with every state, spool, log and pid file in one folder and /etc/slurm untouched.
#
#   bash scripts/slurm-local.sh start <dir>   # prints the SLURM_CONF line to export
#   bash scripts/slurm-local.sh stop <dir>    # stops the daemons it started (by their pid files)
#
# Needs root (munged and slurmd run as root here; no systemd). The ports are random per
# cluster so that a second one, or a real one, is not disturbed.
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then echo "usage: bash scripts/slurm-local.sh start|stop <dir>" >&2; exit 2; fi
dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"
conf="$dir/slurm.conf"

stop_pidfile() { # <file> <name>
  [ -f "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

case "$cmd" in
  start)
    for b in munged slurmctld slurmd sinfo sbatch; do
      command -v "$b" >/dev/null || { echo "slurm-local: $b not found: install slurmctld slurmd slurm-client munge (bash scripts/setup.sh)" >&2; exit 1; }
    done
    [ "$(id -u)" -eq 0 ] || { echo "slurm-local: needs root (munged and slurmd run as root here), running as uid $(id -u)" >&2; exit 1; }
    # munged refuses root-owned key, state and log folders.
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
    if ! munge -n >/dev/null 2>&1; then
      su -s /bin/sh munge -c munged
      echo started > "$dir/munged.started"
      for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    cpus="$(nproc)"
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
    port=$(( 20000 + RANDOM % 20000 ))
    cat > "$conf" <<EOF
ClusterName=local
SlurmctldHost=localhost
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
ReturnToService=2
SlurmctldPort=$port
SlurmdPort=$(( port + 1 ))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
MinJobAge=300
NodeName=localhost CPUs=$cpus RealMemory=$mem
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    SLURM_CONF="$conf" slurmctld
    SLURM_CONF="$conf" slurmd
    for _ in $(seq 100); do
      if SLURM_CONF="$conf" sinfo -h -o '%T' 2>/dev/null | grep -q idle; then
        echo "export SLURM_CONF=$conf"
        exit 0
      fi
      sleep 0.2
    done
    echo "slurm-local: the node did not come up idle within 20 s; see $dir/log/" >&2
    exit 1
    ;;
  stop)
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    if [ -f "$dir/munged.started" ]; then
      stop_pidfile /run/munge/munged.pid
      rm -f "$dir/munged.started"
    fi
    ;;
  *) echo "slurm-local: unknown command '$cmd' (start or stop)" >&2; exit 2 ;;
esac
