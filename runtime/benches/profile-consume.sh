#!/usr/bin/env bash
# Instructions per consumed message (callgrind) on a real Kafka: raw rdkafka, raw rdkafka reading the
# headers, and herald, each in a process of its own (runtime/benches/consume.rs).
#
#   source /tmp/kafka-perf/env; bash runtime/benches/profile-consume.sh [CLIENTS]   # default: raw raw-headers herald
#
# Each client reads N1 = 20,000 and then N2 = 2,000 messages under valgrind; (I(N1) - I(N2)) / (N1 - N2)
# is the cost of one message with start-up, group join and shutdown taken out. callgrind's outputs stay
# in PROFILE_OUT (default a new temporary directory) for callgrind_annotate. See docs/performance.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
kafka=${KAFKA_BOOTSTRAP_SERVERS:-${HERALD_TEST_KAFKA:-}}
[ -n "$kafka" ] && [ "$kafka" != embedded ] || { echo "profile-consume.sh: set KAFKA_BOOTSTRAP_SERVERS (or source a cluster's env)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "profile-consume.sh: valgrind is needed" >&2; exit 1; }
clients=${*:-raw raw-headers herald}
out=${PROFILE_OUT:-$(mktemp -d /tmp/herald-profile.XXXXXX)}
mkdir -p "$out"
n1=20000 n2=2000
bench=$(cargo bench -p herald --bench consume --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bench" ] || { echo "profile-consume.sh: the consume bench did not build" >&2; exit 1; }
export KAFKA_BOOTSTRAP_SERVERS=$kafka

instructions() { sed -n 's/^summary: //p' "$1"; }

echo "| client | instructions per consumed message |"
echo "|---|---:|"
for client in $clients; do
    for n in $n1 $n2; do
        prefix="p$(date +%s%N | cut -c1-13)"
        "$bench" produce "$prefix" "$n" > /dev/null
        valgrind --tool=callgrind --callgrind-out-file="$out/$client-$n.out" \
            "$bench" "$client" "$prefix" "$n" > "$out/$client-$n.log" 2>&1
    done
    echo "| $client | $(( ($(instructions "$out/$client-$n1.out") - $(instructions "$out/$client-$n2.out")) / (n1 - n2) )) |"
done
echo "callgrind outputs: $out" >&2
