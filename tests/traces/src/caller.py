"""Calls other functions through the SDK, as Lambda's samples do: botocore
forwards the invocation's `_X_AMZN_TRACE_ID` as `X-Amzn-Trace-Id` on every
call, so each invocation they cause is in this one's trace."""

import json
import os

import boto3

lambda_client = boto3.client("lambda")
sqs = boto3.client("sqs")
# No endpoint given: AWS_ENDPOINT_URL_EVENTBRIDGE, set by the platform, leads to Updraft.
events = boto3.client("events")


def handler(event, context):
    answer = lambda_client.invoke(FunctionName="callee", Payload=b"{}")
    lambda_client.invoke(FunctionName="later", InvocationType="Event", Payload=b"{}")
    url = sqs.get_queue_url(QueueName="jobs")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    events.put_events(
        Entries=[
            {"Source": "traces", "DetailType": "t", "Detail": "{}", "EventBusName": "orders"}
        ]
    )
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
