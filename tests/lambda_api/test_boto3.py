"""Conformance of Updraft's AWS Lambda API subset (SPEC §4) with the real boto3.

Configured from the environment:
  UPDRAFT_ENDPOINT                              http://127.0.0.1:PORT of a running `updraft server`
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY     the server's credentials (SPEC §1)

Run one class with `python3 tests/lambda_api/test_boto3.py ClassName -v`;
tests/lambda_api.rs starts a server per class and does exactly that.

Functions are global on a server, so every test makes its own names. Anything
asynchronous (Event invokes, retries, destinations) is observed through a
sink: an HTTP server in this process on 127.0.0.1 that the functions post to,
polled with deadlines, never slept for.
"""

import base64
import hashlib
import io
import json
import os
import sys
import threading
import unittest
import urllib.error
import urllib.request
import uuid
import zipfile
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions

ENDPOINT = os.environ.get("UPDRAFT_ENDPOINT", "http://127.0.0.1:8080").rstrip("/")
REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE = "arn:aws:iam::000000000000:role/ignored"
# The Lambda id of the python3 running this suite: the system's, which the
# server finds on the instance PATH (a version it lacks is refused).
RUNTIME = f"python3.{sys.version_info.minor}"
# How long anything asynchronous may take before a test gives up.
DEADLINE = 90.0

MB = 1024 * 1024


def arn(name):
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client(validate=True):
    return boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        config=botocore.config.Config(
            retries={"max_attempts": 1, "mode": "standard"},
            read_timeout=120,
            connect_timeout=10,
            parameter_validation=validate,
        ),
    )


# Plain HTTP to the server without any proxy from the environment.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _direct.open(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def signed(method, path):
    """A SigV4-signed request to the Lambda API without a body: (status, JSON body)."""
    url = ENDPOINT + path
    req = botocore.awsrequest.AWSRequest(method=method, url=url)
    creds = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    botocore.auth.SigV4Auth(creds, "lambda", REGION).add_auth(req)
    status, _, body = http(method, url, headers=dict(req.headers.items()))
    return status, json.loads(body)


# --- function code ---------------------------------------------------------------

# One handler for most tests; TAG is baked in so versions are told apart.
# The event asks for behaviour: "record" posts to the sink, "hold" keeps the
# invocation busy while the sink's hold flag is set, "fail" raises.
HANDLER = r'''
import json, os, time, urllib.request

TAG = "__TAG__"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _sink(path, data=None):
    return _opener.open(os.environ["SINK"] + path, data=data, timeout=10).read()


def handler(event, context):
    ev = event if isinstance(event, dict) else {}
    print("handler-says", TAG, ev.get("say", ""))
    if ev.get("record"):
        _sink("/record/" + ev["record"], json.dumps({
            "tag": TAG,
            "event": ev,
            "request_id": context.aws_request_id,
            "version": context.function_version,
        }).encode())
    if ev.get("hold"):
        deadline = time.time() + 100
        while time.time() < deadline and _sink("/hold/" + ev["hold"]) == b"1":
            time.sleep(0.05)
    if ev.get("fail"):
        raise ValueError("asked to fail: " + str(ev["fail"]))
    cc = context.client_context
    return {
        "tag": TAG,
        "version": context.function_version,
        "greeting": os.environ.get("GREETING"),
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "custom": cc.custom if cc else None,
        "app_title": cc.client.app_title if cc and cc.client else None,
        "event_size": len(json.dumps(event)),
        "echo": ev.get("echo"),
    }
'''

# A destination: records whatever it receives under the key in $DEST_KEY.
DESTINATION = r'''
import json, os, urllib.request

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def handler(event, context):
    url = os.environ["SINK"] + "/record/" + os.environ["DEST_KEY"]
    _opener.open(url, data=json.dumps(event).encode(), timeout=10).read()
    return {"ok": True}
'''


def zip_of(source, filename="app.py"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(filename, source)
    return buf.getvalue()


def code(tag="v1"):
    return zip_of(HANDLER.replace("__TAG__", tag))


def payload_of(resp):
    return json.loads(resp["Payload"].read())


# --- the sink --------------------------------------------------------------------


class Sink:
    """Records posted by functions, and hold flags they poll."""

    def __init__(self):
        self.cond = threading.Condition()
        self.records = defaultdict(list)
        self.holds = set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, body):
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
                key = self.path.split("/record/", 1)[-1]
                with sink.cond:
                    sink.records[key].append(json.loads(data) if data else None)
                    sink.cond.notify_all()
                self._reply(b"ok")

            def do_GET(self):
                key = self.path.split("/hold/", 1)[-1]
                with sink.cond:
                    held = key in sink.holds
                self._reply(b"1" if held else b"0")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key, n=1, timeout=DEADLINE):
        """The first n records under key, waiting up to timeout for them."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.records[key]) >= n, timeout)
            got = list(self.records[key])
        if not ok:
            raise AssertionError(f"sink: expected {n} record(s) under {key!r} within {timeout}s, got {got}")
        return got

    def get(self, key):
        with self.cond:
            return list(self.records[key])

    def hold(self, key):
        with self.cond:
            self.holds.add(key)

    def release(self, key):
        with self.cond:
            self.holds.discard(key)


SINK = None


def setUpModule():
    global SINK
    SINK = Sink()


def tearDownModule():
    SINK.server.shutdown()


# --- base ------------------------------------------------------------------------


class LambdaTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.lam = client()

    def create(self, name=None, zip_bytes=None, env=None, **kw):
        """Creates a function (deleted after the test) and returns the response."""
        name = name or unique(self.id().split(".")[-1][:30].replace("_", "-"))
        variables = {"SINK": SINK.url}
        variables.update(env or {})
        args = dict(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zip_bytes if zip_bytes is not None else code()},
            Timeout=30,
            Environment={"Variables": variables},
        )
        args.update(kw)
        resp = self.lam.create_function(**args)
        self.addCleanup(self.delete_quietly, name)
        return resp

    def delete_quietly(self, name):
        try:
            self.lam.delete_function(FunctionName=name)
        except self.lam.exceptions.ResourceNotFoundException:
            pass

    def invoke(self, name, event=None, **kw):
        return self.lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kw)

    def invoke_json(self, name, event=None, **kw):
        resp = self.invoke(name, event, **kw)
        body = payload_of(resp)
        self.assertEqual(resp["StatusCode"], 200, body)
        self.assertNotIn("FunctionError", resp, body)
        return resp, body


# --- functions: create, read, list, update, delete ----------------------------------


class FunctionsTest(LambdaTest):
    def test_create_get_and_configuration(self):
        name = unique("crud")
        zip_bytes = code("created")
        resp = self.create(
            name,
            zip_bytes,
            env={"GREETING": "hi"},
            MemorySize=256,
            Timeout=42,
            Description="made by boto3",
            EphemeralStorage={"Size": 1024},
        )
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 201)
        self.assertEqual(resp["FunctionName"], name)
        self.assertEqual(resp["FunctionArn"], arn(name))
        self.assertEqual(resp["Version"], "$LATEST")
        self.assertEqual(resp["CodeSha256"], base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode())
        self.assertEqual(resp["CodeSize"], len(zip_bytes))

        for conf in (
            self.lam.get_function(FunctionName=name)["Configuration"],
            self.lam.get_function_configuration(FunctionName=name),
            self.lam.get_function_configuration(FunctionName=arn(name)),
        ):
            self.assertEqual(conf["FunctionName"], name)
            self.assertEqual(conf["FunctionArn"], arn(name))
            self.assertEqual(conf["Runtime"], RUNTIME)
            self.assertEqual(conf["Handler"], "app.handler")
            self.assertEqual(conf["MemorySize"], 256)
            self.assertEqual(conf["EphemeralStorage"], {"Size": 1024})
            self.assertEqual(conf["Timeout"], 42)
            self.assertEqual(conf["Description"], "made by boto3")
            self.assertEqual(conf["Environment"]["Variables"], {"SINK": SINK.url, "GREETING": "hi"})
            self.assertEqual(conf["Version"], "$LATEST")
            self.assertEqual(conf["State"], "Active")
            self.assertEqual(conf["CodeSha256"], resp["CodeSha256"])
        full = self.lam.get_function(FunctionName=name)
        self.assertIn("Location", full["Code"])
        # The SDK's own waiter, as deploy scripts use it.
        self.lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

        _, body = self.invoke_json(name)
        self.assertEqual(body["tag"], "created")
        self.assertEqual(body["greeting"], "hi")
        self.assertEqual(int(body["memory"]), 256)
        self.assertEqual(body["version"], "$LATEST")

    def test_create_with_publish_makes_version_1(self):
        name = unique("pub")
        resp = self.create(name, Publish=True)
        self.assertEqual(resp["Version"], "1")
        self.assertEqual(resp["FunctionArn"], arn(name) + ":1")
        conf = self.lam.get_function_configuration(FunctionName=name, Qualifier="1")
        self.assertEqual(conf["Version"], "1")
        resp, body = self.invoke_json(name, Qualifier="1")
        self.assertEqual(resp["ExecutedVersion"], "1")
        self.assertEqual(body["version"], "1")

    def test_update_code_and_configuration(self):
        name = unique("upd")
        self.create(name, code("old"), env={"GREETING": "before"}, MemorySize=128, Description="d1")
        new_zip = code("new")
        resp = self.lam.update_function_code(FunctionName=name, ZipFile=new_zip)
        self.assertEqual(resp["Version"], "$LATEST")
        self.assertEqual(resp["CodeSha256"], base64.b64encode(hashlib.sha256(new_zip).digest()).decode())
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        _, body = self.invoke_json(name)
        self.assertEqual(body["tag"], "new")
        self.assertEqual(body["greeting"], "before")

        resp = self.lam.update_function_configuration(
            FunctionName=name,
            MemorySize=512,
            Timeout=20,
            Description="d2",
            Environment={"Variables": {"SINK": SINK.url, "GREETING": "after"}},
        )
        self.assertEqual(resp["MemorySize"], 512)
        self.assertEqual(resp["Timeout"], 20)
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        conf = self.lam.get_function_configuration(FunctionName=name)
        self.assertEqual(conf["MemorySize"], 512)
        self.assertEqual(conf["Timeout"], 20)
        self.assertEqual(conf["Description"], "d2")
        self.assertEqual(conf["Environment"]["Variables"]["GREETING"], "after")
        self.assertEqual(conf["Handler"], "app.handler")
        self.assertEqual(conf["Runtime"], RUNTIME)
        _, body = self.invoke_json(name)
        self.assertEqual(body["tag"], "new", "configuration changes keep the code")
        self.assertEqual(body["greeting"], "after")
        self.assertEqual(int(body["memory"]), 512)

    def test_delete_function(self):
        name = unique("del")
        self.create(name)
        resp = self.lam.delete_function(FunctionName=name)
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 204)
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.get_function(FunctionName=name)
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.invoke(name)
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.delete_function(FunctionName=name)
        names = [f["FunctionName"] for p in self.lam.get_paginator("list_functions").paginate() for f in p["Functions"]]
        self.assertNotIn(name, names)

    def test_list_functions_pagination(self):
        prefix = unique("list")
        created = [f"{prefix}-{i}" for i in range(3)]
        for n in created:
            self.create(n)
        # A published version must not add a second entry: ListFunctions lists $LATEST.
        self.lam.publish_version(FunctionName=created[0])

        seen, marker, pages = [], None, 0
        while True:
            kw = {"MaxItems": 1}
            if marker:
                kw["Marker"] = marker
            page = self.lam.list_functions(**kw)
            pages += 1
            self.assertLessEqual(len(page["Functions"]), 1, page["Functions"])
            seen += [f["FunctionName"] for f in page["Functions"]]
            marker = page.get("NextMarker")
            if not marker:
                break
            self.assertLess(pages, 1000, "NextMarker never ends")
        mine = [n for n in seen if n.startswith(prefix)]
        self.assertEqual(sorted(mine), created)
        self.assertEqual(len(seen), len(set(seen)), f"a function listed twice: {seen}")
        self.assertGreaterEqual(pages, 3)

        via_paginator = []
        for page in self.lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}):
            self.assertLessEqual(len(page["Functions"]), 2)
            via_paginator += [f["FunctionName"] for f in page["Functions"]]
        self.assertEqual(sorted(n for n in via_paginator if n.startswith(prefix)), created)
        self.assertEqual(len(via_paginator), len(set(via_paginator)))
        listed = {f["FunctionName"]: f for f in self.lam.list_functions()["Functions"]}
        self.assertEqual(listed[created[1]]["Runtime"], RUNTIME)
        self.assertEqual(listed[created[1]]["FunctionArn"], arn(created[1]))


class LoggingConfigTest(LambdaTest):
    SOURCE = (
        "import logging\n"
        "log = logging.getLogger()\n"
        "def handler(event, context):\n"
        "    log.debug('hidden')\n"
        "    log.info('shown %s', event.get('n'))\n"
        "    return context.aws_request_id\n"
    )

    def tail(self, name, n):
        resp = self.lam.invoke(FunctionName=name, Payload=json.dumps({"n": n}).encode(), LogType="Tail")
        rid = json.loads(resp["Payload"].read())
        text = base64.b64decode(resp["LogResult"]).decode()
        return rid, text.splitlines()

    def test_json_format_round_trip_and_lines(self):
        name = unique("jsonlog")
        resp = self.create(
            name, zip_of(self.SOURCE), LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "INFO"}
        )
        expected = {
            "LogFormat": "JSON",
            "ApplicationLogLevel": "INFO",
            "SystemLogLevel": "INFO",
            "LogGroup": "/aws/lambda/" + name,
        }
        self.assertEqual(resp["LoggingConfig"], expected)
        self.assertEqual(self.lam.get_function_configuration(FunctionName=name)["LoggingConfig"], expected)
        rid, lines = self.tail(name, 5)
        records = [json.loads(l) for l in lines]
        app = [r for r in records if "level" in r]
        self.assertEqual([(r["level"], r["message"], r["requestId"]) for r in app], [("INFO", "shown 5", rid)])
        self.assertRegex(app[0]["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        platform = [r for r in records if "type" in r]
        self.assertEqual([r["type"] for r in platform], ["platform.start", "platform.report"])
        self.assertEqual(platform[0]["record"], {"requestId": rid, "version": "$LATEST"})
        self.assertEqual(platform[1]["record"]["status"], "success")
        self.assertGreaterEqual(platform[1]["record"]["metrics"]["billedDurationMs"], 1)

        # SystemLogLevel WARN drops the platform records (they are INFO).
        resp = self.lam.update_function_configuration(FunctionName=name, LoggingConfig={"SystemLogLevel": "WARN"})
        self.assertEqual(resp["LoggingConfig"], dict(expected, SystemLogLevel="WARN"))
        _, lines = self.tail(name, 6)
        self.assertEqual([json.loads(l)["message"] for l in lines], ["shown 6"])

        # Text again: the levels go, the text lines come back (and Python's
        # root logger is at its default WARNING again: no INFO line).
        resp = self.lam.update_function_configuration(FunctionName=name, LoggingConfig={"LogFormat": "Text"})
        self.assertEqual(resp["LoggingConfig"], {"LogFormat": "Text", "LogGroup": "/aws/lambda/" + name})
        _, lines = self.tail(name, 7)
        self.assertEqual([l.split(" ")[0] for l in lines], ["START", "END", "REPORT"], lines)

    def test_bad_logging_configs_name_the_field(self):
        name = unique("badlog")
        self.create(name)
        for config, field in [
            ({"ApplicationLogLevel": "DEBUG"}, "LoggingConfig.LogFormat"),
            ({"LogFormat": "JSON", "SystemLogLevel": "ERROR"}, "LoggingConfig.SystemLogLevel"),
            ({"LogFormat": "XML"}, "LoggingConfig.LogFormat"),
        ]:
            with self.assertRaises(self.lam.exceptions.InvalidParameterValueException) as cm:
                self.lam.update_function_configuration(FunctionName=name, LoggingConfig=config)
            self.assertIn(field, str(cm.exception))


class SnapStartTest(LambdaTest):
    SOURCE = (
        "import os, uuid\n"
        "TOKEN = uuid.uuid4().hex\n"
        "def handler(event, context):\n"
        "    if event.get('exit'):\n"
        "        os._exit(3)\n"
        "    return {'token': TOKEN, 'type': os.environ.get('AWS_LAMBDA_INITIALIZATION_TYPE')}\n"
    )

    def test_snap_start_forks_instances_from_one_init(self):
        name = unique("snap")
        resp = self.create(name, zip_of(self.SOURCE), SnapStart={"ApplyOn": "PublishedVersions"})
        on = {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
        self.assertEqual(resp["SnapStart"], on)
        self.assertEqual(self.lam.get_function_configuration(FunctionName=name)["SnapStart"], on)
        _, a = self.invoke_json(name)
        self.assertEqual(a["type"], "snap-start")
        # That instance crashes; the next is forked from the same template.
        resp = self.invoke(name, {"exit": True})
        self.assertEqual(resp["FunctionError"], "Unhandled")
        _, b = self.invoke_json(name)
        self.assertEqual(b["token"], a["token"])

        resp = self.lam.update_function_configuration(FunctionName=name, SnapStart={"ApplyOn": "None"})
        self.assertEqual(resp["SnapStart"], {"ApplyOn": "None", "OptimizationStatus": "Off"})
        _, c = self.invoke_json(name)
        self.assertEqual(c["type"], "on-demand")

    def test_bad_snap_start_names_the_field(self):
        name = unique("snapbad")
        self.create(name)
        with self.assertRaises(self.lam.exceptions.InvalidParameterValueException) as cm:
            self.lam.update_function_configuration(FunctionName=name, SnapStart={"ApplyOn": "Always"})
        self.assertIn("SnapStart.ApplyOn", str(cm.exception))
        with self.assertRaises(self.lam.exceptions.InvalidParameterValueException) as cm:
            self.create(unique("snapnode"), zip_of("exports.handler = async () => 1;\n", "app.js"),
                        Runtime="nodejs20.x", SnapStart={"ApplyOn": "PublishedVersions"})
        self.assertIn("SnapStart.ApplyOn", str(cm.exception))


class ErrorsTest(LambdaTest):
    def test_missing_function_is_resource_not_found(self):
        name = unique("missing")
        ex = self.lam.exceptions.ResourceNotFoundException
        for call in (
            lambda: self.lam.get_function(FunctionName=name),
            lambda: self.lam.get_function_configuration(FunctionName=name),
            lambda: self.invoke(name),
            lambda: self.lam.update_function_code(FunctionName=name, ZipFile=code()),
            lambda: self.lam.publish_version(FunctionName=name),
            lambda: self.lam.list_versions_by_function(FunctionName=name),
        ):
            with self.assertRaises(ex) as cm:
                call()
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        # A missing version or alias of an existing function too.
        existing = unique("exists")
        self.create(existing)
        with self.assertRaises(ex):
            self.lam.get_function(FunctionName=existing, Qualifier="7")
        with self.assertRaises(ex):
            self.invoke(existing, Qualifier="nosuchalias")

    def test_duplicate_create_is_resource_conflict(self):
        name = unique("dup")
        self.create(name)
        with self.assertRaises(self.lam.exceptions.ResourceConflictException) as cm:
            self.lam.create_function(
                FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="app.handler", Code={"ZipFile": code()}
            )
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 409)

    def test_bad_parameters_are_invalid_parameter_value(self):
        # Without client-side validation, so the server's is what is tested
        # (other SDKs do not validate ranges).
        lam = client(validate=False)
        cases = {
            "runtime": dict(Runtime="cobol85"),
            "empty handler": dict(Handler=""),
            "handler with whitespace": dict(Handler="app handler"),
            "memory 64": dict(MemorySize=64),
            "memory too big": dict(MemorySize=1_000_000),
            "ephemeral storage too small": dict(EphemeralStorage={"Size": 256}),
            "zip that is not a zip": dict(Code={"ZipFile": b"definitely not a zip"}),
        }
        for what, override in cases.items():
            with self.subTest(what):
                name = unique("bad")
                args = dict(
                    FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="app.handler", Code={"ZipFile": code()}
                )
                args.update(override)
                self.addCleanup(self.delete_quietly, name)
                with self.assertRaises(lam.exceptions.InvalidParameterValueException) as cm:
                    lam.create_function(**args)
                self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
                with self.assertRaises(lam.exceptions.ResourceNotFoundException):
                    lam.get_function(FunctionName=name)
        name = unique("badupd")
        self.create(name)
        with self.assertRaises(lam.exceptions.InvalidParameterValueException):
            lam.update_function_configuration(FunctionName=name, MemorySize=64)
        self.assertEqual(lam.get_function_configuration(FunctionName=name)["MemorySize"], 128)

    def test_unsigned_and_badly_signed_requests_are_refused(self):
        url = f"{ENDPOINT}/2015-03-31/functions/"
        status, headers, _ = http("GET", url)
        self.assertEqual(status, 401)
        wrong = boto3.client(
            "lambda",
            endpoint_url=ENDPOINT,
            region_name=REGION,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key="not-the-secret",
            config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        with self.assertRaises(wrong.exceptions.ClientError) as cm:
            wrong.list_functions()
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)



# --- tags, account settings, the operations Updraft does not implement -----------


class TagsAccountTest(LambdaTest):
    def test_tags_are_listed_added_replaced_and_removed(self):
        name = unique("tags")
        self.create(name, Tags={"team": "core", "env": "dev"})
        res = arn(name)
        self.assertEqual(self.lam.list_tags(Resource=res)["Tags"], {"team": "core", "env": "dev"})
        self.assertEqual(self.lam.get_function(FunctionName=name)["Tags"], {"team": "core", "env": "dev"})
        resp = self.lam.tag_resource(Resource=res, Tags={"env": "prod", "owner": "ada"})
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertEqual(self.lam.list_tags(Resource=res)["Tags"], {"team": "core", "env": "prod", "owner": "ada"})
        resp = self.lam.untag_resource(Resource=res, TagKeys=["team", "owner", "absent"])
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertEqual(self.lam.list_tags(Resource=res)["Tags"], {"env": "prod"})
        # The function's tags, whichever version GetFunction shows.
        self.lam.publish_version(FunctionName=name)
        self.assertEqual(self.lam.get_function(FunctionName=name, Qualifier="1")["Tags"], {"env": "prod"})
        self.lam.untag_resource(Resource=res, TagKeys=["env"])
        self.assertEqual(self.lam.list_tags(Resource=res)["Tags"], {})
        self.assertNotIn("Tags", self.lam.get_function(FunctionName=name))
        # They go with the function: a new one of that name has none.
        self.lam.tag_resource(Resource=res, Tags={"old": "yes"})
        self.lam.delete_function(FunctionName=name)
        self.create(name)
        self.assertEqual(self.lam.list_tags(Resource=res)["Tags"], {})

    def test_tag_limits_and_unknown_functions(self):
        lam = client(validate=False)
        name = unique("taglim")
        self.create(name)
        res = arn(name)
        invalid = lam.exceptions.InvalidParameterValueException
        cases = {
            "aws: prefix": {"aws:owner": "x"},
            "key over 128": {"k" * 129: "v"},
            "value over 256": {"k": "v" * 257},
            "51 tags": {f"k{i}": "v" for i in range(51)},
        }
        for what, tags in cases.items():
            with self.subTest(what):
                with self.assertRaises(invalid) as cm:
                    lam.tag_resource(Resource=res, Tags=tags)
                self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
                self.assertTrue(cm.exception.response["Error"]["Message"].startswith("Tags: "), cm.exception)
        self.assertEqual(lam.list_tags(Resource=res)["Tags"], {})
        with self.assertRaises(invalid) as cm:
            lam.untag_resource(Resource=res, TagKeys=["aws:x"])
        self.assertTrue(cm.exception.response["Error"]["Message"].startswith("TagKeys: "), cm.exception)
        # 50 in two calls; a 51st is refused and changes nothing.
        lam.tag_resource(Resource=res, Tags={f"a{i}": "v" for i in range(30)})
        lam.tag_resource(Resource=res, Tags={f"b{i}": "v" for i in range(20)})
        with self.assertRaises(invalid):
            lam.tag_resource(Resource=res, Tags={"one-more": "v", "a1": "changed"})
        tags = lam.list_tags(Resource=res)["Tags"]
        self.assertEqual((len(tags), tags["a1"]), (50, "v"))
        # CreateFunction's Tags are checked before anything is made.
        bad = unique("badtags")
        self.addCleanup(self.delete_quietly, bad)
        with self.assertRaises(invalid):
            lam.create_function(
                FunctionName=bad, Runtime=RUNTIME, Role=ROLE, Handler="app.handler",
                Code={"ZipFile": code()}, Tags={"aws:x": "y"},
            )
        with self.assertRaises(lam.exceptions.ResourceNotFoundException):
            lam.get_function(FunctionName=bad)
        # An unknown function; something that is not a function's ARN.
        missing = arn(unique("missing"))
        for call in (
            lambda: lam.list_tags(Resource=missing),
            lambda: lam.tag_resource(Resource=missing, Tags={"a": "b"}),
            lambda: lam.untag_resource(Resource=missing, TagKeys=["a"]),
        ):
            with self.assertRaises(lam.exceptions.ResourceNotFoundException) as cm:
                call()
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        for resource in (f"{res}:1", name):
            with self.assertRaises(invalid) as cm:
                lam.list_tags(Resource=resource)
            self.assertTrue(cm.exception.response["Error"]["Message"].startswith("Resource: "), cm.exception)

    def test_account_settings_are_this_servers(self):
        before = self.lam.get_account_settings()
        self.assertEqual(
            before["AccountLimit"],
            {
                "TotalCodeSize": 75 * 1024 * MB,
                "CodeSizeUnzipped": 250 * MB,
                "CodeSizeZipped": 50 * MB,
                "ConcurrentExecutions": 1000,
                "UnreservedConcurrentExecutions": before["AccountLimit"]["UnreservedConcurrentExecutions"],
            },
        )
        zip_bytes = code("account")
        name = unique("account")
        self.create(name, zip_bytes)
        self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
        after = self.lam.get_account_settings()
        self.assertEqual(
            after["AccountUsage"],
            {
                "FunctionCount": before["AccountUsage"]["FunctionCount"] + 1,
                "TotalCodeSize": before["AccountUsage"]["TotalCodeSize"] + len(zip_bytes),
            },
        )
        self.assertEqual(
            after["AccountLimit"]["UnreservedConcurrentExecutions"],
            before["AccountLimit"]["UnreservedConcurrentExecutions"] - 7,
        )
        # The path with and without its trailing slash (the model has one).
        for path in ("/2016-08-19/account-settings/", "/2016-08-19/account-settings"):
            status, body = signed("GET", path)
            self.assertEqual((status, body["AccountUsage"]), (200, after["AccountUsage"]), path)

    def test_unimplemented_operations_raise_typed_errors(self):
        name = unique("unimpl")
        self.create(name)
        # botocore's default retries: a refusal is not retried.
        lam = boto3.client(
            "lambda",
            endpoint_url=ENDPOINT,
            region_name=REGION,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            config=botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:deps:1"
        calls = {
            "ListLayers": lambda: lam.list_layers(),
            "GetLayerVersionByArn": lambda: lam.get_layer_version_by_arn(Arn=layer),
            "GetPolicy": lambda: lam.get_policy(FunctionName=name),
            "ListFunctionUrlConfigs": lambda: lam.list_function_url_configs(FunctionName=name),
            "ListProvisionedConcurrencyConfigs": lambda: lam.list_provisioned_concurrency_configs(FunctionName=name),
            "ListCodeSigningConfigs": lambda: lam.list_code_signing_configs(),
            "GetRuntimeManagementConfig": lambda: lam.get_runtime_management_config(FunctionName=name),
            "GetFunctionRecursionConfig": lambda: lam.get_function_recursion_config(FunctionName=name),
        }
        for op, call in calls.items():
            with self.subTest(op):
                with self.assertRaises(lam.exceptions.InvalidParameterValueException) as cm:
                    call()
                r = cm.exception.response
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 400)
                self.assertEqual(r["ResponseMetadata"]["RetryAttempts"], 0)
                self.assertTrue(
                    r["Error"]["Message"].startswith(f"{op}: Updraft does not implement this Lambda operation yet"),
                    r["Error"]["Message"],
                )
        # A path in Lambda's space that is no operation: Lambda's shape too.
        status, body = signed("GET", "/2018-10-31/no-such-thing")
        self.assertEqual(status, 400)
        self.assertEqual(body["Type"], "User")
        self.assertTrue(body["message"].startswith("GET /2018-10-31/no-such-thing is not an operation"), body)


# --- invoke ----------------------------------------------------------------------


class InvokeTest(LambdaTest):
    def assertTooLarge(self, call):
        # Lambda answers an oversized Invoke with the unmodelled error type
        # RequestEntityTooLargeException (boto3 models RequestTooLargeException
        # but never sees it), so boto3 raises a plain ClientError with that code.
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            call()
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], "RequestEntityTooLargeException", err)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 413)

    def test_request_response(self):
        name = unique("rr")
        self.create(name)
        resp, body = self.invoke_json(name, {"echo": [1, "two", {"three": 3}]})
        self.assertEqual(body["echo"], [1, "two", {"three": 3}])
        self.assertEqual(resp["ExecutedVersion"], "$LATEST")
        self.assertEqual(body["arn"], arn(name))
        self.assertTrue(resp["ResponseMetadata"]["RequestId"])

    def test_event_is_accepted_with_202_and_runs(self):
        name = unique("ev")
        self.create(name)
        key = unique("evkey")
        resp = self.invoke(name, {"record": key, "say": "async"}, InvocationType="Event")
        self.assertEqual(resp["StatusCode"], 202)
        self.assertEqual(resp["Payload"].read(), b"")
        rec = SINK.wait(key)[0]
        self.assertEqual(rec["event"], {"record": key, "say": "async"})
        self.assertEqual(rec["request_id"], resp["ResponseMetadata"]["RequestId"])

    def test_dry_run_is_204_and_runs_nothing(self):
        name = unique("dry")
        self.create(name)
        key = unique("drykey")
        resp = self.invoke(name, {"record": key}, InvocationType="DryRun")
        self.assertEqual(resp["StatusCode"], 204)
        # A later synchronous invoke records under another key; once it has,
        # a dry run that had run would have recorded first (same instance).
        later = unique("later")
        self.invoke_json(name, {"record": later})
        SINK.wait(later)
        self.assertEqual(SINK.get(key), [])
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.invoke(unique("nodry"), InvocationType="DryRun")

    def test_log_type_tail(self):
        name = unique("tail")
        self.create(name)
        marker = uuid.uuid4().hex
        resp, _ = self.invoke_json(name, {"say": marker}, LogType="Tail")
        log = base64.b64decode(resp["LogResult"]).decode()
        self.assertIn(f"handler-says v1 {marker}", log)
        self.assertIn("REPORT RequestId: " + resp["ResponseMetadata"]["RequestId"], log)
        self.assertIn("Billed Duration", log)
        self.assertLessEqual(len(base64.b64decode(resp["LogResult"])), 4096)
        # Without LogType no log comes back.
        resp, _ = self.invoke_json(name, {"say": marker})
        self.assertNotIn("LogResult", resp)

    def test_tail_is_the_last_4kb(self):
        name = unique("tailbig")
        self.create(name)
        first, last = uuid.uuid4().hex, uuid.uuid4().hex
        # ~10 KB of printed output: the head must be cut, the end kept.
        resp, _ = self.invoke_json(name, {"say": first + "x" * 10_000 + last}, LogType="Tail")
        log = base64.b64decode(resp["LogResult"])
        self.assertLessEqual(len(log), 4096)
        text = log.decode(errors="replace")
        self.assertNotIn(first, text)
        self.assertIn(last, text)
        self.assertIn("REPORT RequestId:", text)

    def test_function_error(self):
        name = unique("err")
        self.create(name)
        resp = self.invoke(name, {"fail": "boom"}, LogType="Tail")
        self.assertEqual(resp["StatusCode"], 200)
        self.assertEqual(resp["FunctionError"], "Unhandled")
        body = payload_of(resp)
        self.assertEqual(body["errorType"], "ValueError")
        self.assertEqual(body["errorMessage"], "asked to fail: boom")
        self.assertIn("REPORT RequestId:", base64.b64decode(resp["LogResult"]).decode())

    def test_client_context_reaches_the_function(self):
        name = unique("cc")
        self.create(name)
        cc = {"custom": {"tenant": "acme", "n": 7}, "client": {"app_title": "conformance"}, "env": {"locale": "en"}}
        resp, body = self.invoke_json(
            name, ClientContext=base64.b64encode(json.dumps(cc).encode()).decode()
        )
        self.assertEqual(body["custom"], {"tenant": "acme", "n": 7})
        self.assertEqual(body["app_title"], "conformance")
        _, body = self.invoke_json(name)
        self.assertIsNone(body["custom"])

    def test_sync_payload_limit_is_6mb(self):
        name = unique("big")
        self.create(name, MemorySize=512)
        near = {"echo": None, "pad": "x" * (6 * MB - 4096)}
        _, body = self.invoke_json(name, near)
        self.assertEqual(body["event_size"], len(json.dumps(near)))
        over = json.dumps({"pad": "x" * (6 * MB + 1024)}).encode()
        self.assertTooLarge(lambda: self.lam.invoke(FunctionName=name, Payload=over))

    def test_async_payload_limit_is_1mb(self):
        # Lambda's asynchronous limit is 1 MB (raised from 256 KB in 2025).
        name = unique("bigev")
        self.create(name, MemorySize=256)
        key = unique("bigevkey")
        ok = {"record": key, "pad": "y" * (300 * 1024)}
        resp = self.invoke(name, ok, InvocationType="Event")
        self.assertEqual(resp["StatusCode"], 202)
        self.assertEqual(len(SINK.wait(key)[0]["event"]["pad"]), 300 * 1024)
        over = json.dumps({"pad": "y" * (MB + 64 * 1024)}).encode()
        self.assertTooLarge(lambda: self.lam.invoke(FunctionName=name, Payload=over, InvocationType="Event"))


# --- versions and aliases --------------------------------------------------------


class VersionsAliasesTest(LambdaTest):
    def test_publish_and_list_versions(self):
        name = unique("ver")
        self.create(name, code("one"))
        v1 = self.lam.publish_version(FunctionName=name, Description="first")
        self.assertEqual(v1["ResponseMetadata"]["HTTPStatusCode"], 201)
        self.assertEqual(v1["Version"], "1")
        self.assertEqual(v1["FunctionArn"], arn(name) + ":1")
        self.assertEqual(v1["Description"], "first")
        # Nothing changed: Lambda returns the latest version instead of a new one.
        self.assertEqual(self.lam.publish_version(FunctionName=name)["Version"], "1")

        self.lam.update_function_code(FunctionName=name, ZipFile=code("two"))
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        v2 = self.lam.publish_version(FunctionName=name)
        self.assertEqual(v2["Version"], "2")
        self.lam.update_function_code(FunctionName=name, ZipFile=code("head"))

        versions = self.lam.list_versions_by_function(FunctionName=name)["Versions"]
        self.assertEqual([v["Version"] for v in versions], ["$LATEST", "1", "2"])
        self.assertEqual(versions[1]["FunctionArn"], arn(name) + ":1")
        pages = list(self.lam.get_paginator("list_versions_by_function").paginate(
            FunctionName=name, PaginationConfig={"PageSize": 1}))
        self.assertEqual([v["Version"] for p in pages for v in p["Versions"]], ["$LATEST", "1", "2"])

        # Versions are immutable snapshots; $LATEST is the editable head.
        for qualifier, tag in (("1", "one"), ("2", "two"), ("$LATEST", "head")):
            resp, body = self.invoke_json(name, Qualifier=qualifier)
            self.assertEqual(body["tag"], tag, qualifier)
            self.assertEqual(resp["ExecutedVersion"], qualifier)
            self.assertEqual(body["version"], qualifier)
        _, body = self.invoke_json(name)
        self.assertEqual(body["tag"], "head")

    def test_delete_one_version(self):
        name = unique("delver")
        self.create(name, code("one"), Publish=True)
        self.lam.update_function_code(FunctionName=name, ZipFile=code("two"), Publish=True)
        self.assertEqual(
            [v["Version"] for v in self.lam.list_versions_by_function(FunctionName=name)["Versions"]],
            ["$LATEST", "1", "2"],
        )
        self.lam.delete_function(FunctionName=name, Qualifier="1")
        self.assertEqual(
            [v["Version"] for v in self.lam.list_versions_by_function(FunctionName=name)["Versions"]],
            ["$LATEST", "2"],
        )
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.get_function(FunctionName=name, Qualifier="1")
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.invoke(name, Qualifier="1")
        _, body = self.invoke_json(name, Qualifier="2")
        self.assertEqual(body["tag"], "two")
        _, body = self.invoke_json(name)
        self.assertEqual(body["tag"], "two")

    def test_alias_lifecycle(self):
        name = unique("alias")
        self.create(name, code("one"), Publish=True)
        self.lam.update_function_code(FunctionName=name, ZipFile=code("two"), Publish=True)

        a = self.lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="prod")
        self.assertEqual(a["ResponseMetadata"]["HTTPStatusCode"], 201)
        self.assertEqual(a["AliasArn"], arn(name) + ":live")
        self.assertEqual(a["Name"], "live")
        self.assertEqual(a["FunctionVersion"], "1")
        self.assertEqual(a["Description"], "prod")
        with self.assertRaises(self.lam.exceptions.ResourceConflictException):
            self.lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.create_alias(FunctionName=name, Name="ghost", FunctionVersion="9")

        got = self.lam.get_alias(FunctionName=name, Name="live")
        self.assertEqual((got["Name"], got["FunctionVersion"]), ("live", "1"))
        resp, body = self.invoke_json(name, Qualifier="live")
        self.assertEqual(resp["ExecutedVersion"], "1")
        self.assertEqual(body["tag"], "one")

        upd = self.lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
        self.assertEqual(upd["FunctionVersion"], "2")
        resp, body = self.invoke_json(name, Qualifier="live")
        self.assertEqual(resp["ExecutedVersion"], "2")
        self.assertEqual(body["tag"], "two")

        upd = self.lam.update_alias(
            FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 0.25}}
        )
        self.assertEqual(upd["FunctionVersion"], "2")
        self.assertEqual(upd["RoutingConfig"]["AdditionalVersionWeights"], {"1": 0.25})
        self.assertEqual(
            self.lam.get_alias(FunctionName=name, Name="live")["RoutingConfig"]["AdditionalVersionWeights"], {"1": 0.25}
        )

        self.lam.create_alias(FunctionName=name, Name="beta", FunctionVersion="$LATEST")
        aliases = self.lam.list_aliases(FunctionName=name)["Aliases"]
        self.assertEqual(sorted(x["Name"] for x in aliases), ["beta", "live"])
        self.assertEqual({x["Name"]: x["FunctionVersion"] for x in aliases}, {"beta": "$LATEST", "live": "2"})

        resp = self.lam.delete_alias(FunctionName=name, Name="beta")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 204)
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.get_alias(FunctionName=name, Name="beta")
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.invoke(name, Qualifier="beta")
        self.assertEqual([x["Name"] for x in self.lam.list_aliases(FunctionName=name)["Aliases"]], ["live"])

    def test_weighted_alias_splits_traffic(self):
        name = unique("weight")
        self.create(name, code("one"), Publish=True)
        self.lam.update_function_code(FunctionName=name, ZipFile=code("two"), Publish=True)
        self.lam.create_alias(
            FunctionName=name, Name="split", FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
        )
        executed, ran = Counter(), Counter()
        for _ in range(400):
            resp, body = self.invoke_json(name, Qualifier="split")
            executed[resp["ExecutedVersion"]] += 1
            ran[body["version"]] += 1
            self.assertEqual(body["tag"], {"1": "one", "2": "two"}[body["version"]])
        self.assertEqual(executed, ran, "ExecutedVersion names the version that ran")
        self.assertEqual(set(executed), {"1", "2"}, executed)
        for v in ("1", "2"):
            self.assertTrue(140 <= executed[v] <= 260, f"version {v} got {executed[v]} of 400: {executed}")


# --- concurrency -----------------------------------------------------------------


class ConcurrencyTest(LambdaTest):
    def test_put_get_delete_function_concurrency(self):
        name = unique("conc")
        self.create(name)
        self.assertNotIn("ReservedConcurrentExecutions", self.lam.get_function_concurrency(FunctionName=name))
        resp = self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
        self.assertEqual(resp["ReservedConcurrentExecutions"], 5)
        self.assertEqual(self.lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"], 5)
        self.assertEqual(self.lam.get_function(FunctionName=name)["Concurrency"]["ReservedConcurrentExecutions"], 5)
        resp = self.lam.delete_function_concurrency(FunctionName=name)
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertNotIn("ReservedConcurrentExecutions", self.lam.get_function_concurrency(FunctionName=name))
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.put_function_concurrency(FunctionName=unique("noconc"), ReservedConcurrentExecutions=1)
        lax = client(validate=False)
        with self.assertRaises(lax.exceptions.InvalidParameterValueException):
            lax.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=-1)

    def test_reserved_concurrency_reached_throttles_after_the_bounded_wait(self):
        name = unique("throttle")
        self.create(name, Timeout=120)
        self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        hold, started = unique("hold"), unique("started")
        SINK.hold(hold)
        self.addCleanup(SINK.release, hold)
        first = {}

        def busy():
            try:
                first["resp"] = self.invoke(name, {"record": started, "hold": hold})
                first["body"] = payload_of(first["resp"])
            except Exception as e:  # reported below
                first["error"] = e

        t = threading.Thread(target=busy)
        t.start()
        try:
            SINK.wait(started)  # the one allowed invocation is running
            with self.assertRaises(self.lam.exceptions.TooManyRequestsException) as cm:
                self.invoke(name, {"echo": "second"})
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 429)
        finally:
            SINK.release(hold)
            t.join(150)
        self.assertNotIn("error", first, first)
        self.assertNotIn("FunctionError", first["resp"], first.get("body"))
        self.assertEqual(first["body"]["tag"], "v1")
        # Capacity is back once the first one finished.
        self.invoke_json(name, {"echo": "third"})

    def test_reserved_zero_throttles_at_once(self):
        name = unique("zero")
        self.create(name)
        self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        key = unique("zerokey")
        with self.assertRaises(self.lam.exceptions.TooManyRequestsException):
            self.invoke(name, {"record": key})
        self.lam.delete_function_concurrency(FunctionName=name)
        self.invoke_json(name, {"record": key})
        self.assertEqual(len(SINK.get(key)), 1, "the throttled invoke never ran")

    def test_zero_set_while_an_event_runs_holds_once_it_ends(self):
        # The permit the running event holds comes back after the cap went
        # to 0: it must not let a synchronous invoke through.
        dest, done = unique("zerodest"), unique("zerodone")
        self.create(dest, zip_of(DESTINATION), env={"DEST_KEY": done})
        name = unique("zerorun")
        self.create(name, Timeout=120)
        self.lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn(dest)}}
        )
        hold, started = unique("hold"), unique("started")
        SINK.hold(hold)
        self.addCleanup(SINK.release, hold)
        self.assertEqual(self.invoke(name, {"record": started, "hold": hold}, InvocationType="Event")["StatusCode"], 202)
        SINK.wait(started)
        self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        during = unique("during")
        with self.assertRaises(self.lam.exceptions.TooManyRequestsException):
            self.invoke(name, {"record": during})
        SINK.release(hold)
        # The success record reaches the destination only after the run ended.
        SINK.wait(done)
        after = unique("after")
        with self.assertRaises(self.lam.exceptions.TooManyRequestsException):
            self.invoke(name, {"record": after})
        self.assertEqual(SINK.get(during) + SINK.get(after), [], "a throttled invoke ran")


# --- function URLs ---------------------------------------------------------------


class FunctionUrlTest(LambdaTest):
    def fn_url(self, name):
        return f"{ENDPOINT}/fn/{name}"

    def test_auth_type_none_is_public(self):
        name = unique("urlnone")
        self.create(name, code("public"))
        resp = self.lam.create_function_url_config(FunctionName=name, AuthType="NONE")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 201)
        self.assertEqual(resp["AuthType"], "NONE")
        self.assertEqual(resp["FunctionUrl"].rstrip("/"), self.fn_url(name))
        self.assertEqual(resp["FunctionArn"], arn(name))
        got = self.lam.get_function_url_config(FunctionName=name)
        self.assertEqual(got["AuthType"], "NONE")
        self.assertEqual(got["FunctionUrl"], resp["FunctionUrl"])

        status, _, body = http("GET", self.fn_url(name))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["tag"], "public")

        resp = self.lam.delete_function_url_config(FunctionName=name)
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 204)
        status, _, body = http("GET", self.fn_url(name))
        self.assertEqual(status, 401, "deleting the NONE config makes the URL private again")

    def test_auth_type_aws_iam_requires_a_signature(self):
        name = unique("urliam")
        self.create(name, code("private"))
        resp = self.lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
        self.assertEqual(resp["AuthType"], "AWS_IAM")
        self.assertEqual(self.lam.get_function_url_config(FunctionName=name)["AuthType"], "AWS_IAM")
        status, _, _ = http("GET", self.fn_url(name))
        self.assertEqual(status, 401)

        req = botocore.awsrequest.AWSRequest(method="GET", url=self.fn_url(name))
        creds = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        botocore.auth.SigV4Auth(creds, "lambda", REGION).add_auth(req)
        status, _, body = http("GET", self.fn_url(name), headers=dict(req.headers.items()))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["tag"], "private")

    def test_url_config_of_missing_function(self):
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.create_function_url_config(FunctionName=unique("nourl"), AuthType="NONE")

    def test_cors_round_trips_and_answers_preflights(self):
        name = unique("urlcors")
        self.create(name, code("cors"))
        cors = {
            "AllowOrigins": ["https://shop.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["content-type"],
            "ExposeHeaders": ["x-total"],
            "MaxAge": 600,
            "AllowCredentials": True,
        }
        resp = self.lam.create_function_url_config(FunctionName=name, AuthType="NONE", Cors=cors)
        self.assertEqual(resp["Cors"], cors)
        self.assertEqual(self.lam.get_function_url_config(FunctionName=name)["Cors"], cors)

        preflight = {
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
        }
        status, headers, body = http("OPTIONS", self.fn_url(name), headers=preflight)
        headers = {k.lower(): v for k, v in headers.items()}
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["access-control-allow-origin"], "https://shop.example")
        self.assertEqual(headers["access-control-allow-methods"], "GET, POST")
        self.assertEqual(headers["access-control-max-age"], "600")
        self.assertEqual(headers["access-control-allow-credentials"], "true")

        # Update replaces the Cors; a bad one is refused naming the field.
        resp = self.lam.update_function_url_config(FunctionName=name, Cors={"AllowOrigins": ["*"]})
        self.assertEqual(resp["Cors"], {"AllowOrigins": ["*"]})
        status, headers, _ = http("OPTIONS", self.fn_url(name), headers=preflight)
        headers = {k.lower(): v for k, v in headers.items()}
        self.assertEqual(headers["access-control-allow-origin"], "*")
        with self.assertRaises(self.lam.exceptions.InvalidParameterValueException) as cm:
            self.lam.update_function_url_config(FunctionName=name, Cors={"MaxAge": 86401})
        self.assertIn("Cors.MaxAge", str(cm.exception))

        # Without Cors, no CORS headers.
        self.lam.delete_function_url_config(FunctionName=name)
        self.lam.create_function_url_config(FunctionName=name, AuthType="NONE")
        self.assertNotIn("Cors", self.lam.get_function_url_config(FunctionName=name))
        status, headers, _ = http("OPTIONS", self.fn_url(name), headers=preflight)
        self.assertFalse([k for k in headers if k.lower().startswith("access-control-")], headers)


# --- asynchronous invocation configuration ---------------------------------------


class EventInvokeConfigTest(LambdaTest):
    def test_failed_event_goes_to_on_failure_destination_after_retries(self):
        dest, dest_key = unique("dest"), unique("destkey")
        self.create(dest, zip_of(DESTINATION), env={"DEST_KEY": dest_key})
        name = unique("failing")
        self.create(name)
        resp = self.lam.put_function_event_invoke_config(
            FunctionName=name,
            MaximumRetryAttempts=1,
            MaximumEventAgeInSeconds=600,
            DestinationConfig={"OnFailure": {"Destination": arn(dest)}},
        )
        self.assertEqual(resp["MaximumRetryAttempts"], 1)
        self.assertEqual(resp["MaximumEventAgeInSeconds"], 600)
        self.assertEqual(resp["DestinationConfig"]["OnFailure"]["Destination"], arn(dest))
        self.assertEqual(resp["FunctionArn"], arn(name) + ":$LATEST")

        attempts = unique("attempts")
        event = {"record": attempts, "fail": "always"}
        resp = self.invoke(name, event, InvocationType="Event")
        self.assertEqual(resp["StatusCode"], 202)
        request_id = resp["ResponseMetadata"]["RequestId"]

        record = SINK.wait(dest_key)[0]
        tries = SINK.get(attempts)
        self.assertEqual(len(tries), 2, "one try and MaximumRetryAttempts=1 retry")
        self.assertEqual({t["request_id"] for t in tries}, {request_id}, "retries keep the request id")
        self.assertEqual(record["requestPayload"], event)
        self.assertEqual(record["requestContext"]["condition"], "RetriesExhausted")
        self.assertEqual(record["requestContext"]["approximateInvokeCount"], 2)
        self.assertEqual(record["requestContext"]["requestId"], request_id)
        self.assertEqual(record["requestContext"]["functionArn"], arn(name) + ":$LATEST")
        self.assertEqual(record["responsePayload"]["errorType"], "ValueError")

    def test_default_is_two_retries(self):
        name = unique("default")
        self.create(name)
        attempts, ok = unique("tries"), unique("ok")
        self.invoke(name, {"record": attempts, "fail": "always"}, InvocationType="Event")
        SINK.wait(attempts, 3)
        # A later event on the same function runs too; by then no fourth try came.
        self.invoke(name, {"record": ok}, InvocationType="Event")
        SINK.wait(ok)
        self.assertEqual(len(SINK.get(attempts)), 3)

    def test_event_older_than_its_maximum_age_goes_to_on_failure(self):
        # Reserved concurrency 0 throttles every attempt; as on Lambda a
        # throttled event waits for capacity until it is too old (60 s is the
        # smallest maximum age Lambda accepts).
        dest, dest_key = unique("destage"), unique("destagekey")
        self.create(dest, zip_of(DESTINATION), env={"DEST_KEY": dest_key})
        name = unique("aging")
        self.create(name)
        self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        self.lam.put_function_event_invoke_config(
            FunctionName=name,
            MaximumEventAgeInSeconds=60,
            DestinationConfig={"OnFailure": {"Destination": arn(dest)}},
        )
        attempts = unique("never")
        event = {"record": attempts}
        resp = self.invoke(name, event, InvocationType="Event")
        self.assertEqual(resp["StatusCode"], 202)
        record = SINK.wait(dest_key, timeout=60 + DEADLINE)[0]
        self.assertEqual(record["requestContext"]["condition"], "EventAgeExceeded")
        self.assertEqual(record["requestContext"]["requestId"], resp["ResponseMetadata"]["RequestId"])
        self.assertEqual(record["requestPayload"], event)
        self.assertEqual(SINK.get(attempts), [], "a throttled event never ran")

    def test_zero_retries_and_unknown_function(self):
        dest, dest_key = unique("dest0"), unique("dest0key")
        self.create(dest, zip_of(DESTINATION), env={"DEST_KEY": dest_key})
        name = unique("noretry")
        self.create(name)
        self.lam.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": arn(dest)}}
        )
        attempts = unique("once")
        self.invoke(name, {"record": attempts, "fail": "once"}, InvocationType="Event")
        record = SINK.wait(dest_key)[0]
        self.assertEqual(len(SINK.get(attempts)), 1)
        self.assertEqual(record["requestContext"]["approximateInvokeCount"], 1)
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.put_function_event_invoke_config(FunctionName=unique("nocfg"), MaximumRetryAttempts=1)


# --- wasm components through the Lambda API ------------------------------------------

WASM_COMPONENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "wasm", "c", "handler.wasm")


class WasmTest(LambdaTest):
    def test_a_component_zip_is_created_and_invoked(self):
        with open(WASM_COMPONENT, "rb") as f:
            component = f.read()
        name = unique("wasm")
        resp = self.create(name, zip_of(component, "service.wasm"), Runtime="wasm", Handler="component")
        self.assertEqual(resp["Runtime"], "wasm")
        # The payload is POSTed to `/`; the response body is the result.
        event = {"hello": "wasm"}
        resp, body = self.invoke_json(name, event, LogType="Tail")
        self.assertEqual(body["runtime"], "c", body)
        self.assertEqual(body["method"], "POST", body)
        self.assertEqual(body["path"], "/", body)
        self.assertEqual(body["body_len"], len(json.dumps(event).encode()), body)
        self.assertEqual(resp["ExecutedVersion"], "$LATEST")
        tail = base64.b64decode(resp["LogResult"]).decode()
        self.assertIn("fixture-log /", tail)
        self.assertIn("REPORT RequestId:", tail)
        # Published versions of a component run like any other.
        v = self.lam.publish_version(FunctionName=name)["Version"]
        resp, body = self.invoke_json(name, event, Qualifier=v)
        self.assertEqual(resp["ExecutedVersion"], v)

    def test_a_core_module_or_no_component_is_invalid_parameter(self):
        lam = client(validate=False)
        for what, zip_bytes, says in [
            ("core module", zip_of(b"\0asm\x01\0\0\0", "m.wasm"), "core module"),
            ("no .wasm", zip_of("print('hi')", "app.py"), "found none"),
        ]:
            with self.subTest(what):
                name = unique("badwasm")
                self.addCleanup(self.delete_quietly, name)
                with self.assertRaises(lam.exceptions.InvalidParameterValueException) as cm:
                    lam.create_function(
                        FunctionName=name, Runtime="wasm", Role=ROLE, Handler="x", Code={"ZipFile": zip_bytes}
                    )
                self.assertIn(says, cm.exception.response["Error"]["Message"])
                with self.assertRaises(lam.exceptions.ResourceNotFoundException):
                    lam.get_function(FunctionName=name)


if __name__ == "__main__":
    unittest.main()
