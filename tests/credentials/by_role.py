"""CreateFunction with a Role the server defines (`--role invoker=…`): the
function's credentials get that role's permissions; an undefined role grants
nothing. Environment: UPDRAFT_ENDPOINT and the admin keys (aws_env)."""

import io
import json
import os
import zipfile

import boto3

lam = boto3.client("lambda", endpoint_url=os.environ["UPDRAFT_ENDPOINT"], region_name="us-east-1")

buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.write("tests/fixtures/credentials/src/caller.py", "caller.py")
code = buf.getvalue()


def create(name, role):
    lam.create_function(FunctionName=name, Runtime="python3", Role=role,
                        Handler="caller.handler", Code={"ZipFile": code}, Timeout=30)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def call(name, payload):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return json.loads(resp["Payload"].read())


create("by-role", "arn:aws:iam::000000000000:role/invoker")
got = call("by-role", {"op": "invoke", "target": "callee"})
assert got.get("ok", {}).get("called") == "callee", got
got = call("by-role", {"op": "invoke", "target": "private"})
assert got.get("error") == "AccessDeniedException", got

create("no-role", "arn:aws:iam::000000000000:role/not-defined-here")
got = call("no-role", {"op": "invoke", "target": "callee"})
assert got.get("error") == "AccessDeniedException", got
print("a defined role grants its permissions; an undefined one grants nothing")
