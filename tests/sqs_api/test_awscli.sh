#!/usr/bin/env bash
# The real AWS CLI against Updraft's SQS entry point: create a queue, send a
# message with an attribute, receive it (checking SQS's digests), delete it.
#
# Needs UPDRAFT_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the server's
# credentials) and `aws` + `python3` on PATH. tests/sqs_api.rs runs it.
set -euo pipefail

: "${UPDRAFT_ENDPOINT:?set UPDRAFT_ENDPOINT to the server, e.g. http://127.0.0.1:8080}"
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export AWS_PAGER=""

fail() { echo "FAIL: $*" >&2; exit 1; }
sqs() { aws sqs --endpoint-url "$UPDRAFT_ENDPOINT" --output json "$@"; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)'"$1"')'; }

name="awscli-$$-$RANDOM"
echo "--- create-queue $name"
url=$(sqs create-queue --queue-name "$name" --attributes VisibilityTimeout=60 | field '["QueueUrl"]')
[ "$url" = "$UPDRAFT_ENDPOINT/000000000000/$name" ] || fail "queue url $url"

echo "--- send-message"
sent=$(sqs send-message --queue-url "$url" --message-body '{"order": 42}' \
  --message-attributes '{"source": {"DataType": "String", "StringValue": "cli"}}')
id=$(echo "$sent" | field '["MessageId"]')
body_md5=$(echo "$sent" | field '["MD5OfMessageBody"]')
[ "$body_md5" = "$(printf '%s' '{"order": 42}' | md5sum | cut -d' ' -f1)" ] || fail "MD5OfMessageBody $body_md5"

echo "--- receive-message"
got=$(sqs receive-message --queue-url "$url" --message-attribute-names All \
  --message-system-attribute-names ApproximateReceiveCount --wait-time-seconds 5)
echo "$got" | python3 -c '
import json, sys
m = json.load(sys.stdin)["Messages"]
assert len(m) == 1, m
m = m[0]
assert m["MessageId"] == sys.argv[1], m
assert m["Body"] == "{\"order\": 42}", m
assert m["MessageAttributes"] == {"source": {"DataType": "String", "StringValue": "cli"}}, m
assert m["Attributes"] == {"ApproximateReceiveCount": "1"}, m
' "$id" || fail "receive-message answered $got"
handle=$(echo "$got" | field '["Messages"][0]["ReceiptHandle"]')

echo "--- delete-message"
sqs delete-message --queue-url "$url" --receipt-handle "$handle"
left=$(sqs get-queue-attributes --queue-url "$url" --attribute-names All)
echo "$left" | python3 -c '
import json, sys
a = json.load(sys.stdin)["Attributes"]
assert a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0", a
assert a["VisibilityTimeout"] == "60", a
' || fail "after delete-message: $left"

echo "--- an unknown queue"
if out=$(sqs send-message --queue-url "$UPDRAFT_ENDPOINT/000000000000/no-such-$name" --message-body x 2>&1); then
  fail "send-message to an unknown queue succeeded: $out"
fi
echo "$out" | grep -q "NonExistentQueue" || fail "unknown queue answered: $out"

sqs delete-queue --queue-url "$url"
echo "ok"
