#!/usr/bin/env bash
# A one-node SLURM cluster on this machine: what CI (.ci/run) and the launcher's tests
# (tests/cluster/) run `dsd-suite launch --launcher slurm` against. Needs root and Debian's
# slurm-wlm and munge packages (apt-get install slurm-wlm munge).
#
#   tests/cluster/slurm.sh start    write the configuration, start munged (when none answers),
#                                   slurmctld and slurmd, wait until the node takes jobs
#   tests/cluster/slurm.sh stop     stop the daemons this script started (by their pid files)
#   tests/cluster/slurm.sh conf     print the configuration file's path (export it as SLURM_CONF)
#
# Everything lives under $DSD_SLURM_DIR (default: $TMPDIR/dsd-slurm): the configuration, state,
# spool, logs and pid files; nothing is written under /etc but munge's key when there is none.
# The plugins need no cgroup set-up: processes are tracked through /proc (proctrack/linuxproc)
# and not bound to cores (task/none); cores and memory are still counted (cons_tres,
# CR_Core_Memory), so two 1-CPU jobs run side by side on a 2-core machine and a third waits.
set -euo pipefail

DIR=${DSD_SLURM_DIR:-${TMPDIR:-/tmp}/dsd-slurm}
CONF=$DIR/slurm.conf
NODE=$(hostname -s)

say() { echo "slurm.sh: $*" >&2; }

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool"
  local memory
  memory=$(awk '/^MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat >"$CONF" <<CONF
# Written by tests/cluster/slurm.sh: a one-node cluster for the suite's tests.
ClusterName=dsd-test
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=${DSD_SLURMCTLD_PORT:-6817}
SlurmdPort=${DSD_SLURMD_PORT:-6818}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to scontrol and squeue for ten minutes (the tests read them).
MinJobAge=600
KillWait=30
NodeName=$NODE CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_answers; then
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  munged --force --pid-file="$DIR/munged.pid"
  for _ in $(seq 50); do munge_answers && return 0; sleep 0.1; done
  say "munged started but does not answer"
  return 1
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  if [ "$(id -u)" != 0 ]; then
    say "starting the daemons needs root"
    return 1
  fi
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { say "$tool is missing: apt-get install slurm-wlm munge"; return 1; }
  done
  write_conf
  start_munge
  export SLURM_CONF=$CONF
  alive "$DIR/slurmctld.pid" || slurmctld -c -f "$CONF"
  alive "$DIR/slurmd.pid" || slurmd -f "$CONF"
  for _ in $(seq 300); do
    if sinfo --noheader --nodes="$NODE" --format=%t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      say "cluster up: export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.2
  done
  say "the node did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log"
  return 1
}

stop_one() {
  local pidfile=$1
  if alive "$pidfile"; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

stop() {
  stop_one "$DIR/slurmd.pid"
  stop_one "$DIR/slurmctld.pid"
  stop_one "$DIR/munged.pid"  # only when this script started it
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  conf) echo "$CONF" ;;
  *) echo "usage: $0 start|stop|conf" >&2; exit 2 ;;
esac
