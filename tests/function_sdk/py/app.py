"""A handler in the shape of Lambda's Python samples: the SDK client is made
once, at import time, and reused by every invocation; the SDK is not in the
code package (the runtime provides it)."""

import json
import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

lambda_client = boto3.client("lambda")


def lambda_handler(event, context):
    response = lambda_client.list_functions(MaxItems=50)
    names = sorted(f["FunctionName"] for f in response["Functions"])
    logger.info("found %d functions", len(names))
    return {
        "statusCode": 200,
        "body": json.dumps({"functions": names}),
        "boto3": boto3.__version__,
        "boto3_file": boto3.__file__,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
    }
