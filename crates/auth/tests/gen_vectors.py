#!/usr/bin/env python3
"""Regenerates sigv4_vectors.json: requests signed by botocore, the signer behind
boto3 and the AWS CLI, which `updraft-auth`'s verifier must accept.

    pip install boto3 && python3 crates/auth/tests/gen_vectors.py

Each vector holds the request as it goes on the wire (method, path and query,
every header including the ones urllib3 adds after signing, body in base64), so
the Rust test replays exactly what a server would receive.
"""

import base64
import datetime
import io
import json
import os
import zipfile
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY_ID = "AKUDTESTVECTORS00001"
SECRET = "t3stVect0rS3cret/+abcdefghijklmnopqrstuv"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDEXAMPLE"
# Fixed signing time; the Rust test sets `now` to this instant.
WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
ENDPOINT = "http://127.0.0.1:8080"


def wire(name, method, url, headers, body, region, source):
    """The request as the server sees it: urllib3 adds Host and Content-Length."""
    parts = urlsplit(url)
    path = parts.path + (("?" + parts.query) if parts.query else "")
    body = body or b""
    if isinstance(body, str):
        body = body.encode()
    hs = [[k, v.decode() if isinstance(v, bytes) else v] for k, v in headers.items()]
    names = {k.lower() for k, _ in hs}
    if "host" not in names:
        hs.insert(0, ["Host", parts.netloc])
    if body and "content-length" not in names:
        hs.append(["Content-Length", str(len(body))])
    return {
        "name": name,
        "source": source,
        "region": region,
        "method": method,
        "path_and_query": path,
        "headers": hs,
        "body_b64": base64.b64encode(body).decode(),
    }


def sigv4(name, method, url, region, body=b"", headers=None, token=None):
    """Signs with botocore's SigV4Auth directly, as boto3's lambda client does."""
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    creds = Credentials(ACCESS_KEY_ID, SECRET, token)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN):
        botocore.auth.SigV4Auth(creds, "lambda", region).add_auth(req)
    return wire(name, method, url, req.headers, body, region, "botocore.auth.SigV4Auth")


class Captured(Exception):
    pass


def client_vectors():
    """Signs through a real boto3 lambda client, captured just before sending."""
    out = []
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client = session.client("lambda", endpoint_url=ENDPOINT)
    label = {}

    def capture(request, **_):
        out.append(
            wire(label["name"], request.method, request.url, request.headers,
                 request.body, "us-east-1", "boto3 lambda client")
        )
        raise Captured()

    client.meta.events.register("before-send.lambda", capture)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return event\n")
    calls = [
        ("boto3 ListFunctions", lambda: client.list_functions()),
        ("boto3 Invoke qualified name", lambda: client.invoke(
            FunctionName="my-fn:prod", Payload=b'{"hello": "world"}')),
        ("boto3 Invoke Qualifier=$LATEST", lambda: client.invoke(
            FunctionName="my-fn", Qualifier="$LATEST", Payload=b"{}")),
        ("boto3 CreateFunction", lambda: client.create_function(
            FunctionName="my-fn", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/x",
            Handler="app.handler", Code={"ZipFile": buf.getvalue()})),
        ("boto3 GetFunctionUrlConfig", lambda: client.get_function_url_config(
            FunctionName="my-fn")),
    ]
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN):
        for name, call in calls:
            label["name"] = name
            try:
                call()
            except Captured:
                pass
    return out


def main():
    json_body = b'{"FunctionName": "my-fn", "Runtime": "python3.12"}'
    vectors = [
        sigv4("POST JSON us-east-1", "POST", ENDPOINT + "/2015-03-31/functions", "us-east-1",
              json_body, {"Content-Type": "application/json"}),
        sigv4("GET no body eu-west-1", "GET", ENDPOINT + "/2015-03-31/functions", "eu-west-1"),
        sigv4("POST invoke qualified, Qualifier=%24LATEST", "POST",
              ENDPOINT + "/2015-03-31/functions/my-fn%3Aprod/invocations?Qualifier=%24LATEST",
              "eu-west-1", b'{"k": 1}'),
        sigv4("GET default port host", "GET",
              "http://localhost/2015-03-31/functions/my-fn%3Aprod?Qualifier=%24LATEST",
              "us-east-1"),
        sigv4("session token signed", "GET", ENDPOINT + "/2015-03-31/functions", "us-east-1",
              token=SESSION_TOKEN),
        sigv4("x-amz-content-sha256 present", "POST", ENDPOINT + "/api/v1/functions",
              "us-east-1", b"payload",
              {"X-Amz-Content-SHA256":
               "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"}),
    ]
    vectors += client_vectors()
    doc = {
        "generator": f"botocore {botocore.__version__}, boto3 {boto3.__version__}",
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET,
        "now_unix": int(WHEN.timestamp()),
        "vectors": vectors,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sigv4_vectors.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(vectors)} vectors to {path}")


if __name__ == "__main__":
    main()
