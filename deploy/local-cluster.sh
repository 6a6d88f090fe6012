#!/usr/bin/env bash
# A relay cluster by hand on one machine, on loopback only: etcd, a Ray head that runs
# no relay actors, and relay worker nodes, each on its own loopback address and ports.
#
#   deploy/local-cluster.sh up DIR [WORKERS]   start etcd, the head and WORKERS (default 2)
#   deploy/local-cluster.sh add-worker DIR N   start worker N (1, 2, …)
#   deploy/local-cluster.sh stop-worker DIR N  stop worker N (its node and every actor on it)
#   deploy/local-cluster.sh down DIR           stop everything this script started in DIR
#
# Then, with `source DIR/env`:
#   chatrelay up --ray-address "$RAY_ADDRESS" --etcd "$ETCD_URL" --data-dir DIR/relay
#
# From another PID namespace or container (no raylet to see there, as for the chart's
# controller): chatrelay up --ray-address "$RAY_CLIENT_ADDRESS" (Ray Client) …
#
# Addresses: etcd and the head on 127.0.0.2 (etcd 2379/2380, Ray 6390, Ray Client 10001); worker N on
# 127.0.0.(10+N), its gateway on port 7223 and its metrics on 9464 there. Ray replaces
# 127.0.0.1 with the machine's network address in multi-node clusters, so every node
# gets another loopback address. Everything is stopped by pid: `ray stop` would also
# stop other Ray clusters on this machine.
set -euo pipefail

HEAD_IP=127.0.0.2
RAY_PORT=6390
RAY_CLIENT_PORT=10001  # Ray Client, for a controller that is on no Ray node (as the chart's)
ETCD_CLIENT=2379
ETCD_PEER=2380
GATEWAY_PORT=${CHATRELAY_GATEWAY_PORT:-7223}
METRICS_PORT=${CHATRELAY_METRICS_PORT:-9464}

die() { echo "local-cluster: $*" >&2; exit 2; }
usage() { sed -n '5,9p' "$0" | sed 's/^# //' >&2; exit 2; }

worker_ip() { echo "127.0.0.$((10 + $1))"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND…: poll until COMMAND succeeds
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up within ${seconds}s (logs in $DIR/logs)"
}

start_bg() {  # start_bg NAME COMMAND…: run in the background, pid in DIR/pids/NAME
  local name=$1; shift
  nohup "$@" >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

stop_pid() {  # stop_pid NAME: SIGTERM, then SIGKILL after 20 s
  local file="$DIR/pids/$1"
  [ -f "$file" ] || return 0
  local pid; pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

node_ports() {  # node_ports N: Ray's ports of node N (0 is the head), each node its own
  local base=$((20000 + $1 * 100))
  echo "--node-manager-port=$base --object-manager-port=$((base + 1))" \
       "--min-worker-port=$((base + 10)) --max-worker-port=$((base + 99))" \
       "--dashboard-agent-listen-port=$((base + 2)) --dashboard-agent-grpc-port=$((base + 3))" \
       "--runtime-env-agent-port=$((base + 4)) --metrics-export-port=$((base + 5))"
}

ray_env() {
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$DIR/auth_token"
  # A node told to stop does not first wait for its work to drain: Ray's default waits up
  # to 30 s for every lease on the node to come back, and the relay's actors (and a Ray
  # Client session that went away) never give theirs back, so each stop sat out
  # stop_pid's 20 s. Set it above 0 to drain.
  export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}"
  # A multi-node cluster, even where a parent process (a local `chatrelay up`, a test
  # session) said single-node.
  export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1
}

start_worker() {
  local n=$1 ip; ip=$(worker_ip "$n")
  ray_env
  # shellcheck disable=SC2046 # node_ports is a list of flags
  CHATRELAY_GATEWAY_LISTEN="$ip:$GATEWAY_PORT" CHATRELAY_GATEWAY_METRICS="$ip:$METRICS_PORT" \
    start_bg "worker-$n" ray start --block --address="$HEAD_IP:$RAY_PORT" --node-ip-address="$ip" \
    --num-cpus=1 --resources='{"chatrelay": 1000}' --disable-usage-stats $(node_ports "$n")
  wait_for 60 "worker $n" python3 -c "import ray, sys
ray.init(address='$HEAD_IP:$RAY_PORT', _node_ip_address='$HEAD_IP', log_to_driver=False)
sys.exit('$ip' not in {n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']})"
  echo "worker $n on $ip (gateway $ip:$GATEWAY_PORT, metrics $ip:$METRICS_PORT)"
}

[ $# -ge 2 ] || usage
COMMAND=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
mkdir -p "$DIR/logs" "$DIR/pids"
export RAY_ADDRESS="$HEAD_IP:$RAY_PORT"

case "$COMMAND" in
  up)
    WORKERS=${3:-2}
    [[ "$WORKERS" =~ ^[1-9][0-9]?$ ]] || die "WORKERS must be 1 to 99, got '$WORKERS'"
    command -v etcd >/dev/null || die "etcd is not installed: apt-get install -y etcd-server"
    command -v ray >/dev/null || die "ray is not installed: pip install -e ."
    [ -f "$DIR/pids/head" ] && die "a cluster runs in $DIR already (deploy/local-cluster.sh down $DIR)"
    [ -f "$DIR/auth_token" ] || python3 -c "import secrets; print(secrets.token_hex(32))" >"$DIR/auth_token"
    chmod 600 "$DIR/auth_token"
    start_bg etcd etcd --name relay --data-dir "$DIR/etcd" \
      --listen-client-urls "http://$HEAD_IP:$ETCD_CLIENT" --advertise-client-urls "http://$HEAD_IP:$ETCD_CLIENT" \
      --listen-peer-urls "http://$HEAD_IP:$ETCD_PEER" --initial-advertise-peer-urls "http://$HEAD_IP:$ETCD_PEER" \
      --initial-cluster "relay=http://$HEAD_IP:$ETCD_PEER"
    wait_for 30 etcd python3 -c "import urllib.request,sys; sys.exit(b'true' not in urllib.request.urlopen('http://$HEAD_IP:$ETCD_CLIENT/health', timeout=1).read())"
    echo "etcd on http://$HEAD_IP:$ETCD_CLIENT"
    ray_env
    # shellcheck disable=SC2046
    start_bg head ray start --block --head --node-ip-address="$HEAD_IP" --port="$RAY_PORT" --num-cpus=0 \
      --ray-client-server-port="$RAY_CLIENT_PORT" --include-dashboard=false --disable-usage-stats $(node_ports 0)
    wait_for 60 "the Ray head" ray status --address="$HEAD_IP:$RAY_PORT"
    echo "ray head on $HEAD_IP:$RAY_PORT (no relay actors there)"
    for n in $(seq 1 "$WORKERS"); do start_worker "$n"; done
    cat >"$DIR/env" <<ENV
export RAY_ADDRESS=$HEAD_IP:$RAY_PORT
export RAY_CLIENT_ADDRESS=ray://$HEAD_IP:$RAY_CLIENT_PORT
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$DIR/auth_token
export ETCD_URL=http://$HEAD_IP:$ETCD_CLIENT
ENV
    echo "ready: source $DIR/env, then chatrelay up --ray-address \"\$RAY_ADDRESS\" --etcd \"\$ETCD_URL\" --data-dir $DIR/relay"
    ;;
  add-worker)
    [[ "${3:-}" =~ ^[1-9][0-9]?$ ]] || die "add-worker needs a worker number 1 to 99"
    [ -f "$DIR/pids/worker-$3" ] && die "worker $3 runs already"
    start_worker "$3"
    ;;
  stop-worker)
    [[ "${3:-}" =~ ^[1-9][0-9]?$ ]] || die "stop-worker needs a worker number 1 to 99"
    [ -f "$DIR/pids/worker-$3" ] || die "no worker $3 runs in $DIR"
    stop_pid "worker-$3"
    echo "worker $3 stopped"
    ;;
  down)
    for file in "$DIR"/pids/worker-*; do [ -e "$file" ] && stop_pid "$(basename "$file")"; done
    stop_pid head
    stop_pid etcd
    # `ray start --head` named this cluster the machine's default; it is gone now.
    if [ "$(cat /tmp/ray/ray_current_cluster 2>/dev/null)" = "$HEAD_IP:$RAY_PORT" ]; then
      rm -f /tmp/ray/ray_current_cluster
    fi
    echo "stopped"
    ;;
  *)
    usage
    ;;
esac
