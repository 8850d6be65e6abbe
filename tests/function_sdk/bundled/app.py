import boto3


def handler(event, context):
    return {"boto3": boto3.__version__, "boto3_file": boto3.__file__}
