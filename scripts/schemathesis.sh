#!/usr/bin/env bash
# Runs schemathesis (an API fuzzer we did not write) against a fresh latchkey
# with a full-permission key, over the whole OpenAPI document, with every check
# (`--checks all`: no server error, every answer as documented, every request
# the document allows accepted and every one it forbids refused) in every phase,
# including the stateful one, which follows the document's links from each
# create to the read, update and delete of what it made. It must find nothing.
# Destructive key operations act on throwaway keys (scripts/schemathesis_hooks.py).
#
#   scripts/schemathesis.sh [path/to/latchkey]     (default: target/debug/latchkey)
#
# Needs `schemathesis` on PATH (pip install schemathesis==4.32.5).
set -euo pipefail

bin=${1:-target/debug/latchkey}
work=$(mktemp -d)
log="$work/serve.log"
cleanup() {
  [ -n "${server:-}" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  if [ "${keep:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
export LATCHKEY_LOG=warn

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

shop=$("$bin" --data-dir "$work" shop create --name "Schemathesis Repairs" --owner-email st@example.com --json | json "['shop_id']")
perms=()
for p in orders:read orders:write orders:delete clients:read clients:write clients:delete \
         devices:read devices:write devices:delete keys:read keys:write; do
  perms+=(--permission "$p")
done
created=$("$bin" --data-dir "$work" keys create --shop "$shop" --name "Schemathesis full access" \
      "${perms[@]}" --rate-limit 10000 --json)
key=$(json "['key']['secret']" <<<"$created")
key_id=$(json "['key']['id']" <<<"$created")
"$bin" --data-dir "$work" test-data reset --shop "$shop" >/dev/null
# Legacy keys for upgradeKey to upgrade (the hooks hand them out one by one).
{ echo "key,name,permissions"
  for i in $(seq -w 1 60); do echo "legacySchemathesis00000000$i,Legacy integration $i,orders:read clients:read"; done
} >"$work/legacy.csv"
"$bin" --data-dir "$work" legacy import --shop "$shop" --file "$work/legacy.csv" --json |
  python3 -c "import json,sys; print('\n'.join(k['id'] for k in json.load(sys.stdin)['keys']))" >"$work/legacy-ids"

LATCHKEY_LOG=info "$bin" serve --data-dir "$work" --listen 127.0.0.1:0 --legacy-sunset 2099-01-01T00:00:00Z \
  --failed-auth-limit 100000 --max-keys-per-shop 100000 2>"$log" &
server=$!
for _ in $(seq 1 100); do
  url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //') || true
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "latchkey did not start:"; cat "$log"; exit 1; }
echo "latchkey at $url"

status=0
LATCHKEY_URL="$url" LATCHKEY_KEY="$key" LATCHKEY_KEY_ID="$key_id" LATCHKEY_LEGACY_IDS="$work/legacy-ids" \
PYTHONPATH="$(dirname "$0")${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks \
schemathesis run "$url/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 2 \
  --request-timeout 10 || status=$?
if grep -q '"status":5\|status=5[0-9][0-9]' "$log"; then
  echo "server log shows 5xx answers:"; grep 'status=5' "$log" | head -20
  status=1
fi
exit $status
