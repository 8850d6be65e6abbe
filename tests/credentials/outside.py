"""Uses a function's credentials from outside the function, with boto3.

    python3 outside.py forged          # a tampered token is refused
    python3 outside.py until-expired   # polls (bounded) until they expire

Environment: UPDRAFT_ENDPOINT (the server), CREDS (the JSON of the
function's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN).
"""

import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

creds = json.loads(os.environ["CREDS"])


def client(token):
    return boto3.client(
        "lambda",
        endpoint_url=os.environ["UPDRAFT_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}),
    )


def code_of(c):
    try:
        c.invoke(FunctionName="callee", Payload=b"{}")
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"]


mode = sys.argv[1]
token = creds["AWS_SESSION_TOKEN"]
if mode == "forged":
    # One character of the claims changed: the HMAC no longer matches.
    i = token.index(".") + 5
    forged = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
    got = code_of(client(forged))
    assert got == "InvalidSignatureException", got
    # No token at all: ASIA keys need one.
    got = code_of(client(None))
    assert got == "InvalidSignatureException", got
    print("forged and token-less credentials refused")
elif mode == "until-expired":
    deadline = time.monotonic() + 60
    while True:
        got = code_of(client(token))
        if got == "ExpiredTokenException":
            break
        assert got == "ok", got
        assert time.monotonic() < deadline, "the credentials never expired"
        time.sleep(0.2)
    print("the credentials expired")
else:
    raise SystemExit(f"unknown mode {mode}")
