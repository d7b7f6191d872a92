#!/usr/bin/env bash
# herald, raw rdkafka, the Java kafka-clients and Spring Kafka on the same brokers, one table.
#
#   bash runtime/benches/run-compare.sh [EVENTS]          # default 50,000
#
# Brokers, each in a process of its own so that a client's getrusage is the client's alone:
# - a real Kafka at KAFKA_BOOTSTRAP_SERVERS (or HERALD_TEST_KAFKA, which `.ci/kafka/cluster.sh start`
#   writes into its env file), skipped when neither is set;
# - `herald broker` (the embedded broker, librdkafka's mock cluster), a fresh one for each client.
# BENCH_BROKERS="kafka embedded" chooses (default both); BENCH_CLIENTS="rust kafka-clients spring-kafka"
# chooses the programs (rust = herald and raw rdkafka, runtime/benches/compare.rs). The JVM clients run
# on the real Kafka only: kafka-clients 4.x never gets past its first metadata request on librdkafka's
# mock cluster (the producer waits for a ready node forever); BENCH_JVM_ON_MOCK=1 tries anyway, with a
# time limit of 5 minutes a client. BENCH_MEMORY=0 skips
# the second run of the Rust bench with BENCH_HERALD_ALONE=1 (herald's peak RSS with every publish in
# flight, without the raw run before it). JVM_OPTS are passed to java (default: none, the JVM's own
# defaults). Raw outputs are kept in BENCH_OUT (default a new temporary directory). See
# docs/performance.md.
set -euo pipefail

events=${1:-50000}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
out=${BENCH_OUT:-$(mktemp -d /tmp/herald-compare.XXXXXX)}
mkdir -p "$out"
brokers=${BENCH_BROKERS:-kafka embedded}
clients=${BENCH_CLIENTS:-rust kafka-clients spring-kafka}
memory=${BENCH_MEMORY:-1}
kafka=${KAFKA_BOOTSTRAP_SERVERS:-${HERALD_TEST_KAFKA:-}}
[ "$kafka" = embedded ] && kafka=

echo "building (release)..." >&2
cargo build -q --release -p herald-cli >&2
bench=$(cargo bench -p herald --bench compare --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bench" ] || { echo "run-compare.sh: the compare bench did not build" >&2; exit 1; }
mvn -q -B -f runtime/benches/jvm/pom.xml package -DskipTests >&2
jvm_cp="runtime/benches/jvm/target/classes:runtime/benches/jvm/target/libs/*"
herald_bin="$target/release/herald"

broker_pid=
stop_broker() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    fi
    exec 7>&- 2>/dev/null || true
}
trap stop_broker EXIT

# Starts a fresh `herald broker` with every topic the clients use; sets $bootstrap.
start_broker() {
    local fifo="$out/broker.stdin" topics=()
    rm -f "$fifo" && mkfifo "$fifo"
    for t in bench.raw bench.raw-latency bench.typed bench.typed-latency \
        bench.jvm-kafka-clients bench.jvm-kafka-clients.warm bench.jvm-kafka-clients.latency \
        bench.jvm-spring-kafka bench.jvm-spring-kafka.warm bench.jvm-spring-kafka.latency; do
        topics+=(--topic "$t:4")
    done
    "$herald_bin" broker "${topics[@]}" < "$fifo" > "$out/broker.out" 2> "$out/broker.err" &
    broker_pid=$!
    exec 7> "$fifo" # keeps its stdin open: end of input would not stop it, but a closed pipe is tidier
    for _ in $(seq 100); do
        bootstrap=$(sed -n 's/^bootstrap: //p' "$out/broker.out")
        [ -n "$bootstrap" ] && return 0
        sleep 0.1
    done
    echo "run-compare.sh: herald broker did not start:" >&2
    cat "$out/broker.err" >&2
    exit 1
}

# run BROKER CLIENT: one program against one broker; its ROW/LAT lines go to $out/rows.tsv, tagged.
run() {
    local broker=$1 client=$2 file="$out/$1-$2.txt" mock=
    if [ "$broker" = embedded ]; then
        start_broker
        mock=mock
    else
        bootstrap=$kafka
    fi
    local prefix="b$(date +%s)"
    echo "$broker: $client..." >&2
    case $client in
    rust | rust-alone)
        env KAFKA_BOOTSTRAP_SERVERS="$bootstrap" BENCH_ROWS=1 BENCH_BROKER="$mock" \
            BENCH_TOPIC_PREFIX="$([ -z "$mock" ] && echo "$prefix")" \
            BENCH_HERALD_ALONE="$([ "$client" = rust-alone ] && echo 1)" \
            "$bench" "$events" > "$file" 2> "$out/$broker-$client.err"
        ;;
    *)
        # shellcheck disable=SC2086
        timeout 300 java ${JVM_OPTS:-} -cp "$jvm_cp" herald.bench.Bench "$client" "$bootstrap" "$events" \
            "$([ -z "$mock" ] && echo "$prefix")" $mock > "$file" 2> "$out/$broker-$client.err" ||
            echo "run-compare.sh: $client on $broker failed or timed out (see $out/$broker-$client.err)" >&2
        ;;
    esac
    [ "$broker" = embedded ] && stop_broker
    grep -E '^(ROW|LAT)' "$file" | sed "s/^/$broker\t$client\t/" >> "$out/rows.tsv"
}

: > "$out/rows.tsv"
for broker in $brokers; do
    if [ "$broker" = kafka ] && [ -z "$kafka" ]; then
        echo "run-compare.sh: no real Kafka (KAFKA_BOOTSTRAP_SERVERS / HERALD_TEST_KAFKA unset): skipped" >&2
        continue
    fi
    for client in $clients; do
        if [ "$broker" = embedded ] && [ "$client" != rust ] && [ "${BENCH_JVM_ON_MOCK:-0}" != 1 ]; then
            echo "run-compare.sh: $client skipped on the embedded broker (see BENCH_JVM_ON_MOCK)" >&2
            continue
        fi
        run "$broker" "$client"
    done
    if [ "$memory" = 1 ] && [[ " $clients " == *" rust "* ]]; then run "$broker" rust-alone; fi
done

rustc_v=$(rustc --version | cut -d' ' -f2)
java_v=$(java -version 2>&1 | head -1 | sed 's/.*"\(.*\)".*/\1/')
echo
echo "$events events, 4 partitions, acks=all, idempotence; $(nproc) cores, $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc $rustc_v (librdkafka 2.12.1), Java $java_v (kafka-clients 4.1.1, spring-kafka 4.0.8); real Kafka: ${kafka:-none}"
echo
awk -F'\t' '
    $3 == "ROW" {
        broker = $1; program = $2; phase = $4; client = $5
        if (program == "rust-alone") { if (client != "herald" || phase != "publish, all concurrent") next; client = "herald, alone" }
        key = broker SUBSEP phase SUBSEP client
        if (!(key in seen)) { order[n++] = key; seen[key] = 1 }
        rate[key] = $6 / ($7 > 0 ? $7 : 1e-9); cpu[key] = $8; rss[key] = $9; growth[key] = $10; events[key] = $6
    }
    $3 == "LAT" && $2 != "rust-alone" { key = $1 SUBSEP $4; lorder[m++] = key; lat[key] = $5 "\t" $6 "\t" $7 "\t" $8 "\t" $9 }
    END {
        print "| broker | phase | client | events | events/s | ratio to raw | CPU µs/event | CPU ratio | peak RSS MB | RSS growth MB |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 0; i < n; i++) {
            split(order[i], k, SUBSEP)
            rawkey = k[1] SUBSEP (k[2] ~ /^publish, batches/ ? "publish, all concurrent" : k[2]) SUBSEP "raw"
            ratio = cratio = ""
            if (rawkey in rate) { ratio = sprintf("%.2f", rate[order[i]] / rate[rawkey]); cratio = sprintf("%.2f", cpu[order[i]] / cpu[rawkey]) }
            printf "| %s | %s | %s | %d | %.0f | %s | %.2f | %s | %.0f | %.0f |\n", k[1], k[2], k[3], events[order[i]], rate[order[i]], ratio, cpu[order[i]], cratio, rss[order[i]], growth[order[i]]
        }
        print ""
        print "End-to-end latency at 10,000 events/s for 3 s (ms):"
        print ""
        print "| broker | client | events | p50 | p99 | p99.9 | max |"
        print "|---|---|---:|---:|---:|---:|---:|"
        for (i = 0; i < m; i++) {
            split(lorder[i], k, SUBSEP); split(lat[lorder[i]], v, "\t")
            printf "| %s | %s | %d | %.1f | %.1f | %.1f | %.1f |\n", k[1], k[2], v[1], v[2], v[3], v[4], v[5]
        }
    }' "$out/rows.tsv"
echo
echo "raw outputs: $out" >&2
