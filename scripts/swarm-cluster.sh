#!/usr/bin/env bash
# A real three-node Docker Swarm on one machine, for kiln's Swarm tests and for people to try.
#
#   bridge    kiln-swarm0, 10.77.0.1/24 on the host side
#   nodes     network namespaces kiln-n1..kiln-n3 at 10.77.0.11..13, one veth each (host end kiln-v1..3)
#   engines   one dockerd per namespace: socket /run/kiln-swarm/nK.sock (reachable from the host: only the
#             network is namespaced), data under /var/lib/kiln-swarm/nK; n1 is the manager, n2 and n3 workers
#   registry  Debian's docker-registry on 10.77.0.1:5001 (plain HTTP; every engine has it as insecure)
#
# Traffic goes only to 10.77.0.0/24 (the nodes have no default route) and to 127.0.0.1.
# Needs root, dockerd, docker, docker-registry, iproute2, iptables, nsenter/unshare (util-linux), runc.
#
# Usage: scripts/swarm-cluster.sh COMMAND
#   start            bring everything up (a no-op for what already runs); prints the env exports on stdout
#   stop             remove everything: daemons, their containers, namespaces, bridge, firewall rule, data
#   status           what runs; exit 0 only when the whole rig is up
#   env              the export lines (exit 1 when the rig is not up); use: eval "$(scripts/swarm-cluster.sh env)"
#   kill-node N      SIGKILL everything of node N: dockerd, containerd, shims, containers (a crashed machine;
#                    its address still answers, with RST; add cut-link N for a machine that vanished)
#   kill-engine N    SIGKILL only node N's dockerd: its containers keep serving (Swarm then calls the node
#                    Down although its tasks still answer)
#   cut-link N       take node N's link down: the node and its containers run on but nobody reaches them
#   heal-link N      bring node N's link back up
#   restart-node N   start node N's engine again after kill-node/kill-engine (it rejoins from its own state)
#                    and wait until it is Ready
set -euo pipefail

NODES=3
BR=kiln-swarm0
NET=10.77.0
HOST_IP=$NET.1
REG_ADDR=$HOST_IP:5001
RUN=/run/kiln-swarm
LIB=/var/lib/kiln-swarm
HEARTBEAT=1s

log() { echo "swarm-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

ns() { echo "kiln-n$1"; }
veth() { echo "kiln-v$1"; }
addr() { echo "$NET.$((10 + $1))"; }
sock() { echo "$RUN/n$1.sock"; }
dk() { local n=$1; shift; docker -H "unix://$(sock "$n")" "$@"; }

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "$what not ready after ${secs}s"; return 1
}

# A zombie counts as dead: this machine's init may reap the daemons' orphans only much later.
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
pid_dead() { ! pid_alive "$1"; }
pid_of() { if [ -f "$1" ]; then cat "$1" 2>/dev/null || true; fi; }
engine_pid() { pid_of "$RUN/n$1.pid"; }
engine_up() { dk "$1" version >/dev/null 2>&1; }

# --- network -----------------------------------------------------------------------------------------

fw_rule=(FORWARD -i "$BR" -o "$BR" -j ACCEPT)

start_network() {
  if ! ip link show "$BR" >/dev/null 2>&1; then
    log "bridge $BR ($HOST_IP/24)"
    ip link add "$BR" type bridge
  fi
  # (grep reads the whole output: with pipefail, grep -q closing the pipe early would fail the test)
  grep -q "inet $HOST_IP/24" <<<"$(ip addr show dev "$BR")" || ip addr add "$HOST_IP/24" dev "$BR"
  ip link set "$BR" up
  # The host's FORWARD policy is DROP and bridged frames pass iptables (bridge-nf-call-iptables=1), which
  # would silently drop node-to-node traffic: the swarm join only "times out ... continue in background".
  iptables -C "${fw_rule[@]}" 2>/dev/null || iptables -I "${fw_rule[@]}"
  local n
  for n in $(seq 1 $NODES); do
    local nsn v
    nsn=$(ns "$n"); v=$(veth "$n")
    [ -e "/var/run/netns/$nsn" ] || { log "namespace $nsn ($(addr "$n"))"; ip netns add "$nsn"; }
    if ! ip link show "$v" >/dev/null 2>&1; then
      ip netns exec "$nsn" ip link del eth0 2>/dev/null || true
      ip link add "$v" type veth peer name "${v}p"
      ip link set "${v}p" netns "$nsn"
      ip netns exec "$nsn" ip link set "${v}p" name eth0
    fi
    ip link set "$v" master "$BR"
    ip link set "$v" up
    ip netns exec "$nsn" ip link set lo up
    grep -q "inet $(addr "$n")/24" <<<"$(ip netns exec "$nsn" ip addr show dev eth0)" ||
      ip netns exec "$nsn" ip addr add "$(addr "$n")/24" dev eth0
    ip netns exec "$nsn" ip link set eth0 up
  done
}

stop_network() {
  local n
  for n in $(seq 1 $NODES); do
    ip link del "$(veth "$n")" 2>/dev/null || true
    if [ -e "/var/run/netns/$(ns "$n")" ]; then ip netns del "$(ns "$n")"; fi
  done
  while iptables -C "${fw_rule[@]}" 2>/dev/null; do iptables -D "${fw_rule[@]}"; done
  ip link del "$BR" 2>/dev/null || true
}

# --- registry ----------------------------------------------------------------------------------------

registry_up() { curl -fsS --max-time 2 "http://$REG_ADDR/v2/" >/dev/null 2>&1; }

start_registry() {
  registry_up && return 0
  command -v docker-registry >/dev/null || die "docker-registry is not installed (apt-get install docker-registry)"
  mkdir -p "$LIB/registry/data" "$RUN"
  cat >"$LIB/registry/config.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $LIB/registry/data }
  delete: { enabled: true }
http:
  addr: $REG_ADDR
YML
  log "registry on $REG_ADDR"
  setsid nohup docker-registry serve "$LIB/registry/config.yml" </dev/null >"$LIB/registry/registry.log" 2>&1 &
  echo $! >"$RUN/registry.pid"
  wait_for registry 30 registry_up || { tail -20 "$LIB/registry/registry.log" >&2; return 1; }
}

stop_registry() {
  local pid
  pid=$(pid_of "$RUN/registry.pid")
  if pid_alive "$pid"; then kill "$pid"; wait_for "registry exit" 10 pid_dead "$pid" || kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$RUN/registry.pid"
}

# --- engines -----------------------------------------------------------------------------------------

start_engine() {
  local n=$1
  engine_up "$n" && return 0
  local pid
  pid=$(engine_pid "$n")
  pid_alive "$pid" && { wait_for "dockerd n$n" 60 engine_up "$n" && return 0; die "dockerd n$n (pid $pid) runs but does not answer"; }
  # A killed dockerd leaves its pidfile, and a new one refuses to start while that pid (even a zombie) exists.
  # So does its containerd's: dockerd would wait for the dead one's socket instead of starting its own.
  rm -f "$RUN/n$n.pid"
  pid_alive "$(pid_of "$RUN/n$n/containerd/containerd.pid")" || rm -f "$RUN/n$n/containerd/containerd.pid"
  mkdir -p "$RUN/n$n" "$LIB/n$n/data"
  [ -f "$LIB/n$n/daemon.json" ] || echo '{}' >"$LIB/n$n/daemon.json" # not the host's /etc/docker/daemon.json
  log "dockerd n$n ($(addr "$n"), $(sock "$n"))"
  # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup v1 mounts, and dockerd dies with
  # "Devices cgroup isn't mounted". Its own UTS namespace gives each node its own hostname (a label for
  # people reading `docker node ls`; kiln must key on node ids, never hostnames).
  # shellcheck disable=SC2016 # $1 and $@ belong to the inner sh
  setsid nohup nsenter --net="/var/run/netns/$(ns "$n")" unshare --uts -- sh -c \
    'hostname "$1"; shift; exec "$@"' sh "kiln-n$n" \
    dockerd --host "unix://$(sock "$n")" --data-root "$LIB/n$n/data" --exec-root "$RUN/n$n" \
    --pidfile "$RUN/n$n.pid" --config-file "$LIB/n$n/daemon.json" --insecure-registry "$REG_ADDR" \
    </dev/null >>"$LIB/n$n/dockerd.log" 2>&1 &
}

wait_engine() {
  wait_for "dockerd n$1" 60 engine_up "$1" || { tail -20 "$LIB/n$1/dockerd.log" >&2; return 1; }
}

swarm_state() { dk "$1" info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
node_id() { dk "$1" info -f '{{.Swarm.NodeID}}' 2>/dev/null || true; }

form_swarm() {
  if [ "$(swarm_state 1)" != active ]; then
    log "swarm init on n1"
    dk 1 swarm init --advertise-addr "$(addr 1)" --listen-addr "$(addr 1):2377" \
      --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
  fi
  local token n known
  token=$(dk 1 swarm join-token -q worker)
  known=$(dk 1 node ls -q)
  for n in $(seq 2 $NODES); do
    local id
    id=$(node_id "$n")
    if [ "$(swarm_state "$n")" = active ] && [ -n "$id" ] && grep -qx "$id" <<<"$known"; then continue; fi
    # Joined to a swarm this manager does not know (left over from an earlier rig), or not joined at all.
    [ "$(swarm_state "$n")" = inactive ] || dk "$n" swarm leave --force >/dev/null 2>&1 || true
    log "n$n joins as a worker"
    dk "$n" swarm join --token "$token" --advertise-addr "$(addr "$n")" --listen-addr "$(addr "$n"):2377" \
      "$(addr 1):2377" >/dev/null
  done
}

ready_count() { dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true; }
all_ready() { [ "$(ready_count)" -ge "$NODES" ]; }
wait_ready() { wait_for "$NODES Ready nodes" 60 all_ready || { dk 1 node ls >&2 || true; return 1; }; }

# Node N as the manager sees it right now (a node killed a moment ago still reads Ready for ~3 s).
node_ready() {
  local id
  id=$(node_id "$1")
  [ -n "$id" ] && [ "$(dk 1 node inspect -f '{{.Status.State}}' "$id" 2>/dev/null)" = ready ] &&
    [ "$(swarm_state "$1")" = active ]
}

# Every process of node N: those in its namespace (dockerd, containerd, shims, host-network containers)
# and the containers' own processes (their runc state lives under the node's exec root).
kill_node_procs() { # N signal
  local n=$1 sig=$2 root id
  root="$RUN/n$n/runtime-runc/moby"
  if [ -d "$root" ]; then
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      runc --root "$root" kill --all "$id" "$sig" 2>/dev/null || true
    done
  fi
  if [ -e "/var/run/netns/$(ns "$n")" ]; then
    local pids
    pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
    # shellcheck disable=SC2086 # a list of pids
    [ -z "$pids" ] || kill "-$sig" $pids 2>/dev/null || true
  fi
}

stop_engine() {
  local n=$1 pid
  pid=$(engine_pid "$n")
  if pid_alive "$pid"; then
    kill "$pid" # dockerd stops its containers, then its containerd
    wait_for "dockerd n$n exit" 30 pid_dead "$pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  kill_node_procs "$n" KILL
  local root="$RUN/n$n/runtime-runc/moby" id
  if [ -d "$root" ]; then
    for id in $(runc --root "$root" list -q 2>/dev/null); do runc --root "$root" delete -f "$id" 2>/dev/null || true; done
  fi
  rm -f "$RUN/n$n.pid" "$(sock "$n")"
}

unmount_under() { # dir: lazily unmount what dockerd/containerd left mounted there (deepest first)
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r || true); do umount -l "$m" 2>/dev/null || true; done
}

# --- commands ----------------------------------------------------------------------------------------

exports() {
  local n socks="" addrs=""
  for n in $(seq 1 $NODES); do socks+="${socks:+,}unix://$(sock "$n")"; addrs+="${addrs:+,}$(addr "$n")"; done
  echo "export KILN_SWARM_MANAGER=unix://$(sock 1)"
  echo "export KILN_SWARM_NODES=$socks"
  echo "export KILN_SWARM_NODE_ADDRS=$addrs"
  echo "export KILN_SWARM_REGISTRY=$REG_ADDR"
  echo "export KILN_SWARM_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
}

rig_up() {
  registry_up || return 1
  local n
  for n in $(seq 1 $NODES); do engine_up "$n" || return 1; done
  all_ready
}

cmd_start() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, a bridge, dockerd)"
  local t
  for t in dockerd docker ip iptables nsenter unshare runc curl; do
    command -v "$t" >/dev/null || die "$t is not installed"
  done
  start_network
  start_registry
  local n
  for n in $(seq 1 $NODES); do start_engine "$n"; done
  for n in $(seq 1 $NODES); do wait_engine "$n"; done
  form_swarm
  wait_ready
  log "up: $(ready_count) nodes Ready, manager $(sock 1), registry $REG_ADDR"
}

cmd_stop() {
  [ "$(id -u)" = 0 ] || die "needs root"
  local n
  for n in $(seq 1 $NODES); do stop_engine "$n"; done
  stop_registry
  stop_network
  unmount_under "$RUN"; unmount_under "$LIB"
  rm -rf "$RUN" "$LIB"
  log "stopped"
}

cmd_status() {
  local ok=0 n
  if ip link show "$BR" >/dev/null 2>&1; then echo "bridge    $BR up ($HOST_IP/24)"; else echo "bridge    $BR absent"; ok=1; fi
  if iptables -C "${fw_rule[@]}" 2>/dev/null; then echo "firewall  FORWARD $BR->$BR accepted"; else echo "firewall  no FORWARD rule"; ok=1; fi
  if registry_up; then echo "registry  $REG_ADDR up (pid $(pid_of "$RUN/registry.pid"))"; else echo "registry  $REG_ADDR down"; ok=1; fi
  for n in $(seq 1 $NODES); do
    local link="absent" eng="down" pid
    if ip link show "$(veth "$n")" >/dev/null 2>&1; then
      link=$(ip -br link show "$(veth "$n")" | awk '{print $2}')
    fi
    pid=$(engine_pid "$n")
    if engine_up "$n"; then eng="up (pid $pid), swarm $(swarm_state "$n")"
    elif pid_alive "$pid"; then eng="not answering (pid $pid)"; fi
    echo "node n$n   $(ns "$n") $(addr "$n") link $link, dockerd $eng"
    engine_up "$n" || ok=1
  done
  if engine_up 1 && dk 1 node ls >/dev/null 2>&1; then
    dk 1 node ls --format '  {{.ID}} {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'
    [ "$(ready_count)" -ge "$NODES" ] || ok=1
  else
    ok=1
  fi
  return $ok
}

node_arg() {
  if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt $NODES ]; then
    die "node must be 1..$NODES, got '${1:-}'"
  fi
}

case "${1:-}" in
  start) cmd_start 1>&2; exports ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) rig_up || die "the rig is not up (scripts/swarm-cluster.sh start)"; exports ;;
  kill-node) node_arg "${2:-}"
    pid=$(engine_pid "$2"); pid_alive "$pid" && kill -9 "$pid"
    kill_node_procs "$2" KILL; log "node n$2 killed" ;;
  kill-engine) node_arg "${2:-}"
    pid=$(engine_pid "$2"); pid_alive "$pid" || die "dockerd n$2 is not running"
    kill -9 "$pid"; log "dockerd n$2 killed (its containers run on)" ;;
  cut-link) node_arg "${2:-}"; ip link set "$(veth "$2")" down; log "link of n$2 cut" ;;
  heal-link) node_arg "${2:-}"; ip link set "$(veth "$2")" up; log "link of n$2 up" ;;
  restart-node) node_arg "${2:-}"
    start_engine "$2"; wait_engine "$2"
    wait_for "n$2 Ready" 60 node_ready "$2" || { dk 1 node ls >&2 || true; exit 1; }
    log "node n$2 back, $(ready_count) Ready" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
