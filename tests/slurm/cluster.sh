#!/bin/sh
# cluster.sh — a real one-node Slurm cluster (Debian's slurmctld + slurmd) in a temp
# directory, for tests: `cluster.sh start DIR` prints the SLURM_CONF to export and exits 0,
# or exits 77 saying why Slurm cannot run here; `cluster.sh stop DIR` cancels every job and
# stops the daemons. Two fake GPUs come from gres on /dev/null symlinks. Test use only:
# authentication is off (auth/none), and everything listens on 127.0.0.1.
set -u
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: cluster.sh start|stop DIR" >&2; exit 2; }

stop() {
	[ -f "$dir/slurm.conf" ] || return 0
	SLURM_CONF="$dir/slurm.conf" scancel --user="$(id -un)" >/dev/null 2>&1
	for p in slurmd slurmctld; do
		[ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null
	done
	# PID 1 may reap late: judge by process state, not kill -0
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		alive=0
		for p in slurmd slurmctld; do
			pid=$(cat "$dir/$p.pid" 2>/dev/null) || continue
			state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
			[ -n "$state" ] && [ "$state" != Z ] && alive=1
		done
		[ $alive = 0 ] && break
		sleep 0.2
	done
	return 0
}

if [ "$cmd" = stop ]; then stop; exit 0; fi

for p in slurmctld slurmd sbatch squeue scontrol scancel; do
	command -v "$p" >/dev/null 2>&1 || { echo "skipped: $p is not installed (scripts/install-deps.sh installs Slurm)"; exit 77; }
done
# a random port pair in the dynamic range, so parallel test runs don't collide
port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ))
for p in $port $((port + 1)); do
	if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "skipped: port $p is taken (a leftover cluster?)"; exit 77; fi
done
mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/dev"
ln -sf /dev/null "$dir/dev/nvidia0"; ln -sf /dev/null "$dir/dev/nvidia1"
host=$(hostname -s); user=$(id -un)
cpus=8; mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=kilntest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
ReturnToService=2
MinJobAge=3600
MailProg=/bin/true
SlurmdParameters=config_overrides
KillWait=2
GresTypes=gpu
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$dir/gres.conf" <<CONF
AutoDetect=off
NodeName=$host Name=gpu File=$dir/dev/nvidia[0-1]
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -i >"$dir/log/slurmctld.out" 2>&1 || { echo "skipped: slurmctld did not start: $(tail -3 "$dir/log/slurmctld.log" 2>/dev/null)"; stop; exit 77; }
slurmd >"$dir/log/slurmd.out" 2>&1 || { echo "skipped: slurmd did not start: $(tail -3 "$dir/log/slurmd.log" 2>/dev/null)"; stop; exit 77; }
for _ in $(seq 1 50); do
	if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then echo "$dir/slurm.conf"; exit 0; fi
	sleep 0.2
done
echo "skipped: the node did not come up: $(sinfo -h 2>&1 | head -2)"
stop
exit 77
