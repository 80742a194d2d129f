#!/usr/bin/env bash
# authgraph benchmarks: release build, server pinned to one core, wrk to the
# other, a warm-up, then each scenario for a fixed time. Prints a table and the
# ratios the performance targets are stated in.
#
#   bench/run.sh                   # all scenarios, 10 s each, on SQLite
#   DURATION=5 bench/run.sh        # shorter
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/run.sh
#                                  # on PostgreSQL: (re)creates the database
#                                  # authgraph_bench on that server and runs there
#   BIN=path/to/authgraph SCENARIOS="me refreshToken" MICRO=0 bench/run.sh
#                                  # another build, some scenarios, no criterion
#                                  # (what bench/compare.sh alternates)
#
# Needs wrk (apt-get install -y wrk), curl, python3 and taskset (and psql for
# PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BLACKLIST_ROWS=${BLACKLIST_ROWS:-1000000}
# DRF + SimpleJWT on this machine, one core (figures from the issue that set the targets).
DRF_ME=1100
DRF_REFRESH=270

for tool in wrk curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install -y $tool)" >&2; exit 1; }
done

SCENARIOS=${SCENARIOS:-all}
MICRO=${MICRO:-1}
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin authgraph
  BIN=target/release/authgraph
fi
# Is scenario $1 selected?
wanted() { [ "$SCENARIOS" = all ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

PG_ADMIN=${BENCH_POSTGRES_URL:-}
if [ -n "$PG_ADMIN" ]; then
  command -v psql >/dev/null || { echo "bench: psql is needed for PostgreSQL" >&2; exit 1; }
  PG_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/authgraph_bench")))' "$PG_ADMIN")
  fresh_database() {
    psql -q "$PG_ADMIN" -c 'DROP DATABASE IF EXISTS authgraph_bench WITH (FORCE)' -c 'CREATE DATABASE authgraph_bench'
  }
  fresh_database
  export AUTHGRAPH_BENCH_DATABASE_URL="$PG_URL"
  echo "== on PostgreSQL: $(psql -tA "$PG_ADMIN" -c 'SHOW server_version')"
fi

if [ "$MICRO" = 1 ]; then
echo "== criterion micro-benchmarks (pinned to CPU $SERVER_CPU)"
taskset -c "$SERVER_CPU" cargo bench --locked --bench hot_paths -- --noplot >/tmp/authgraph-criterion.log 2>&1 \
  || { cat /tmp/authgraph-criterion.log; exit 1; }
estimate() { # mean time in seconds of target/criterion/<group>/<name>
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean"]["point_estimate"] / 1e9)' \
    "target/criterion/$1/new/estimates.json"
}
RTT=$(estimate db/round_trip)
GUARD=$(estimate db/guard)
ARGON=$(estimate argon2/verify)
ENC=$(estimate jwt/encode)
DEC=$(estimate jwt/decode)
# Sign and verify of an access token under each asymmetric algorithm.
SIGN_VERIFY=""
for alg in EdDSA ES256 RS256; do
  SIGN_VERIFY="$SIGN_VERIFY $alg:$(estimate "jwt_$alg/encode"):$(estimate "jwt_$alg/decode")"
done
# On SQLite, the same two through the pool alone (the path before reads ran in place).
POOL_RTT=$( [ -z "$PG_ADMIN" ] && estimate db/round_trip_pool || echo 0)
POOL_GUARD=$( [ -z "$PG_ADMIN" ] && estimate db/guard_pool || echo 0)

[ -n "$PG_ADMIN" ] && fresh_database   # the criterion run left its rows there
fi
DATABASE_URL=${PG_URL:-}

WORK=$(mktemp -d)
[ -n "$DATABASE_URL" ] || DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc"
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# start_server, with ALG=EdDSA|ES256|RS256 for access tokens signed that way.
start_server() {
  : >"$WORK/server.log"
  env -i PATH="$PATH" DATABASE_URL="$DATABASE_URL" BIND_ADDR=127.0.0.1:0 \
    JWT_ALGORITHM="${ALG:-HS256}" JWT_SIGNING_KEY_FILE="$WORK/signing-${ALG:-none}.pem" \
    JWT_SECRET=bench-secret-bench-secret-bench-secret AUTH_RATE_LIMIT_PER_MINUTE=0 RUST_LOG=warn,authgraph=info \
    LOGIN_FAILURES_PER_HOUR="${THROTTLE:-100}" \
    taskset -c "$SERVER_CPU" "$BIN" serve 2>>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    ADDR=$(grep -o 'listening on http://[0-9.:]*' "$WORK/server.log" | head -1 | sed 's|listening on http://||') || true
    [ -n "$ADDR" ] && break
    sleep 0.1
  done
  [ -n "$ADDR" ] || { cat "$WORK/server.log"; exit 1; }
  URL="http://$ADDR/graphql"
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }

gql() { curl -sf "$URL" -H 'Content-Type: application/json' -d "$1"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

LOGIN_BODY='{"query":"mutation { login(input: {username: \"bench\", password: \"correct horse battery\"}) { accessToken refreshToken } }"}'
start_server
gql '{"query":"mutation { signup(input: {username: \"bench\", email: \"bench@example.com\", password: \"correct horse battery\"}) { accessToken } }"}' >/dev/null
ACCESS=$(gql "$LOGIN_BODY" | field '["data"]["login"]["accessToken"]')

RESULTS=${RESULTS_FILE:-$WORK/results}
: >"$RESULTS"
# run NAME CONNS SCRIPT [env...]: wrk for $DURATION s after a warm-up; appends a result row.
run() {
  local name=$1 conns=$2 script=$3; shift 3
  wanted "$name" || return 0
  [ "$script" = refresh.lua ] && seeds "$conns"
  env "$@" taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "bench/wrk/$script" "$URL" >/dev/null
  [ "$script" = refresh.lua ] && seeds "$conns"
  echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true   # reset the peak-RSS mark
  env "$@" taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "bench/wrk/$script" "$URL" >"$WORK/$name.wrk"
  record "$name" "$WORK/$name.wrk"
}
record() {
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  python3 - "$1" "$2" "$rss" >>"$RESULTS" <<'PY'
import re, sys
name, path, rss = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(path).read()
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(label), text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = int(re.search(r"graphql_errors (\d+)", text).group(1))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors += sum(int(x) for x in m.groups()) if m else 0
print(f"{name}\t{rps:.0f}\t{ms('50%'):.2f}\t{ms('99%'):.2f}\t{errors}\t{rss / 1024:.1f}")
PY
}

echo "== load scenarios (${DURATION}s each after ${WARMUP}s warm-up, $CONNS connections, server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU)"
run floor "$CONNS" graphql.lua BODY='{"query":"{ __typename }"}'
run me "$CONNS" graphql.lua BODY='{"query":"{ me { id username role } }"}' AUTH="$ACCESS"
# me with an API key instead of an access token.
if wanted me_api_key; then
  API_KEY=$(curl -sf "$URL" -H 'Content-Type: application/json' -H "Authorization: Bearer $ACCESS" \
    -d '{"query":"mutation { createApiKey(name: \"bench\", password: \"correct horse battery\") { key } }"}' \
    | field '["data"]["createApiKey"]["key"]')
  run me_api_key "$CONNS" graphql.lua BODY='{"query":"{ me { id username role } }"}' AUTH="$API_KEY" SCHEME=Token
fi
run verifyToken "$CONNS" graphql.lua BODY="{\"query\":\"{ verifyToken(token: \\\"$ACCESS\\\") { valid } }\"}"

# A fresh refresh token per connection for every wrk run (warm-up and measured
# run alike: replaying a used token would end its session); the script chains
# each answer's new one.
# wrk calls request() once per thread before the run starts, so seed some slack.
seeds() { for _ in $(seq "$(($1 + 8))"); do gql "$LOGIN_BODY" | field '["data"]["login"]["refreshToken"]'; done >"$WORK/seeds"; }
run refreshToken "$CONNS" refresh.lua SEEDS="$WORK/seeds"

run login 8 graphql.lua BODY="$LOGIN_BODY"

# login with a wrong password (each one a login.failed event), the
# per-account throttle off so every attempt is checked.
WRONG_BODY='{"query":"mutation { login(input: {username: \"bench\", password: \"not the password\"}) { accessToken } }"}'
if wanted login_wrong; then
  stop_server
  THROTTLE=0 start_server
  run login_wrong 8 graphql.lua BODY="$WRONG_BODY" EXPECT=INVALID_CREDENTIALS
  stop_server
  start_server
fi

# On PostgreSQL, two servers on the one database (both on the server's
# core), each with its own wrk (half the connections): the events' counter
# row is shared by the fleet. req/s is the sum, p99 the worse of the two.
if [ -n "$PG_ADMIN" ] && { wanted login_2servers || wanted login_wrong_2servers || wanted refreshToken_2servers; }; then
  stop_server
  THROTTLE=0 start_server
  URL_ONE=$URL PID_ONE=$SERVER_PID
  THROTTLE=0 start_server
  URL_TWO=$URL PID_TWO=$SERVER_PID
  # run2 NAME CONNS SCRIPT [env...]: both wrks at once, after a warm-up.
  run2() {
    local name=$1 conns=$2 script=$3; shift 3
    wanted "$name" || return 0
    local half=$((conns / 2)) pass
    for pass in warm measure; do
      if [ "$script" = refresh.lua ]; then
        URL=$URL_ONE seeds "$half"; mv "$WORK/seeds" "$WORK/seeds.one"
        URL=$URL_ONE seeds "$half"; mv "$WORK/seeds" "$WORK/seeds.two"
      fi
      local time=$WARMUP latency=""
      [ "$pass" = measure ] && time=$DURATION latency=--latency
      env "$@" SEEDS="$WORK/seeds.one" taskset -c "$LOAD_CPU" wrk -t1 -c"$half" -d"${time}s" $latency -s "bench/wrk/$script" "$URL_ONE" >"$WORK/$name.one.wrk" &
      local first=$!
      env "$@" SEEDS="$WORK/seeds.two" taskset -c "$LOAD_CPU" wrk -t1 -c"$half" -d"${time}s" $latency -s "bench/wrk/$script" "$URL_TWO" >"$WORK/$name.two.wrk"
      wait "$first"
    done
    SERVER_PID=$PID_ONE record "$name.one" "$WORK/$name.one.wrk"
    SERVER_PID=$PID_TWO record "$name.two" "$WORK/$name.two.wrk"
    python3 - "$RESULTS" "$name" <<'PY'
import sys
path, name = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
keep = [r for r in rows if r[0] not in (f"{name}.one", f"{name}.two")]
pair = [r for r in rows if r[0] in (f"{name}.one", f"{name}.two")]
merged = [name, f"{sum(float(r[1]) for r in pair):.0f}", f"{max(float(r[2]) for r in pair):.2f}",
          f"{max(float(r[3]) for r in pair):.2f}", str(sum(int(r[4]) for r in pair)), f"{max(float(r[5]) for r in pair):.1f}"]
open(path, "w").write("".join("\t".join(r) + "\n" for r in keep + [merged]))
PY
  }
  run2 login_2servers 8 graphql.lua BODY="$LOGIN_BODY"
  run2 login_wrong_2servers 8 graphql.lua BODY="$WRONG_BODY" EXPECT=INVALID_CREDENTIALS
  run2 refreshToken_2servers "$CONNS" refresh.lua
  kill "$PID_ONE" 2>/dev/null; wait "$PID_ONE" 2>/dev/null || true
  SERVER_PID=$PID_TWO
  stop_server
  start_server
fi

# me while a login flood saturates hashing.
if wanted me_during_login_flood; then
env BODY="$LOGIN_BODY" taskset -c "$LOAD_CPU" wrk -t1 -c16 -d"$((DURATION + WARMUP + 2))s" -s bench/wrk/graphql.lua "$URL" >/dev/null &
FLOOD=$!
sleep 1
run me_during_login_flood 4 graphql.lua BODY='{"query":"{ me { id username role } }"}' AUTH="$ACCESS"
wait "$FLOOD"
fi

# me and refreshToken with access tokens under each asymmetric algorithm
# (refresh tokens stay HS256): a server restarted with JWT_ALGORITHM.
for ALG in EdDSA ES256 RS256; do
  wanted "me_$ALG" || wanted "refreshToken_$ALG" || continue
  stop_server
  start_server
  ACCESS_ALG=$(gql "$LOGIN_BODY" | field '["data"]["login"]["accessToken"]')
  run "me_$ALG" "$CONNS" graphql.lua BODY='{"query":"{ me { id username role } }"}' AUTH="$ACCESS_ALG"
  run "refreshToken_$ALG" "$CONNS" refresh.lua SEEDS="$WORK/seeds"
done
ALG=HS256

# me with a large blacklist.
stop_server
if ! wanted me_1M_blacklist; then
  :
elif [ -n "$PG_ADMIN" ]; then
  psql -q "$PG_URL" -c "INSERT INTO revocations (id, kind, revoked_at, expires_at)
    SELECT gen_random_uuid(), 'token', extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint + 86400
    FROM generate_series(1, $BLACKLIST_ROWS)" -c 'ANALYZE revocations'
  echo "blacklist rows: $(psql -tA "$PG_URL" -c 'SELECT count(*) FROM revocations')"
else
python3 - "$WORK/bench.db" "$BLACKLIST_ROWS" <<'PY'
import os, sqlite3, sys, time, uuid
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
rows = ((uuid.uuid4().bytes, "token", now, now + 86400) for _ in range(int(sys.argv[2])))
db.executemany("INSERT INTO revocations (id, kind, revoked_at, expires_at) VALUES (?, ?, ?, ?)", rows)
db.commit()
print(f"blacklist rows: {db.execute('SELECT count(*) FROM revocations').fetchone()[0]}")
PY
fi
if wanted me_1M_blacklist; then
  start_server
  run me_1M_blacklist "$CONNS" graphql.lua BODY='{"query":"{ me { id username role } }"}' AUTH="$ACCESS"
  stop_server
fi

echo
printf "%-24s %10s %9s %9s %7s %9s\n" scenario "req/s" "p50 ms" "p99 ms" errors "RSS MiB"
while IFS=$'\t' read -r name rps p50 p99 errors rss; do
  printf "%-24s %10s %9s %9s %7s %9s\n" "$name" "$rps" "$p50" "$p99" "$errors" "$rss"
done <"$RESULTS"

[ "$MICRO" = 1 ] && [ "$SCENARIOS" = all ] || exit 0
python3 - "$RESULTS" "$RTT" "$GUARD" "$ARGON" "$ENC" "$DEC" "$DRF_ME" "$DRF_REFRESH" "$POOL_RTT" "$POOL_GUARD" "$SIGN_VERIFY" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, errors, rss = line.split("\t")
    rows[name] = dict(rps=float(rps), p99=float(p99), rss=float(rss))
rtt, guard, argon, enc, dec = map(float, sys.argv[2:7])
drf_me, drf_refresh = map(float, sys.argv[7:9])
pool_rtt, pool_guard = map(float, sys.argv[9:11])
floor = rows["floor"]["rps"]
limit = 1 / (1 / floor + rtt)
argon_rate = 1 / argon
print()
print(f"micro: jwt encode {enc*1e6:.2f} us, decode {dec*1e6:.2f} us, guard (decode + query) {guard*1e6:.1f} us,")
print(f"       DB round trip (SELECT 1 by the guard's path) {rtt*1e6:.1f} us, Argon2id verify {argon*1e3:.2f} ms = {argon_rate:.1f}/s")
if pool_rtt:
    print(f"       through the sqlx pool instead: round trip {pool_rtt*1e6:.1f} us, guard {pool_guard*1e6:.1f} us")
print(f"one-round-trip limit = 1 / (1/{floor:.0f} + {rtt*1e6:.1f} us) = {limit:.0f} req/s")
def check(label, value, target, unit=""):
    ok = "ok" if value >= target else "MISS"
    print(f"  {label:<44} {value:>10.2f}{unit}  target >= {target}{unit}  {ok}")
check("me / limit", rows["me"]["rps"] / limit, 0.8)
check("verifyToken / limit", rows["verifyToken"]["rps"] / limit, 0.8)
check("me / floor", rows["me"]["rps"] / floor, 0.6)
check("verifyToken / floor", rows["verifyToken"]["rps"] / floor, 0.6)
check("me / DRF me", rows["me"]["rps"] / drf_me, 15)
check("refreshToken / DRF refresh", rows["refreshToken"]["rps"] / drf_refresh, 30)
check("login / raw Argon2 verify rate", rows["login"]["rps"] / argon_rate, 0.9)
p99 = rows["me_during_login_flood"]["p99"]
print(f"  {'p99 of me during the login flood (ms)':<44} {p99:>10.2f}  target < 10  {'ok' if p99 < 10 else 'MISS'}")
check("me with 1M blacklist rows / me", rows["me_1M_blacklist"]["rps"] / rows["me"]["rps"], 0.9)
def within(label, value, tolerance):
    ok = "ok" if value >= 1 - tolerance else "MISS"
    print(f"  {label:<44} {value:>10.2f}   target >= {1 - tolerance:.2f}  {ok}")
if "me_api_key" in rows:
    within("me with an API key / me with a JWT", rows["me_api_key"]["rps"] / rows["me"]["rps"], 0.1)
if "me_EdDSA" in rows:
    within("me under EdDSA / me under HS256", rows["me_EdDSA"]["rps"] / rows["me"]["rps"], 0.1)
print()
print("access tokens per algorithm (refresh tokens stay HS256): micro sign/verify, and me/refreshToken vs HS256")
print(f"  {'HS256':<6} sign {enc*1e6:8.1f} us  verify {dec*1e6:8.1f} us")
for entry in sys.argv[11].split():
    alg, sign, verify = entry.split(":")
    me, refresh = rows.get(f"me_{alg}"), rows.get(f"refreshToken_{alg}")
    line = f"  {alg:<6} sign {float(sign)*1e6:8.1f} us  verify {float(verify)*1e6:8.1f} us"
    if me and refresh:
        line += (f"  me {me['rps']:.0f} req/s ({me['rps'] / rows['me']['rps']:.2f} of HS256)"
                 f"  refreshToken {refresh['rps']:.0f} req/s ({refresh['rps'] / rows['refreshToken']['rps']:.2f})")
    print(line)
worst = max(r["rss"] for r in rows.values())
print(f"  {'largest peak RSS (MiB)':<44} {worst:>10.1f}  target < 64  {'ok' if worst < 64 else 'MISS'}")
PY
