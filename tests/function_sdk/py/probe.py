"""Where the shipped SDK is, and whether the function can change it."""

import os

import boto3


def handler(event, context):
    try:
        with open(os.path.join(os.path.dirname(boto3.__file__), "planted.py"), "w"):
            pass
        write = "written"
    except OSError as e:
        write = os.strerror(e.errno)
    return {"boto3_file": boto3.__file__, "write": write}
