#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, on loopback only, for tests
# of reproml's Slurm backend (Debian/Ubuntu, run as root).
#
#   scripts/slurm-local.sh start    # install if needed, start, wait for the node
#   scripts/slurm-local.sh status
#   scripts/slurm-local.sh stop     # cancel jobs, stop every daemon it started
#
# Then, in the shell that runs the tests:
#   export SLURM_CONF=/tmp/reproml-slurm/slurm.conf   (start prints it)
#
# Everything (munge key and socket, slurm.conf, state, spool, logs, pid files)
# lives under $REPROML_SLURM_DIR (default /tmp/reproml-slurm), so a real
# /etc/slurm or /etc/munge setup is neither read nor overwritten: the daemons
# take -f and clients read $SLURM_CONF; munged gets its own key and socket and
# slurm.conf points at it (AuthInfo=socket=...).
#
# Accounting: there is no slurmdbd, so AccountingStorageType is none and plain
# `sacct` fails ("Slurm accounting storage is disabled", exit 1). Job states
# come from `squeue -t all` / scontrol (finished jobs stay for MinJobAge=600 s;
# plain `squeue -j ID` hides them) and every finished job is appended to
# $DIR/log/jobcomp.log (jobcomp/filetxt), which `sacct -c` reads: raw job ids
# only (array tasks appear as their own ids, not ID_N) and an "Unknown type
# ArrayJobId" error on stderr per array task.
#
# Knobs (environment): REPROML_SLURM_DIR; SLURM_LOCAL_NODE (node name, default
# the short hostname; the controller is always the hostname);
# SLURM_LOCAL_CTLD_PORT (6817) and SLURM_LOCAL_SLURMD_PORT (6818), e.g. to run
# beside another cluster; SLURM_LOCAL_WAIT (seconds to wait for the node, 60).
set -euo pipefail

dir=${REPROML_SLURM_DIR:-/tmp/reproml-slurm}
conf=$dir/slurm.conf
munge_dir=$dir/munge
munge_key=$munge_dir/munge.key
munge_sock=$munge_dir/munge.socket.2
munge_pid=$munge_dir/munged.pid
ctld_pid=$dir/run/slurmctld.pid
slurmd_pid=$dir/run/slurmd.pid
ctld_port=${SLURM_LOCAL_CTLD_PORT:-6817}
slurmd_port=${SLURM_LOCAL_SLURMD_PORT:-6818}
wait_s=${SLURM_LOCAL_WAIT:-60}
# slurmctld only runs where gethostname() matches SlurmctldHost, so that one
# is fixed; the node's name is free (slurmd -N) and defaults to the same.
host=$(hostname -s 2>/dev/null || hostname)
node=${SLURM_LOCAL_NODE:-$host}
# Clients started by this script must talk to this cluster, not /etc/slurm.
export SLURM_CONF=$conf

step() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }

# pid from a pid file if that process is alive and is the program we expect
# (a stale file whose pid was reused must not count, nor be killed).
live_pid() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}

logs_tail() {
    local f
    for f in "$munge_dir/munged.log" "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; do
        [[ -f $f ]] && { echo "--- tail of $f"; tail -n 20 "$f"; }
    done >&2
    return 0
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-client)
    if [[ ${#missing[@]} -eq 0 ]]; then
        step "packages already installed ($(slurmctld -V 2>/dev/null || echo slurm))"
        return
    fi
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get; install them by hand"
    [[ $(id -u) -eq 0 ]] || die "installing ${missing[*]} needs root"
    step "installing ${missing[*]} with apt-get"
    # Package postinst scripts would start the system munge/slurm services
    # (on /etc/munge, /etc/slurm); forbid that for the install unless a
    # policy-rc.d is already in place (containers often ship one).
    local policy=/usr/sbin/policy-rc.d ours=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        # Stale package lists are the usual cause; refresh once and retry.
        step "apt-get install failed; running apt-get update and retrying"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" && rc=0 || rc=$?
    fi
    [[ $ours -eq 1 ]] && rm -f "$policy"
    [[ $rc -eq 0 ]] || die "apt-get install ${missing[*]} failed"
}

start_munge() {
    mkdir -p "$munge_dir"
    # munged refuses a key directory others can write; others need only
    # search (x) permission to reach the socket (jobs of non-root users).
    chmod 711 "$munge_dir"
    if [[ ! -s $munge_key ]]; then
        step "creating munge key $munge_key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$munge_key"
        else
            dd if=/dev/urandom of="$munge_key" bs=1024 count=1 status=none
        fi
    fi
    chmod 400 "$munge_key"
    if pid=$(live_pid "$munge_pid" munged); then
        step "munged already running (pid $pid)"
        return
    fi
    step "starting munged (socket $munge_sock)"
    rm -f "$munge_sock" "$munge_sock.lock"
    # Runs as root with our own key and socket (no munge user, no /etc/munge).
    munged --key-file="$munge_key" --socket="$munge_sock" --pid-file="$munge_pid" \
        --log-file="$munge_dir/munged.log" --seed-file="$munge_dir/munged.seed" \
        || { logs_tail; die "munged did not start"; }
    # A round trip proves key, socket and daemon agree.
    munge --socket="$munge_sock" -n | unmunge --socket="$munge_sock" >/dev/null \
        || { logs_tail; die "munge round trip failed"; }
}

write_conf() {
    local cpus mem_kb mem_mb new
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # A node whose RealMemory exceeds what slurmd measures is drained (INVAL);
    # keep 10% slack.
    mem_mb=$((mem_kb / 1024 * 9 / 10))
    mkdir -p "$dir/ctld" "$dir/spool" "$dir/log" "$dir/run"
    new=$(cat <<EOF
# Written by scripts/slurm-local.sh; rewritten on each start.
ClusterName=reproml-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_sock
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Debian ships no mail(1); the default MailProg only logs an error.
MailProg=/bin/true
# No cgroups: containers and CI machines rarely delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
# No slurmdbd: sacct cannot answer; finished jobs are logged to a file instead.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
# Consumable cores, so array tasks share the node one core each.
SchedulerType=sched/backfill
# Batch jobs start on a main-scheduler pass, at most every 2 s by default;
# allow 0.1 s. (A job is eligible only from the second after its submission,
# so submit-to-start is still ~1.5 s.)
SchedulerParameters=sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down (e.g. across a stop/start) comes back by itself.
ReturnToService=2
# Keep finished jobs visible to squeue/scontrol for 10 minutes.
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
    if [[ -f $conf && $(cat "$conf") == "$new" ]]; then
        step "slurm.conf unchanged ($conf)"
        return
    fi
    step "writing $conf (node $node, $cpus CPUs, RealMemory=${mem_mb}M)"
    printf '%s\n' "$new" >"$conf"
    chmod 644 "$conf"
    conf_changed=1
}

node_state() {
    sinfo -h -N -n "$node" -o '%T' 2>/dev/null | head -n1
}

stop_daemon() {
    local file=$1 name=$2 pid i
    if ! pid=$(live_pid "$file" "$name"); then
        rm -f "$file"
        return
    fi
    step "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        step "$name did not stop in 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# slurmstepd processes of this cluster's jobs (they outlive slurmd by design);
# recognised by an open file under our directory (the slurmd log).
our_stepds() {
    local pid
    for pid in $(pgrep -x slurmstepd || true); do
        ls -l "/proc/$pid/fd" 2>/dev/null | grep -q -- "-> $dir/" && echo "$pid"
    done
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "run as root (the daemons run as root here)"
    local t0=$SECONDS pid
    conf_changed=0
    install_packages
    # Names need not resolve: every address in slurm.conf is 127.0.0.1.
    getent hosts "$host" >/dev/null || step "note: $host does not resolve; fine, slurm.conf uses 127.0.0.1"
    start_munge
    write_conf
    if [[ $conf_changed -eq 1 ]] && { live_pid "$ctld_pid" slurmctld >/dev/null || live_pid "$slurmd_pid" slurmd >/dev/null; }; then
        # A new node or port definition needs fresh daemons, not reconfigure.
        step "slurm.conf changed while running; restarting slurmd and slurmctld"
        stop_daemon "$slurmd_pid" slurmd
        stop_daemon "$ctld_pid" slurmctld
    fi
    if pid=$(live_pid "$ctld_pid" slurmctld); then
        step "slurmctld already running (pid $pid)"
    else
        step "starting slurmctld"
        # Daemon mode: it forks and writes SlurmctldPidFile; -f: our conf only.
        slurmctld -f "$conf" || { logs_tail; die "slurmctld did not start (run '$0 stop' to clean up)"; }
    fi
    if pid=$(live_pid "$slurmd_pid" slurmd); then
        step "slurmd already running (pid $pid)"
    else
        step "starting slurmd (node $node)"
        # -N: the node name need not match what gethostname() says.
        slurmd -f "$conf" -N "$node" || { logs_tail; die "slurmd did not start (run '$0 stop' to clean up)"; }
    fi
    step "waiting up to ${wait_s}s for node $node to be idle"
    local state="" deadline=$((SECONDS + wait_s))
    while ((SECONDS < deadline)); do
        state=$(node_state || true)
        case $state in
            idle | mixed | allocated) break ;;
            *down* | *drain*)
                # After a restart the node may be marked down; bring it back.
                scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    case $state in
        idle | mixed | allocated) ;;
        *)
            sinfo -N -l >&2 || true
            logs_tail
            die "node $node is '${state:-unreachable}' after ${wait_s}s (run '$0 stop' to clean up)" ;;
    esac
    step "cluster up in $((SECONDS - t0))s: node $node is $state"
    echo "export SLURM_CONF=$conf"
}

cmd_stop() {
    if live_pid "$ctld_pid" slurmctld >/dev/null && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
        # Jobs left running would keep their slurmstepd processes alive.
        step "cancelling remaining jobs"
        scancel -p debug 2>/dev/null || true
        local i
        for i in $(seq 1 30); do
            [[ -z $(squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]] && break
            sleep 1
        done
    fi
    stop_daemon "$slurmd_pid" slurmd
    stop_daemon "$ctld_pid" slurmctld
    local pid
    for pid in $(our_stepds); do
        step "killing leftover slurmstepd (pid $pid)"
        kill -KILL "$pid" 2>/dev/null || true
    done
    stop_daemon "$munge_pid" munged
    step "stopped (state kept in $dir; rm -rf it for a clean slate)"
}

cmd_status() {
    local rc=0 pid name file
    for name in munged slurmctld slurmd; do
        case $name in
            munged) file=$munge_pid ;;
            slurmctld) file=$ctld_pid ;;
            slurmd) file=$slurmd_pid ;;
        esac
        if pid=$(live_pid "$file" "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
    done
    if [[ $rc -eq 0 ]]; then
        sinfo -N -o '%N %P %T %c %m' || rc=1
        echo "export SLURM_CONF=$conf"
    fi
    return $rc
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status   (state in ${dir})" >&2; exit 2 ;;
esac
