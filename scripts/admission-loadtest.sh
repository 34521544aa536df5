#!/usr/bin/env bash
# Load test of sparkgang-admission over TLS on loopback: the release binary, certificates from
# sparkgang-certs, and the load generator admission/examples/loadgen.rs (keep-alive HTTPS
# connections POSTing the cluster-static driver's AdmissionReview). Figures go to
# docs/benchmarks.md ("Admission webhook").
#
#   scripts/admission-loadtest.sh                 # 32 connections, 10 s, 1 client thread
#   CONNECTIONS=64 DURATION=20s scripts/admission-loadtest.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-1}
PORT=${PORT:-18443}
METRICS_PORT=${METRICS_PORT:-19090}

cargo build --release --locked -p sparkgang-certs --bin sparkgang-certs
cargo build --release --locked -p sparkgang-admission --bin sparkgang-admission --example loadgen

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

target/release/sparkgang-certs ca --out-dir "$work/ca" >/dev/null
target/release/sparkgang-certs serving --ca-dir "$work/ca" --service sparkgang-webhook \
    --namespace sparkgang-system --dns localhost --ip 127.0.0.1 --out-dir "$work/tls" >/dev/null
cat >"$work/admission.yaml" <<YAML
tlsListenAddress: 127.0.0.1:$PORT
metricsListenAddress: 127.0.0.1:$METRICS_PORT
tlsCertFile: $work/tls/tls.crt
tlsKeyFile: $work/tls/tls.key
defaultInstanceGroup: batch
shutdownDelay: 0s
YAML

RUST_LOG=warn target/release/sparkgang-admission --config "$work/admission.yaml" &
server=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p')"
target/release/examples/loadgen --addr "127.0.0.1:$PORT" --ca "$work/tls/ca.crt" \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --threads "$THREADS"
echo "server metrics:"
exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT"
printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
grep -E '^sparkgang_admission_(requests_total|tls_accept_errors_total)' <&3 || true
