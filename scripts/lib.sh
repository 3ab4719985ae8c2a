#!/usr/bin/env bash
# Shared by scripts/run, scripts/test and scripts/stop: install (Debian
# packages) and run private PostgreSQL and RabbitMQ on loopback, with their
# data under .local/ in the repository. Idempotent: a running server is
# reused, a stale pid file is cleaned up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${CAPI_LOCAL_DIR:-$ROOT/.local}"
PG_PORT="${CAPI_PG_PORT:-54329}"
AMQP_PORT="${CAPI_AMQP_PORT:-56729}"
AMQP_DIST_PORT="${CAPI_AMQP_DIST_PORT:-56730}"
EPMD_PORT="${CAPI_EPMD_PORT:-54369}"
PG_DIR="$LOCAL/postgres"
RMQ_DIR="$LOCAL/rabbitmq"
export DATABASE_ADMIN_URL="postgres://capi@127.0.0.1:$PG_PORT/postgres"
export CAPI_DATABASE__URL="${CAPI_DATABASE__URL:-postgres://capi@127.0.0.1:$PG_PORT/capi}"
export CAPI_AMQP__URL="${CAPI_AMQP__URL:-amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f}"
# Stored credentials are encrypted with this key (storage::secrets): a local
# one is made once under .local/ unless the environment brings its own.
if [ -z "${CAPI_SECRETS__KEY:-}" ]; then
  mkdir -p "$LOCAL"
  [ -s "$LOCAL/secrets.key" ] || (umask 077; head -c 32 /dev/urandom | base64 >"$LOCAL/secrets.key")
  CAPI_SECRETS__KEY="$(cat "$LOCAL/secrets.key")"
fi
export CAPI_SECRETS__KEY

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 tries=${3:-120}
  for _ in $(seq "$tries"); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$what did not open port $port; see its log under $LOCAL"
  return 1
}

# Waits until a service answers GET /ready on the port (2 min at most).
wait_ready() {
  for _ in $(seq 480); do curl -fsS "http://127.0.0.1:$1/ready" >/dev/null 2>&1 && return 0; sleep 0.25; done
  log "nothing ready on port $1"
  return 1
}

install_packages() {
  local missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The Debian packages start system-wide servers on the default ports; ours
  # are private, so those are not needed (and may not be running at all).
}

# Headless Chromium and its WebDriver, from Debian's packages, for the
# dashboard's browser test (scripts/test installs them; running the system
# does not need them).
install_browser() {
  command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && return 0
  log "installing chromium and chromium-driver (the dashboard's browser test)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
}

# Fails loudly when a test browser or its driver is still running, or its
# folder is still in the temp directory (both named capi-chromium-*: see
# pipeline_tests::webdriver), then cleans them up so one leak does not pile
# onto the next run.
check_no_browser_left() {
  local tmp="${TMPDIR:-/tmp}" pids folders
  pids="$(pgrep -f -- 'capi-chromium-' || true)"
  folders="$(find "$tmp" -maxdepth 1 -name 'capi-chromium-*' 2>/dev/null || true)"
  [ -z "$pids" ] && [ -z "$folders" ] && return 0
  if [ -n "$pids" ]; then
    log "FAIL: test browser processes are still running:"
    # shellcheck disable=SC2086
    ps -o pid,ppid,pgid,rss,args -p $(echo $pids | tr ' ' ',') | cut -c1-200 >&2 || true
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  if [ -n "$folders" ]; then
    log "FAIL: test browser folders are left in $tmp:"
    printf '  %s\n' $folders >&2
    # shellcheck disable=SC2086
    rm -rf $folders
  fi
  return 1
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

# Runs a PostgreSQL tool as the data directory's owner (PostgreSQL refuses root).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  local bin; bin="$(pg_bin)"
  mkdir -p "$LOCAL"
  if [ ! -s "$PG_DIR/PG_VERSION" ]; then
    log "initialising PostgreSQL in $PG_DIR"
    mkdir -p "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DIR" && chmod 700 "$PG_DIR"
    as_pg "$bin/initdb" -D "$PG_DIR" -U capi --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if [ -f "$PG_DIR/postmaster.pid" ] && ! as_pg "$bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "removing stale PostgreSQL pid file"
    rm -f "$PG_DIR/postmaster.pid"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$bin/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=${CAPI_PG_SHARED_BUFFERS:-512MB} -c fsync=${CAPI_PG_FSYNC:-on}" start >/dev/null
  fi
  wait_port "$PG_PORT" PostgreSQL
  if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U capi -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='capi'" | grep -q 1; then
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U capi capi
  fi
}

rmq_env() {
  export RABBITMQ_NODENAME="capi@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="$AMQP_DIST_PORT"
  # No scheduler busy-waiting: on a small machine shared with PostgreSQL and
  # the services, spinning Erlang schedulers take CPU the others need.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"
  export ERL_EPMD_PORT="$EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  export RABBITMQ_PID_FILE="$RMQ_DIR/rabbitmq.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  export HOME="$RMQ_DIR/home"
}

start_rabbitmq() {
  mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/log" "$RMQ_DIR/mnesia"
  [ -f "$RMQ_DIR/enabled_plugins" ] || echo '[].' > "$RMQ_DIR/enabled_plugins"
  [ -f "$RMQ_DIR/rabbitmq.conf" ] || printf 'loopback_users.guest = true\nlog.console = false\n' > "$RMQ_DIR/rabbitmq.conf"
  if port_open "$AMQP_PORT"; then return 0; fi
  if [ -f "$RMQ_DIR/rabbitmq.pid" ] && ! kill -0 "$(cat "$RMQ_DIR/rabbitmq.pid" 2>/dev/null)" 2>/dev/null; then
    log "removing stale RabbitMQ pid file"
    rm -f "$RMQ_DIR/rabbitmq.pid"
  fi
  log "starting RabbitMQ on 127.0.0.1:$AMQP_PORT"
  (
    rmq_env
    cd "$RMQ_DIR"
    setsid nohup /usr/lib/rabbitmq/bin/rabbitmq-server >"$RMQ_DIR/server.out" 2>&1 &
    echo $! > "$RMQ_DIR/launcher.pid"
  )
  wait_port "$AMQP_PORT" RabbitMQ 240
}

stop_rabbitmq() {
  if port_open "$AMQP_PORT" || [ -f "$RMQ_DIR/rabbitmq.pid" ]; then
    log "stopping RabbitMQ"
    ( rmq_env; /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 ) || true
    if [ -f "$RMQ_DIR/rabbitmq.pid" ]; then kill "$(cat "$RMQ_DIR/rabbitmq.pid")" 2>/dev/null || true; fi
    rm -f "$RMQ_DIR/rabbitmq.pid"
  fi
  # epmd on our private port, if it is still around.
  pkill -f "epmd.*-port $EPMD_PORT" 2>/dev/null || true
}

stop_postgres() {
  local bin; bin="$(pg_bin)"
  if [ -d "$PG_DIR" ] && as_pg "$bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "stopping PostgreSQL"
    as_pg "$bin/pg_ctl" -D "$PG_DIR" -m fast stop >/dev/null
  fi
}

start_servers() {
  install_packages
  mkdir -p "$LOCAL/logs"
  start_postgres
  start_rabbitmq
}

# psql on the private cluster as the capi role: psql_db -d DB -c "…"
psql_db() { as_pg "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U capi -v ON_ERROR_STOP=1 -qtA "$@"; }

# A fresh RabbitMQ vhost and database, both named $1, for a benchmark run;
# points the services at them (CAPI_DATABASE__URL, CAPI_AMQP__URL).
bench_env() {
  local name=$1
  (
    rmq_env
    ctl=(/usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$RABBITMQ_NODENAME")
    "${ctl[@]}" delete_vhost "$name" >/dev/null 2>&1 || true
    "${ctl[@]}" add_vhost "$name" >/dev/null
    "${ctl[@]}" set_permissions -p "$name" guest '.*' '.*' '.*' >/dev/null
  )
  psql_db -d postgres -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
  export CAPI_DATABASE__URL="postgres://capi@127.0.0.1:$PG_PORT/$name"
  export CAPI_AMQP__URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/$name"
}

# Messages (ready + unacknowledged) in the queues of vhost $1 whose name
# matches the regular expression $2 (default: every queue).
vhost_messages() {
  ( rmq_env; /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$RABBITMQ_NODENAME" list_queues -p "$1" name messages 2>/dev/null ) \
    | awk -v re="${2:-.}" '$2 ~ /^[0-9]+$/ && $1 ~ re {n += $2} END {print n + 0}'
}
