"""Invokes `callee` through the SDK, as Lambda's samples do: botocore
forwards the invocation's `_X_AMZN_TRACE_ID` as `X-Amzn-Trace-Id`."""

import json
import os

import boto3

client = boto3.client("lambda")


def handler(event, context):
    answer = client.invoke(FunctionName="callee", Payload=b"{}")
    return {
        "statusCode": 200,
        "body": json.dumps(
            {
                "callee": json.loads(answer["Payload"].read()),
                "traceparent": event["headers"].get("traceparent"),
                "xray": os.environ.get("_X_AMZN_TRACE_ID"),
            }
        ),
    }
