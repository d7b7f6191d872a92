#!/usr/bin/env bash
# Runs Apache Kafka 4.x (KRaft, combined broker+controller nodes) on loopback for herald's tests,
# from the broker's jars on Maven Central (no Docker). See README.md beside this file.
#
#   cluster.sh fetch                      the jars, into the cache
#   cluster.sh start DIR [--nodes 1|3]    format, start, wait until every node answers; writes DIR/env
#   cluster.sh stop DIR                   SIGTERM every node, SIGKILL after 30 s
#   cluster.sh kill DIR ID                SIGKILL node ID
#   cluster.sh term DIR ID                SIGTERM node ID and wait until it exited
#   cluster.sh restart DIR ID             start node ID again on its storage, wait until it answers
#   cluster.sh status DIR                 which nodes run
#   cluster.sh controller DIR             the id of the active controller (the quorum's leader)
#   cluster.sh logs DIR                   the tail of every node's server.log
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache="${HERALD_KAFKA_CACHE:-$HOME/.cache/herald/kafka-$kafka_version}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

fetch() {
    [ -f "$cache/complete" ] && return 0
    command -v mvn >/dev/null || die "Maven is needed to fetch Kafka's jars (apt-get install maven)"
    command -v java >/dev/null || die "Java 17 is needed to run Kafka (apt-get install openjdk-17-jre-headless)"
    echo "fetching Apache Kafka $kafka_version's jars into $cache" >&2
    rm -rf "$cache"
    mkdir -p "$cache"
    mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$cache/libs" >&2
    touch "$cache/complete"
}

java_run() { java -cp "$cache/libs/*" "$@"; }

node_count() { cat "$1/nodes" 2>/dev/null || die "$1 holds no cluster (run start first)"; }
node_pid() { cat "$1/node-$2/pid" 2>/dev/null || true; }
running() { local pid; pid=$(node_pid "$1" "$2"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

tls_material() {
    local tls="$1/tls" days=30
    command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
    mkdir -p "$tls"
    (
        cd "$tls"
        local quiet="-loglevel error"
        # shellcheck disable=SC2086
        {
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days $days -subj "/CN=herald-test-ca" 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -keyout untrusted-ca.key -out untrusted-ca.pem -days $days -subj "/CN=herald-untrusted-ca" 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > broker.ext
            openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost" 2>/dev/null
            openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days $days -extfile broker.ext 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=alice" 2>/dev/null
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days $days 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout untrusted-client.key -out untrusted-client.csr -subj "/CN=alice" 2>/dev/null
            openssl x509 -req -in untrusted-client.csr -CA untrusted-ca.pem -CAkey untrusted-ca.key -CAcreateserial -out untrusted-client.pem -days $days 2>/dev/null
        }
        # The broker's PEM key store: its PKCS#8 key and certificate chain in one file.
        cat broker.key broker.pem ca.pem > broker-keystore.pem
        rm -f ./*.csr ./*.srl broker.ext
    )
}

write_node() {
    local dir="$1" id="$2" nodes="$3" base="$4"
    local node="$dir/node-$id"
    mkdir -p "$node/data"
    cat > "$node/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $node/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    local rf=1 isr=1 voters="" listeners advertised map
    if [ "$nodes" = 1 ]; then
        voters="1@127.0.0.1:$base"
        listeners="CONTROLLER://127.0.0.1:$base,PLAINTEXT://127.0.0.1:$((base + 2)),SASL_PLAINTEXT://127.0.0.1:$((base + 3)),SASL_SSL://127.0.0.1:$((base + 4)),SSL://127.0.0.1:$((base + 5))"
        advertised="PLAINTEXT://127.0.0.1:$((base + 2)),SASL_PLAINTEXT://127.0.0.1:$((base + 3)),SASL_SSL://127.0.0.1:$((base + 4)),SSL://127.0.0.1:$((base + 5))"
        map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"
    else
        rf=3 isr=2
        for n in 1 2 3; do voters="${voters:+$voters,}$n@127.0.0.1:$((base + 10 * n))"; done
        listeners="CONTROLLER://127.0.0.1:$((base + 10 * id)),PLAINTEXT://127.0.0.1:$((base + 10 * id + 2))"
        advertised="PLAINTEXT://127.0.0.1:$((base + 10 * id + 2))"
        map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    fi
    cat > "$node/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$map
log.dirs=$node/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
group.coordinator.rebalance.protocols=classic,consumer
auto.create.topics.enable=true
delete.topic.enable=true
log.segment.bytes=33554432
EOF
    if [ "$nodes" = 1 ]; then
        local tls="$dir/tls"
        cat >> "$node/server.properties" <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
allow.everyone.if.no.acl.found=false
sasl.enabled.mechanisms=PLAIN,OAUTHBEARER,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,OAUTHBEARER
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_admin="admin-secret";
listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*$/\$1/,DEFAULT
EOF
    fi
}

launch() {
    local dir="$1" id="$2" nodes
    nodes=$(node_count "$dir")
    # The single node holds every topic of both suite runs (about 10k partitions): at 512m it ran
    # out of heap near 16k.
    local node="$dir/node-$id" heap=1g
    [ "$nodes" = 3 ] && heap=384m
    : > "$node/server.log"
    nohup java -Xms128m -Xmx$heap -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$node/log4j2.properties" \
        -cp "$cache/libs/*" kafka.Kafka "$node/server.properties" \
        > "$node/stdout.log" 2>&1 < /dev/null &
    echo $! > "$node/pid"
}

wait_ready() {
    local dir="$1" id="$2" deadline=$((SECONDS + 120))
    local node="$dir/node-$id"
    until grep -q "Kafka Server started" "$node/server.log" 2>/dev/null; do
        if ! running "$dir" "$id"; then
            tail -n 40 "$node/server.log" "$node/stdout.log" >&2 || true
            die "node $id exited while starting"
        fi
        if [ $SECONDS -ge $deadline ]; then
            tail -n 40 "$node/server.log" >&2 || true
            die "node $id did not start within 120 s"
        fi
        sleep 0.5
    done
}

bootstrap_of() {
    local dir="$1" nodes base
    nodes=$(node_count "$dir")
    base=$(cat "$dir/base")
    if [ "$nodes" = 1 ]; then
        echo "127.0.0.1:$((base + 2))"
    else
        echo "127.0.0.1:$((base + 12)),127.0.0.1:$((base + 22)),127.0.0.1:$((base + 32))"
    fi
}

acl() { java_run org.apache.kafka.tools.AclCommand --bootstrap-server "$1" "${@:2}" >/dev/null; }

start() {
    local dir="$1" nodes=1
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) nodes="$2"; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    [ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "--nodes is 1 or 3"
    fetch
    [ -f "$dir/nodes" ] && stop "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    local default_base=19090
    [ "$nodes" = 3 ] && default_base=29090
    local base="${HERALD_KAFKA_PORT_BASE:-$default_base}"
    echo "$nodes" > "$dir/nodes"
    echo "$base" > "$dir/base"
    trap 'stop "$dir" >/dev/null 2>&1 || true' ERR
    local scram=()
    if [ "$nodes" = 1 ]; then
        tls_material "$dir"
        for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
            scram+=(--add-scram "$mechanism=[name=alice,password=alice-secret]")
            scram+=(--add-scram "$mechanism=[name=admin,password=admin-secret]")
        done
    fi
    local cluster_id
    cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
    for id in $(seq 1 "$nodes"); do
        write_node "$dir" "$id" "$nodes" "$base"
        java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/node-$id/server.properties" \
            "${scram[@]}" >/dev/null
    done
    for id in $(seq 1 "$nodes"); do launch "$dir" "$id"; done
    for id in $(seq 1 "$nodes"); do wait_ready "$dir" "$id"; done
    local bootstrap
    bootstrap=$(bootstrap_of "$dir")
    {
        echo "export HERALD_TEST_KAFKA=$bootstrap"
        echo "export HERALD_TEST_KAFKA_VERSION=$kafka_version"
        echo "export HERALD_TEST_KAFKA_CLUSTER=$dir"
        echo "export HERALD_TEST_KAFKA_NODES=$nodes"
        if [ "$nodes" = 1 ]; then
            echo "export HERALD_TEST_KAFKA_SASL_PLAINTEXT=127.0.0.1:$((base + 3))"
            echo "export HERALD_TEST_KAFKA_SASL_SSL=127.0.0.1:$((base + 4))"
            echo "export HERALD_TEST_KAFKA_SSL=127.0.0.1:$((base + 5))"
            echo "export HERALD_TEST_KAFKA_TLS_DIR=$dir/tls"
        fi
    } > "$dir/env"
    if [ "$nodes" = 1 ]; then
        # alice may do anything on topics and groups under `sec.`, but not write `sec.nowrite.*`.
        acl "$bootstrap" --add --allow-principal User:alice --operation All \
            --topic sec. --group sec. --resource-pattern-type prefixed
        acl "$bootstrap" --add --deny-principal User:alice --operation Write \
            --topic sec.nowrite. --resource-pattern-type prefixed
        acl "$bootstrap" --add --allow-principal User:alice --operation IdempotentWrite --cluster
    fi
    trap - ERR
    echo "Apache Kafka $kafka_version: $nodes node(s) at $bootstrap ($dir)" >&2
    cat "$dir/env"
}

term_node() {
    local dir="$1" id="$2" pid
    pid=$(node_pid "$dir" "$id")
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        sleep 0.2
    done
    rm -f "$dir/node-$id/pid"
}

stop() {
    local dir="$1" nodes
    [ -f "$dir/nodes" ] || return 0
    nodes=$(node_count "$dir")
    for id in $(seq 1 "$nodes"); do
        local pid
        pid=$(node_pid "$dir" "$id")
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for id in $(seq 1 "$nodes"); do term_node "$dir" "$id"; done
}

# The quorum's leader, asked of every controller (one of them may be down).
active_controller() {
    local dir="$1" base controllers=""
    base=$(cat "$dir/base")
    for id in $(seq 1 "$(node_count "$dir")"); do
        controllers="${controllers:+$controllers,}127.0.0.1:$((base + 10 * id))"
    done
    [ "$(node_count "$dir")" = 1 ] && controllers="127.0.0.1:$base"
    java_run org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-controller "$controllers" \
        describe --status 2>/dev/null | sed -n 's/^LeaderId: *//p' || true  # nothing while there is none
}

command="${1:-}"
case "$command" in
    fetch) fetch ;;
    start) [ $# -ge 2 ] || die "usage: start DIR [--nodes 1|3]"; start "${@:2}" ;;
    stop) [ $# -eq 2 ] || die "usage: stop DIR"; stop "$2" ;;
    kill)
        [ $# -eq 3 ] || die "usage: kill DIR ID"
        pid=$(node_pid "$2" "$3")
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
        while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        rm -f "$2/node-$3/pid"
        ;;
    term) [ $# -eq 3 ] || die "usage: term DIR ID"; term_node "$2" "$3" ;;
    restart)
        [ $# -eq 3 ] || die "usage: restart DIR ID"
        running "$2" "$3" && die "node $3 runs already"
        launch "$2" "$3"
        wait_ready "$2" "$3"
        ;;
    controller) [ $# -eq 2 ] || die "usage: controller DIR"; active_controller "$2" ;;
    status)
        [ $# -eq 2 ] || die "usage: status DIR"
        for id in $(seq 1 "$(node_count "$2")"); do
            if running "$2" "$id"; then echo "node $id: running (pid $(node_pid "$2" "$id"))"; else echo "node $id: stopped"; fi
        done
        ;;
    logs)
        [ $# -eq 2 ] || die "usage: logs DIR"
        for log in "$2"/node-*/server.log; do echo "== $log"; tail -n 80 "$log"; done
        ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
