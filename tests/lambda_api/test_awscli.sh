#!/usr/bin/env bash
# The real AWS CLI against Updraft's Lambda API: create a function from a zip,
# invoke it with --log-type Tail, delete it.
#
# Needs UPDRAFT_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the server's
# credentials) and `aws` + `python3` on PATH. tests/lambda_api.rs runs it.
set -euo pipefail

: "${UPDRAFT_ENDPOINT:?set UPDRAFT_ENDPOINT to the server, e.g. http://127.0.0.1:8080}"
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export AWS_PAGER=""

fail() { echo "FAIL: $*" >&2; exit 1; }
awsl() { aws lambda --endpoint-url "$UPDRAFT_ENDPOINT" --cli-read-timeout 120 "$@"; }

work=$(mktemp -d)
name="awscli-$$-$RANDOM"
cleanup() {
  awsl delete-function --function-name "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/src"
cat >"$work/src/app.py" <<'EOF'
def handler(event, context):
    print("cli-log-line", event.get("who"))
    return {"hello": event.get("who"), "version": context.function_version}
EOF
python3 -m zipfile -c "$work/fn.zip" "$work/src/app.py"
python3 - "$work/fn.zip" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert names == ["app.py"], names
EOF

echo "--- create-function $name"
# The system python3's Lambda id: the server runs only versions it has.
runtime=$(python3 -c 'import sys; print(f"python3.{sys.version_info.minor}")')
awsl create-function --function-name "$name" --runtime "$runtime" --handler app.handler \
  --role arn:aws:iam::000000000000:role/ignored --zip-file "fileb://$work/fn.zip" \
  --memory-size 128 --timeout 10 --output json >"$work/create.json"
python3 - "$work/create.json" "$name" "$runtime" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["FunctionName"] == sys.argv[2], c
assert c["Runtime"] == sys.argv[3] and c["Handler"] == "app.handler", c
EOF

echo "--- get-function-configuration"
[ "$(awsl get-function-configuration --function-name "$name" --query Handler --output text)" = app.handler ] \
  || fail "get-function-configuration does not show the handler"

echo "--- invoke --log-type Tail"
printf '{"who": "cli"}' >"$work/payload.json"
awsl invoke --function-name "$name" --log-type Tail --payload "fileb://$work/payload.json" \
  --output json "$work/out.json" >"$work/invoke.json"
python3 - "$work/invoke.json" "$work/out.json" <<'EOF'
import base64, json, sys
meta = json.load(open(sys.argv[1]))
assert meta["StatusCode"] == 200, meta
assert "FunctionError" not in meta, meta
assert meta["ExecutedVersion"] == "$LATEST", meta
result = json.load(open(sys.argv[2]))
assert result == {"hello": "cli", "version": "$LATEST"}, result
log = base64.b64decode(meta["LogResult"]).decode()
assert "cli-log-line cli" in log, log
assert "REPORT RequestId:" in log, log
print("tail:", log.strip().replace("\n", " | "))
EOF

echo "--- list-functions"
awsl list-functions --query 'Functions[].FunctionName' --output text | tr '\t' '\n' | grep -qx "$name" \
  || fail "list-functions does not show $name"

echo "--- delete-function"
awsl delete-function --function-name "$name"
if awsl get-function --function-name "$name" >"$work/gone.out" 2>&1; then
  fail "get-function still finds $name after delete"
fi
grep -q ResourceNotFoundException "$work/gone.out" || fail "expected ResourceNotFoundException, got: $(cat "$work/gone.out")"

echo "OK: aws cli create / invoke --log-type Tail / delete"
