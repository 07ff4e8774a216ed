#!/usr/bin/env bash
# A real Elasticsearch for clogs' tests, CI and development, from Maven Central.
#
# Maven Central publishes a runnable Elasticsearch for integration tests,
# org.elasticsearch.distribution.integ-test-zip:elasticsearch (server, netty
# transport, x-pack core and security; no bundled JDK, no ILM, no ingest
# processors, no built-in logs-*-* templates). 9.5.4 is the newest 9.x zip the
# repository serves (its maven-metadata.xml lists only 8.x, so it was found by
# probing); the @elastic/elasticsearch 9.x client needs a 9.x server.
#
#   scripts/elasticsearch.sh ensure               plain node on :9200 and secured node on :9201
#   scripts/elasticsearch.sh start NAME PORT [plain|secure|tls] [HEAP]
#                                                 one more node (e.g. a throwaway for outage tests);
#                                                 tls: like secure, but HTTPS with a CA generated for
#                                                 the node, its certificate in $CLOGS_ES_CACHE/nodes/NAME/ca.crt
#   scripts/elasticsearch.sh stop [NAME...]       stops the named nodes, or every node
#   scripts/elasticsearch.sh wipe NAME            stops a node and deletes its data
#   scripts/elasticsearch.sh status               one line per node
#
# Every command is idempotent: `ensure` downloads and unpacks only what is
# missing and starts only nodes that are not already answering.
#
# The secured node has security on with plain HTTP (no TLS) and a file-realm
# superuser; its credentials are fixed test values, printed by `ensure` and
# kept in $CLOGS_ES_CACHE/nodes/secure/credentials (user:password):
#   user clogs, password clogs-test-pw  (override with CLOGS_ES_SECURE_USER / _PASSWORD)
#
# Environment:
#   CLOGS_ES_VERSION    default 9.5.4
#   CLOGS_ES_CACHE      default /var/cache/clogs as root, else ~/.cache/clogs (outside the repo)
#   CLOGS_ES_M2         the Maven local repository; default ~/.m2/repository
#   CLOGS_ES_USER       the user Elasticsearch runs as when started by root (it refuses root); default clogs-es
#   CLOGS_ES_JAVA_HOME  a JDK 21+; default the newest /usr/lib/jvm/temurin-*
#   CLOGS_ES_TIMEOUT    seconds to wait for a node to turn yellow; default 180
set -euo pipefail

VERSION=${CLOGS_ES_VERSION:-9.5.4}
if [[ $EUID -eq 0 ]]; then
  CACHE=${CLOGS_ES_CACHE:-/var/cache/clogs}
else
  CACHE=${CLOGS_ES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clogs}
fi
ES_USER=${CLOGS_ES_USER:-clogs-es}
TIMEOUT=${CLOGS_ES_TIMEOUT:-180}
SECURE_USER=${CLOGS_ES_SECURE_USER:-clogs}
SECURE_PASSWORD=${CLOGS_ES_SECURE_PASSWORD:-clogs-test-pw}
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:${VERSION}:zip"
M2=${CLOGS_ES_M2:-$HOME/.m2/repository}
ZIP="$M2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/${VERSION}/elasticsearch-${VERSION}.zip"
DIST="$CACHE/elasticsearch-${VERSION}"
NODES="$CACHE/nodes"

log() { echo "elasticsearch.sh: $*" >&2; }
die() { log "$*"; exit 1; }

find_java() {
  if [[ -n ${CLOGS_ES_JAVA_HOME:-} ]]; then
    echo "$CLOGS_ES_JAVA_HOME"
    return
  fi
  local jdk
  jdk=$(ls -d /usr/lib/jvm/temurin-*-jdk* 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n $jdk ]] || die "no Temurin JDK under /usr/lib/jvm; Elasticsearch 9 needs Java 21+: set CLOGS_ES_JAVA_HOME"
  echo "$jdk"
}

# Runs a command as the Elasticsearch user (root) or as oneself.
as_es() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u "$ES_USER" -- env "$@"
  else
    env "$@"
  fi
}

ensure_user() {
  [[ $EUID -eq 0 ]] || return 0
  id -u "$ES_USER" >/dev/null 2>&1 && return 0
  log "creating system user $ES_USER (Elasticsearch refuses to run as root)"
  useradd --system --no-create-home --home-dir "$NODES" --shell /usr/sbin/nologin "$ES_USER"
}

ensure_dist() {
  if [[ ! -f $ZIP ]]; then
    log "fetching $ARTIFACT from Maven Central"
    mvn -q -B dependency:get -Dartifact="$ARTIFACT" -Dtransitive=false -Dmaven.repo.local="$M2" >&2
    [[ -f $ZIP ]] || die "maven reported success but $ZIP is missing"
  fi
  [[ -x $DIST/bin/elasticsearch ]] && return 0
  log "unpacking into $DIST"
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp -d "$CACHE/.unpack.XXXXXX")
  unzip -q "$ZIP" -d "$tmp"
  chmod -R a+rX "$tmp"
  rm -rf "$DIST"
  mv "$tmp/elasticsearch-${VERSION}" "$DIST"
  rmdir "$tmp"
}

# The base URL of a node and the curl options to reach it.
node_url() {
  if [[ $2 == tls ]]; then echo "https://127.0.0.1:$1"; else echo "http://127.0.0.1:$1"; fi
}

curl_tls() {
  local name=$1 kind=$2
  if [[ $kind == tls ]]; then echo "--cacert $NODES/$name/ca.crt"; fi
}

# http code of GET /_cluster/health on a node (000 when nothing answers).
health_code() {
  local name=$1 port=$2 kind=$3 auth=$4
  # shellcheck disable=SC2046
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 $(curl_tls "$name" "$kind") ${auth:+-u "$auth"} \
    "$(node_url "$port" "$kind")/_cluster/health" || true
}

# A CA and a certificate for 127.0.0.1/localhost, made once per node.
make_certs() {
  local dir=$1
  [[ -f $dir/config/certs/node.crt ]] && return 0
  mkdir -p "$dir/config/certs"
  local c=$dir/config/certs
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=clogs test CA" \
    -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$c/node.key" -out "$c/node.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$c/ext.cnf"
  openssl x509 -req -in "$c/node.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 3650 \
    -extfile "$c/ext.cnf" -out "$c/node.crt" 2>/dev/null
  # Serve the chain, as Elasticsearch's own auto-configuration does, so clients
  # that pin the CA by fingerprint find it in the handshake.
  cat "$c/ca.crt" >>"$c/node.crt"
  cp "$c/ca.crt" "$dir/ca.crt"
  chmod a+r "$dir/ca.crt"
}

node_auth() {
  local dir=$NODES/$1
  if [[ -f $dir/credentials ]]; then cat "$dir/credentials"; fi
}

write_config() {
  local name=$1 port=$2 kind=$3 heap=$4 dir=$NODES/$1
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  if [[ ! -d $dir/config ]]; then
    cp -r "$DIST/config" "$dir/config"
  fi
  mkdir -p "$dir/config/jvm.options.d"
  printf -- '-Xms%s\n-Xmx%s\n' "$heap" "$heap" >"$dir/config/jvm.options.d/heap.options"
  {
    echo "# Written by scripts/elasticsearch.sh; rewritten on every start."
    echo "cluster.name: clogs-${name}"
    echo "node.name: ${name}"
    echo "network.host: 127.0.0.1"
    echo "http.port: ${port}"
    echo "discovery.type: single-node"
    echo "path.data: ${dir}/data"
    echo "path.logs: ${dir}/logs"
    # Tests delete their indices with wildcards; a shared test disk must not
    # turn indices read-only when another job fills it.
    echo "action.destructive_requires_name: false"
    echo "cluster.routing.allocation.disk.threshold_enabled: false"
    # Data streams cannot be deleted on the integ-test distribution, so a
    # node kept across many test and bench runs collects backing indices;
    # at the default 1,000 shards a node, indexing then fails and the ES
    # bench waits forever.
    echo "cluster.max_shards_per_node: 20000"
    if [[ $kind == secure || $kind == tls ]]; then
      echo "xpack.security.enabled: true"
      echo "xpack.security.enrollment.enabled: false"
      echo "xpack.security.transport.ssl.enabled: false"
      if [[ $kind == tls ]]; then
        echo "xpack.security.http.ssl.enabled: true"
        echo "xpack.security.http.ssl.key: certs/node.key"
        echo "xpack.security.http.ssl.certificate: certs/node.crt"
        echo "xpack.security.http.ssl.certificate_authorities: [certs/ca.crt]"
      else
        echo "xpack.security.http.ssl.enabled: false"
      fi
    else
      echo "xpack.security.enabled: false"
    fi
  } >"$dir/config/elasticsearch.yml"
  echo "$port" >"$dir/port"
  echo "$kind" >"$dir/kind"
  if [[ $kind == tls ]]; then make_certs "$dir"; fi
  if [[ $EUID -eq 0 ]]; then chown -R "$ES_USER:" "$dir"; fi
  if [[ $kind == secure || $kind == tls ]]; then
    local env=(ES_PATH_CONF="$dir/config" ES_JAVA_HOME="$JAVA" ES_TMPDIR="$dir/tmp" JAVA_HOME=)
    if grep -q "^${SECURE_USER}:" "$dir/config/users" 2>/dev/null; then
      as_es "${env[@]}" "$DIST/bin/elasticsearch-users" passwd "$SECURE_USER" -p "$SECURE_PASSWORD" >/dev/null
    else
      as_es "${env[@]}" "$DIST/bin/elasticsearch-users" useradd "$SECURE_USER" -p "$SECURE_PASSWORD" -r superuser >/dev/null
    fi
    echo "${SECURE_USER}:${SECURE_PASSWORD}" >"$dir/credentials"
  else
    rm -f "$dir/credentials"
  fi
}

pid_alive() {
  local pidfile=$NODES/$1/es.pid
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

print_log_tail() {
  local dir=$NODES/$1
  log "---- last lines of the log of node $1 ----"
  for f in "$dir/logs/startup.out" "$dir/logs/clogs-$1.log"; do
    if [[ -f $f ]]; then tail -n 60 "$f" >&2; fi
  done
  log "---- end of log ----"
}

wait_healthy() {
  local name=$1 port=$2 kind=$3 auth=$4 deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    # shellcheck disable=SC2046
    if curl -sf -o /dev/null --max-time 10 $(curl_tls "$name" "$kind") ${auth:+-u "$auth"} \
      "$(node_url "$port" "$kind")/_cluster/health?wait_for_status=yellow&timeout=5s"; then
      return 0
    fi
    if ! pid_alive "$name"; then
      log "node $name exited during start-up"
      print_log_tail "$name"
      return 1
    fi
    sleep 1
  done
  log "node $name did not turn yellow on :$port within ${TIMEOUT}s"
  print_log_tail "$name"
  return 1
}

start_node() {
  local name=$1 port=$2 kind=${3:-plain} heap=${4:-512m} dir=$NODES/$1
  [[ $name =~ ^[a-z0-9-]+$ ]] || die "node name must be [a-z0-9-]+, got '$name'"
  [[ $port =~ ^[0-9]+$ ]] || die "port must be a number, got '$port'"
  [[ $kind == plain || $kind == secure || $kind == tls ]] || die "kind must be plain, secure or tls, got '$kind'"
  local auth=
  if [[ $kind != plain ]]; then auth="${SECURE_USER}:${SECURE_PASSWORD}"; fi

  local code
  code=$(health_code "$name" "$port" "$kind" "$auth")
  if [[ $code == 200 ]]; then
    log "node $name already answers on 127.0.0.1:$port"
    return 0
  fi
  if ! pid_alive "$name"; then
    [[ $code == 000 ]] || die "port $port answers HTTP $code but is not node $name (${kind}); free the port or pick another"
    write_config "$name" "$port" "$kind" "$heap"
    log "starting node $name ($kind) on 127.0.0.1:$port, heap $heap"
    # The launcher resolves relative JVM paths (the GC log) from the working directory.
    if ! (cd "$dir/logs" && as_es ES_PATH_CONF="$dir/config" ES_JAVA_HOME="$JAVA" ES_TMPDIR="$dir/tmp" JAVA_HOME= \
      "$DIST/bin/elasticsearch" -d -p "$dir/es.pid" >"$dir/logs/startup.out" 2>&1); then
      log "node $name failed to start"
      print_log_tail "$name"
      return 1
    fi
  fi
  wait_healthy "$name" "$port" "$kind" "$auth"
  log "node $name is up on $(node_url "$port" "$kind")"
}

stop_node() {
  local name=$1 pidfile=$NODES/$1/es.pid
  if ! pid_alive "$name"; then
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  log "stopping node $name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "node $name ignored SIGTERM for 30s; killing it"
    kill -KILL "$pid"
  fi
  rm -f "$pidfile"
}

status() {
  [[ -d $NODES ]] || { echo "no nodes under $NODES"; return 0; }
  local dir name port kind auth code state
  for dir in "$NODES"/*; do
    [[ -d $dir ]] || continue
    name=$(basename "$dir")
    [[ -f $dir/port ]] || continue
    port=$(cat "$dir/port")
    kind=$(cat "$dir/kind" 2>/dev/null || echo plain)
    auth=$(node_auth "$name")
    code=$(health_code "$name" "$port" "$kind" "$auth")
    if [[ $code == 200 ]]; then state=up; elif pid_alive "$name"; then state="starting (HTTP $code)"; else state=down; fi
    echo "$name $kind $(node_url "$port" "$kind") $state${auth:+ credentials=$dir/credentials}"
  done
}

with_lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  "$@"
}

ensure() {
  ensure_dist
  ensure_user
  mkdir -p "$NODES"
  if [[ $EUID -eq 0 ]]; then chown "$ES_USER:" "$NODES"; fi
  # Two nodes share two cores: the secured one only serves auth tests.
  start_node plain 9200 plain 512m
  start_node secure 9201 secure 384m
  echo "CLOGS_TEST_ES_URL=http://127.0.0.1:9200"
  echo "CLOGS_TEST_ES_SECURE_URL=http://127.0.0.1:9201"
  echo "CLOGS_TEST_ES_SECURE_USER=${SECURE_USER}"
  echo "CLOGS_TEST_ES_SECURE_PASSWORD=${SECURE_PASSWORD}"
}

start_one() {
  ensure_dist
  ensure_user
  mkdir -p "$NODES"
  start_node "$@"
}

wipe() {
  stop_node "$1"
  rm -rf "${NODES:?}/$1"
}

cmd=${1:-}
shift || true
case $cmd in
  ensure) JAVA=$(find_java); with_lock ensure ;;
  start)
    (($# >= 2)) || die "usage: $0 start NAME PORT [plain|secure|tls] [HEAP]"
    JAVA=$(find_java); with_lock start_one "$@" ;;
  stop)
    if (($# == 0)); then
      for d in "$NODES"/*/; do
        if [[ -d $d ]]; then stop_node "$(basename "$d")"; fi
      done
    else
      for n in "$@"; do stop_node "$n"; done
    fi ;;
  wipe) (($# == 1)) || die "usage: $0 wipe NAME"; wipe "$1" ;;
  status) status ;;
  *) die "usage: $0 ensure | start NAME PORT [plain|secure|tls] [HEAP] | stop [NAME...] | wipe NAME | status" ;;
esac
