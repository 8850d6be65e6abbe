"""EventBridge's PutEvents through the real boto3, for tests/event_bus.rs.

Configured from the environment (UPDRAFT_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY); prints one JSON document:

  put_events.py put          entries on stdin (JSON; "Time" as epoch seconds)
                             -> the PutEvents response
  put_events.py list-rules   an operation Updraft does not implement -> its error
  put_events.py bad-secret   PutEvents signed with a wrong secret -> its error
"""

import datetime
import json
import os
import sys

import boto3
import botocore.config
import botocore.exceptions


def client(secret=None):
    return boto3.client(
        "events",
        endpoint_url=os.environ["UPDRAFT_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def error_of(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"]["Message"],
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }
    raise SystemExit("the call succeeded")


def main(mode):
    if mode == "put":
        entries = json.load(sys.stdin)
        for e in entries:
            if "Time" in e:
                e["Time"] = datetime.datetime.fromtimestamp(e["Time"], datetime.timezone.utc)
        resp = client().put_events(Entries=entries)
        resp.pop("ResponseMetadata", None)
        return resp
    if mode == "list-rules":
        return error_of(lambda: client().list_rules(EventBusName="orders"))
    if mode == "bad-secret":
        entry = {"Source": "shop", "DetailType": "x", "Detail": "{}", "EventBusName": "orders"}
        return error_of(lambda: client("not-the-secret").put_events(Entries=[entry]))
    raise SystemExit(f"unknown mode {mode!r}")


print(json.dumps(main(sys.argv[1])))
