"""Development check for the Updraft runtime bootstraps (stdlib unittest, no pytest).

Runs python3/bootstrap.py and nodejs/bootstrap.js as subprocesses against a
throwaway Runtime API server and sample handlers written to temp dirs.

    python3 crates/runtime-process/bootstrap/tests/test_bootstraps.py
"""

import json
import os
import queue
import re
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_BOOTSTRAP = os.path.join(ROOT, "python3", "bootstrap.py")
NODE_BOOTSTRAP = os.path.join(ROOT, "nodejs", "bootstrap.js")
PREFIX = "/2018-06-01/runtime"
TIMEOUT = 10


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        api = self.server.api
        api.connections.add(self.client_address)
        if self.path != PREFIX + "/invocation/next":
            return self._reply(404)
        item = api.events.get()
        if item is None:  # shutting down
            return self._reply(500, b"bye", {"Connection": "close"})
        event, headers = item
        self._reply(200, json.dumps(event).encode(), headers)

    def do_POST(self):
        api = self.server.api
        api.connections.add(self.client_address)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = self.path[len(PREFIX) + 1:].split("/")
        if parts == ["init", "error"]:
            kind, req_id = "init_error", None
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            kind, req_id = parts[2], parts[1]
        else:
            return self._reply(404)
        # Snapshot the process output at the moment the result arrives.
        api.results.put((kind, req_id, dict(self.headers), body, api.output_snapshot()))
        self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # killed bootstraps leave broken connections behind


class FakeRuntime:
    """Runtime API server plus one bootstrap subprocess."""

    def __init__(self, cmd, task_root, handler, api=None, env=None):
        self.events, self.results = queue.Queue(), queue.Queue()
        self.connections = set()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.api = self
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        env_vars = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % self.httpd.server_address[1],
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_LAMBDA_FUNCTION_NAME": "fn-name",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn-name",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
            "AWS_REGION": "us-east-1",
        }
        if api:
            env_vars["AWS_LAMBDA_RUNTIME_API"] = api
        env_vars.update(env or {})
        env = env_vars
        self.lock = threading.Lock()
        self.out, self.err = [], []
        self.proc = subprocess.Popen(cmd, cwd=task_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pipes = [(self.proc.stdout.fileno(), self.out), (self.proc.stderr.fileno(), self.err)]
        self.pumps = []
        for fd, sink in self.pipes:
            os.set_blocking(fd, False)
            t = threading.Thread(target=self._pump, args=(fd, sink), daemon=True)
            t.start()
            self.pumps.append(t)

    def _pump(self, fd, sink):
        # Keeps the pipe from filling up; snapshots drain it under the same lock.
        while True:
            select.select([fd], [], [])
            with self.lock:
                if not self._drain(fd, sink):
                    return

    @staticmethod
    def _drain(fd, sink):
        """Moves what the pipe holds now into `sink`; False at end of file."""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            sink.append(chunk)

    @staticmethod
    def _text(sink):
        return b"".join(sink).decode("utf-8", "replace")

    def output_snapshot(self):
        """What the bootstrap wrote so far: all of it is in the pipes or read."""
        with self.lock:
            for fd, sink in self.pipes:
                self._drain(fd, sink)
            return self._text(self.out), self._text(self.err)

    def stderr(self):
        """All the bootstrap's stderr, once it has exited."""
        assert self.proc.poll() is not None, "the bootstrap is still running"
        for t in self.pumps:
            t.join(timeout=TIMEOUT)
            assert not t.is_alive(), "the bootstrap's pipes stayed open"
        with self.lock:
            return self._text(self.err)

    def invoke(self, event, headers=None):
        req_id = str(uuid.uuid4())
        h = {
            "Lambda-Runtime-Aws-Request-Id": req_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:fn-name",
            "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
            "Content-Type": "application/json",
        }
        h.update(headers or {})
        self.events.put((event, h))
        kind, got_id, resp_headers, body, output = self.result()
        assert got_id == req_id, (got_id, req_id)
        return kind, resp_headers, json.loads(body), output

    def result(self):
        try:
            return self.results.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("no result; stdout=%r stderr=%r" % self.output_snapshot())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for t in self.pumps:
            t.join(timeout=TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.events.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()


class Base(unittest.TestCase):
    CMD = None
    TRACE = "stackTrace"  # the error body's stack field

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="updraft-bootstrap-")
        self.runtimes = []

    def tearDown(self):
        for rt in self.runtimes:
            rt.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, rel, text):
        p = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(textwrap.dedent(text))

    def start(self, handler, api=None, cmd=None, env=None):
        rt = FakeRuntime(cmd or self.CMD, self.dir, handler, api, env)
        self.runtimes.append(rt)
        return rt

    def assert_ok(self, rt, event, expected, **kw):
        kind, _, body, output = rt.invoke(event, **kw)
        self.assertEqual(kind, "response", (body, rt.output_snapshot()))
        self.assertEqual(body, expected)
        return output

    def assert_init_error(self, handler, error_type, message_part, **kw):
        rt = self.start(handler, **kw)
        kind, _, headers, body, _ = rt.result()
        self.assertEqual(kind, "init_error")
        body = json.loads(body)
        self.assertEqual(body["errorType"], error_type, body)
        self.assertEqual(headers["Lambda-Runtime-Function-Error-Type"], error_type)
        self.assertIn(message_part, body["errorMessage"])
        self.assertIsInstance(body[self.TRACE], list)
        self.assertEqual(rt.proc.wait(timeout=TIMEOUT), 1)
        return body, rt.stderr()


class Common:
    """Checks shared by both runtimes (mixed into the TestCases below)."""

    def test_runtime_api_unreachable_exits_1(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens here now
        self.write("app.py", "def handler(e, c): return 1\n")
        self.write("app.js", "exports.handler = async () => 1;\n")
        rt = self.start("app.handler", api="127.0.0.1:%d" % port)
        self.assertEqual(rt.proc.wait(timeout=TIMEOUT), 1)
        self.assertIn("invocation/next failed", rt.stderr())


CLIENT_CONTEXT = {"custom": {"k": "v"}, "env": {"platform": "test"}, "client": {"app_title": "app"}}
COGNITO = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}


class PythonBootstrapTest(Common, Base):
    CMD = [sys.executable, PY_BOOTSTRAP]

    def test_sync_context_logging_keepalive(self):
        self.write("app.py", """
            import os
            def handler(event, context):
                print("hello from handler", event["n"])
                cc = context.client_context
                return {
                    "event": event,
                    "function_name": context.function_name,
                    "function_version": context.function_version,
                    "invoked_function_arn": context.invoked_function_arn,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "aws_request_id": context.aws_request_id,
                    "log_group_name": context.log_group_name,
                    "log_stream_name": context.log_stream_name,
                    "remaining": context.get_remaining_time_in_millis(),
                    "custom": cc and cc.custom,
                    "app_title": cc and cc.client.app_title,
                    "identity_id": context.identity.cognito_identity_id,
                    "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                }
        """)
        rt = self.start("app.handler")
        for n in range(3):
            kind, _, body, (out, _) = rt.invoke(
                {"n": n},
                headers={"Lambda-Runtime-Client-Context": json.dumps(CLIENT_CONTEXT),
                         "Lambda-Runtime-Cognito-Identity": json.dumps(COGNITO)},
            )
            self.assertEqual(kind, "response", rt.output_snapshot())
            self.assertIn("hello from handler %d\n" % n, out)  # flushed before the POST
            self.assertEqual(body["event"], {"n": n})
            self.assertEqual(body["function_name"], "fn-name")
            self.assertEqual(body["function_version"], "$LATEST")
            self.assertEqual(body["memory_limit_in_mb"], "256")  # a string, as in awslambdaric
            self.assertEqual(body["log_group_name"], "/aws/lambda/fn-name")
            self.assertTrue(body["invoked_function_arn"].endswith(":function:fn-name"))
            self.assertTrue(0 < body["remaining"] <= 30000)
            self.assertEqual(body["custom"], {"k": "v"})
            self.assertEqual(body["app_title"], "app")
            self.assertEqual(body["identity_id"], "id-1")
            self.assertTrue(body["trace"].startswith("Root=1-"))
        self.assertEqual(len(rt.connections), 1, "keep-alive: one connection expected")

    def test_logging_has_lambdas_form(self):
        self.write("app.py", """
            import logging
            logger = logging.getLogger()
            logger.setLevel(logging.INFO)
            logger.info("at import")
            def handler(event, context):
                logger.warning("in handler %s", event)
                return context.aws_request_id
        """)
        rt = self.start("app.handler")
        kind, _, request_id, (out, _) = rt.invoke(7)
        self.assertEqual(kind, "response")
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
        self.assertRegex(out, r"(?m)^\[INFO\]\t%s\t\tat import$" % stamp)
        self.assertRegex(out, r"(?m)^\[WARNING\]\t%s\t%s\tin handler 7$" % (stamp, re.escape(request_id)))

    def test_json_log_format_and_level(self):
        self.write("app.py", """
            import logging
            logger = logging.getLogger("orders")
            def handler(event, context):
                logging.getLogger().setLevel(logging.DEBUG)
                print("a print stays text")
                logger.debug("dropped below WARN")
                logger.info("dropped too")
                logger.warning("low stock %s", event, extra={"sku": "A1"})
                try:
                    raise KeyError("gone")
                except KeyError:
                    logger.exception("lookup failed")
                return context.aws_request_id
        """)
        rt = self.start("app.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"})
        kind, _, request_id, (out, _) = rt.invoke(7)
        self.assertEqual(kind, "response")
        lines = out.splitlines()
        self.assertIn("a print stays text", lines)
        records = [json.loads(l) for l in lines if l.startswith("{")]
        self.assertEqual([r["message"] for r in records], ["low stock 7", "lookup failed"], out)
        warn, error = records
        self.assertRegex(warn["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(
            {k: warn[k] for k in ("level", "logger", "requestId", "sku")},
            {"level": "WARNING", "logger": "orders", "requestId": request_id, "sku": "A1"},
        )
        self.assertNotIn("errorType", warn)
        self.assertEqual((error["level"], error["errorType"], error["errorMessage"]), ("ERROR", "KeyError", "'gone'"))
        self.assertIsInstance(error["stackTrace"], list)
        self.assertIn("app.py:handler:", error["location"])

    def sdk_runtime(self, with_sdk):
        """A runtime directory as the server makes it: the bootstrap, and
        the SDK (a stand-in boto3) in sdk/ beside it."""
        rt_dir = os.path.join(self.dir, "runtime")
        os.makedirs(rt_dir)
        shutil.copy(PY_BOOTSTRAP, rt_dir)
        if with_sdk:
            self.write("runtime/sdk/boto3/__init__.py", "ORIGIN = 'shipped'\n")
        # -S: no site-packages, which may hold a boto3 of its own (this venv's).
        return [sys.executable, "-S", os.path.join(rt_dir, "bootstrap.py")]

    def test_shipped_sdk_comes_last_on_sys_path(self):
        cmd = self.sdk_runtime(with_sdk=True)
        self.write("task/app.py", """
            import sys, boto3
            def handler(event, context):
                return {"origin": boto3.ORIGIN, "first": sys.path[0], "last": sys.path[-1]}
        """)
        self.dir, root = os.path.join(self.dir, "task"), self.dir
        self.assert_ok(self.start("app.handler", cmd=cmd), {}, {
            "origin": "shipped", "first": self.dir, "last": os.path.join(root, "runtime", "sdk")})
        # The function's own copy wins.
        self.write("boto3/__init__.py", "ORIGIN = 'bundled'\n")
        kind, _, body, _ = self.start("app.handler", cmd=cmd).invoke({})
        self.assertEqual((kind, body["origin"]), ("response", "bundled"))

    def test_missing_sdk_says_how_to_install_it(self):
        cmd = self.sdk_runtime(with_sdk=False)
        self.write("app.py", "import boto3\ndef handler(e, c): pass\n")
        self.write("other.py", "import requests\ndef handler(e, c): pass\n")
        self.assert_init_error("app.handler", "Runtime.ImportModuleError",
                               "No module named 'boto3' (the AWS SDK for Python is not installed on this "
                               "server: start it with `updraft server --install-sdk`", cmd=cmd)
        body, _ = self.assert_init_error("other.handler", "Runtime.ImportModuleError",
                                         "No module named 'requests'", cmd=cmd)
        self.assertNotIn("install-sdk", body["errorMessage"])

    def test_async_none_and_nested(self):
        self.write("pkg/__init__.py", "")
        self.write("pkg/mod.py", """
            import asyncio
            async def fn(event, context):
                await asyncio.sleep(0.01)
                return {"async": event}
            def none(event, context):
                return None
        """)
        rt = self.start("pkg/mod.fn")
        self.assert_ok(rt, 1, {"async": 1})
        self.assert_ok(rt, 2, {"async": 2})  # persistent event loop works twice
        rt2 = self.start("pkg.mod.none")
        self.assert_ok(rt2, {}, None)

    def test_exception_and_marshal_error(self):
        self.write("app.py", """
            def boom(event, context):
                if event == "set":
                    return {1, 2}
                raise ValueError("bad value")
        """)
        rt = self.start("app.boom")
        kind, headers, body, (_, err) = rt.invoke({})
        self.assertEqual(kind, "error")
        self.assertEqual(headers["Lambda-Runtime-Function-Error-Type"], "Unhandled")
        self.assertEqual(body["errorType"], "ValueError")
        self.assertEqual(body["errorMessage"], "bad value")
        self.assertEqual(len(body["stackTrace"]), 1)
        self.assertIn('app.py", line 5, in boom', body["stackTrace"][0])
        self.assertIn("[ERROR] ValueError: bad value\nTraceback (most recent call last):", err)
        kind, _, body, _ = rt.invoke("set")
        self.assertEqual((kind, body["errorType"]), ("error", "Runtime.MarshalError"))
        self.assertIn("Unable to marshal response: Object of type set", body["errorMessage"])

    def test_async_exception_trace(self):
        self.write("app.py", """
            async def boom(event, context):
                raise KeyError("k")
        """)
        rt = self.start("app.boom")
        kind, _, body, _ = rt.invoke({})
        self.assertEqual((kind, body["errorType"]), ("error", "KeyError"))
        self.assertEqual(len(body["stackTrace"]), 1, body["stackTrace"])

    def test_init_errors(self):
        self.write("syn.py", "def handler(:\n")
        self.write("ok.py", "x = 1\ndef handler(e, c): pass\n")
        self.write("raises.py", "raise RuntimeError('at import')\n")
        _, err = self.assert_init_error("missing.handler", "Runtime.ImportModuleError",
                                        "Unable to import module 'missing': No module named 'missing'")
        self.assertIn("[ERROR] Runtime.ImportModuleError", err)
        self.assert_init_error("syn.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syn'")
        self.assert_init_error("ok.nope", "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'ok'")
        self.assert_init_error("ok.x", "Runtime.HandlerNotFound", "not callable")
        self.assert_init_error("nodot", "Runtime.MalformedHandlerName", "Bad handler 'nodot'")
        body, _ = self.assert_init_error("raises.handler", "RuntimeError", "at import")
        self.assertIn("raises.py", body["stackTrace"][0])


class NodeBootstrapTest(Common, Base):
    CMD = ["node", NODE_BOOTSTRAP]
    TRACE = "trace"

    CONTEXT_FN = """(event, context) => ({
        event,
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        awsRequestId: context.awsRequestId,
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        remaining: context.getRemainingTimeInMillis(),
        clientContext: context.clientContext,
        identity: context.identity,
        waits: context.callbackWaitsForEmptyEventLoop,
        trace: process.env._X_AMZN_TRACE_ID,
    })"""

    def test_cjs_sync_context_logging_keepalive(self):
        self.write("index.js", """
            const ctx = %s;
            exports.handler = (event, context) => {
                console.log("hello from handler", event.n);
                process.stdout.write("raw write\\n");
                return ctx(event, context);
            };
        """ % self.CONTEXT_FN)
        rt = self.start("index.handler")
        for n in range(3):
            kind, _, body, (out, _) = rt.invoke(
                {"n": n},
                headers={"Lambda-Runtime-Client-Context": json.dumps(CLIENT_CONTEXT),
                         "Lambda-Runtime-Cognito-Identity": json.dumps(COGNITO)},
            )
            self.assertEqual(kind, "response", rt.output_snapshot())
            self.assertIn("INFO\thello from handler %d\n" % n, out)
            self.assertEqual(body["event"], {"n": n})
            self.assertEqual(body["functionName"], "fn-name")
            self.assertEqual(body["functionVersion"], "$LATEST")
            self.assertEqual(body["memoryLimitInMB"], "256")
            self.assertEqual(body["logStreamName"], "2024/01/01/[$LATEST]abc")
            self.assertTrue(body["invokedFunctionArn"].endswith(":function:fn-name"))
            self.assertTrue(0 < body["remaining"] <= 30000)
            self.assertEqual(body["clientContext"], CLIENT_CONTEXT)
            self.assertEqual(body["identity"], COGNITO)
            self.assertIs(body["waits"], True)
            self.assertTrue(body["trace"].startswith("Root=1-"))
            self.assertEqual(len(body["awsRequestId"]), 36)
        self.assertEqual(len(rt.connections), 1, "keep-alive: one connection expected")

    def test_json_log_format_and_level(self):
        self.write("index.js", """
            exports.handler = async (event, context) => {
                console.debug("dropped below INFO");
                console.log("order", event.n);
                console.warn({ sku: "A1" });
                console.error("lookup failed", new TypeError("gone"));
                return context.awsRequestId;
            };
        """)
        rt = self.start("index.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"})
        kind, _, request_id, (out, err) = rt.invoke({"n": 7})
        self.assertEqual(kind, "response")
        records = [json.loads(l) for l in (out + err).splitlines()]
        records.sort(key=lambda r: ["INFO", "WARN", "ERROR"].index(r["level"]))
        self.assertEqual([r["message"] for r in records[:2]], ["order 7", {"sku": "A1"}])
        self.assertTrue(records[2]["message"].startswith("lookup failed TypeError: gone"), records[2])
        for r in records:
            self.assertEqual(r["requestId"], request_id)
            self.assertRegex(r["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((records[2]["errorType"], records[2]["errorMessage"]), ("TypeError", "gone"))
        self.assertIsInstance(records[2]["stackTrace"], list)
        self.assertNotIn("dropped", out + err)

    def test_esm_async_promise_callback(self):
        self.write("esm.mjs", """
            export const asyncFn = async (event) => { await new Promise(r => setTimeout(r, 5)); return {async: event}; };
            export const promiseFn = (event) => new Promise(r => setTimeout(() => r({promise: event}), 5));
            export const cbFn = (event, context, callback) => { setTimeout(() => callback(null, {cb: event}), 5); };
            export const cbWait = (event, context, callback) => {
                const result = {late: false};
                setTimeout(() => { result.late = true; }, 50);
                callback(null, result);  // posted only once the event loop is empty
            };
            export const cbNoWait = (event, context, callback) => {
                context.callbackWaitsForEmptyEventLoop = false;
                setTimeout(() => {}, 3600 * 1000);  // an hour: waiting for it fails the test
                callback(null, "fast");
            };
            export const nothing = () => {};
            export const nested = { deep: { fn: async () => "deep" } };
        """)
        self.assert_ok(self.start("esm.asyncFn"), 1, {"async": 1})
        self.assert_ok(self.start("esm.promiseFn"), 2, {"promise": 2})
        rt = self.start("esm.cbFn")
        self.assert_ok(rt, 3, {"cb": 3})
        self.assert_ok(rt, 4, {"cb": 4})
        self.assert_ok(self.start("esm.cbWait"), {}, {"late": True})
        self.assert_ok(self.start("esm.nothing"), {}, None)
        self.assert_ok(self.start("esm.nested.deep.fn"), {}, "deep")
        self.assert_ok(self.start("esm.cbNoWait"), {}, "fast")

    def test_cjs_nested_dir_and_type_module(self):
        self.write("src/lib/h.cjs", "module.exports.handler = async (e) => ({cjs: e});\n")
        self.write("mod/package.json", '{"type": "module"}')
        self.write("mod/app.js", "export const handler = async (e) => ({esmjs: e});\n")
        self.assert_ok(self.start("src/lib/h.handler"), 1, {"cjs": 1})
        self.assert_ok(self.start("mod/app.handler"), 2, {"esmjs": 2})

    def test_errors(self):
        self.write("index.js", """
            class MyError extends Error { constructor(m) { super(m); this.name = "MyError"; } }
            exports.throws = async () => { throw new MyError("bad thing"); };
            exports.rejectString = () => Promise.reject("just a string");
            exports.cbErr = (e, c, cb) => cb(new TypeError("cb error"));
            exports.circular = async () => { const o = {}; o.o = o; return o; };
            exports.syncThrow = () => { throw new Error("sync"); };
        """)
        rt = self.start("index.throws")
        kind, headers, body, (_, err) = rt.invoke({})
        self.assertEqual(kind, "error")
        self.assertEqual(headers["Lambda-Runtime-Function-Error-Type"], "Unhandled")
        self.assertEqual(body["errorType"], "MyError")
        self.assertEqual(body["errorMessage"], "bad thing")
        # As aws-lambda-nodejs-runtime-interface-client: `trace`, "Type: message" first.
        self.assertNotIn("stackTrace", body)
        self.assertEqual(body["trace"][0], "MyError: bad thing")
        self.assertTrue(body["trace"][1].strip().startswith("at "), body["trace"])
        self.assertIn("index.js", body["trace"][1])
        self.assertIn('ERROR\tInvoke Error \t{"errorType":"MyError","errorMessage":"bad thing"', err)
        for handler, etype, msg in (
            ("rejectString", "string", "just a string"),
            ("cbErr", "TypeError", "cb error"),
            ("circular", "Runtime.MarshalError", "Unable to stringify response body"),
            ("syncThrow", "Error", "sync"),
        ):
            kind, _, body, _ = self.start("index." + handler).invoke({})
            self.assertEqual((kind, body["errorType"], body["errorMessage"]), ("error", etype, msg))

    def test_uncaught_exception_and_rejection(self):
        self.write("index.js", """
            exports.uncaught = () => { setTimeout(() => { throw new Error("async boom"); }, 5); return new Promise(() => {}); };
            exports.unhandled = async () => { Promise.reject(new Error("nobody catches")); await new Promise(r => setTimeout(r, 1000)); };
        """)
        for handler, etype, msg, code in (
            ("uncaught", "Error", "async boom", 129),
            ("unhandled", "Runtime.UnhandledPromiseRejection", "Error: nobody catches", 128),
        ):
            rt = self.start("index." + handler)
            kind, _, body, _ = rt.invoke({})
            self.assertEqual((kind, body["errorType"], body["errorMessage"]), ("error", etype, msg))
            self.assertEqual(rt.proc.wait(timeout=TIMEOUT), code)

    def fake_sdk(self, where, origin):
        """A stand-in @aws-sdk/client-lambda (CommonJS, as Lambda's copy)."""
        pkg = os.path.join(where, "@aws-sdk", "client-lambda")
        self.write(os.path.join(pkg, "package.json"), '{"name": "@aws-sdk/client-lambda", "main": "index.js"}')
        self.write(os.path.join(pkg, "index.js"), "exports.ORIGIN = %r; exports.LambdaClient = class {};\n" % origin)

    def test_shipped_sdk_for_require_and_import(self):
        self.fake_sdk("runtime/node_modules", "shipped")
        env = {"NODE_PATH": os.path.join(self.dir, "runtime", "node_modules")}
        self.write("task/index.mjs", """
            import { LambdaClient, ORIGIN } from "@aws-sdk/client-lambda";
            export const handler = async () => ({ esm: ORIGIN, client: typeof LambdaClient });
        """)
        self.write("task/cjs.js", "exports.handler = async () => require('@aws-sdk/client-lambda').ORIGIN;\n")
        self.dir = os.path.join(self.dir, "task")
        self.assert_ok(self.start("index.handler", env=env), {}, {"esm": "shipped", "client": "function"})
        self.assert_ok(self.start("cjs.handler", env=env), {}, "shipped")
        # The function's own copy wins, for import and require.
        self.fake_sdk("node_modules", "bundled")
        self.assert_ok(self.start("index.handler", env=env), {}, {"esm": "bundled", "client": "function"})
        self.assert_ok(self.start("cjs.handler", env=env), {}, "bundled")

    def node22(self):
        """Node >= 22.15 (`module.registerHooks`: the in-thread resolve hook), as
        scripts/setup installs it; required under CI=true."""
        node = os.environ.get("UPDRAFT_TEST_NODE22")
        if not node:
            if os.environ.get("CI") == "true":
                self.fail("UPDRAFT_TEST_NODE22 is not set (scripts/setup installs Node 22 and sets it)")
            self.skipTest("UPDRAFT_TEST_NODE22 is not set")
        return node

    def test_shipped_sdk_with_in_thread_hooks_also_for_dynamic_imports(self):
        # Node 22.15+: the hook is registered at start (in-thread, free), so
        # a CommonJS handler's import() finds the SDK too. (Node 20's hook
        # needs a loader thread: registered only for ES module handlers.)
        cmd = [self.node22(), NODE_BOOTSTRAP]
        self.fake_sdk("runtime/node_modules", "shipped")
        env = {"NODE_PATH": os.path.join(self.dir, "runtime", "node_modules")}
        self.write("task/index.mjs", """
            import { LambdaClient, ORIGIN } from "@aws-sdk/client-lambda";
            export const handler = async () => ({ esm: ORIGIN, client: typeof LambdaClient });
        """)
        self.write("task/dyn.js",
                   "exports.handler = async () => (await import('@aws-sdk/client-lambda')).ORIGIN;\n")
        self.dir = os.path.join(self.dir, "task")
        self.assert_ok(self.start("index.handler", env=env, cmd=cmd), {}, {"esm": "shipped", "client": "function"})
        self.assert_ok(self.start("dyn.handler", env=env, cmd=cmd), {}, "shipped")

    def test_missing_sdk_says_how_to_install_it(self):
        env = {"NODE_PATH": os.path.join(self.dir, "no-runtime", "node_modules")}
        self.write("index.mjs", "import { S3Client } from '@aws-sdk/client-s3';\nexport const handler = () => 1;\n")
        self.write("other.mjs", "import x from 'left-pad';\nexport const handler = () => 1;\n")
        self.assert_init_error("index.handler", "Runtime.ImportModuleError",
                               "the AWS SDK for JavaScript is not installed on this server: "
                               "start it with `updraft server --install-sdk`", env=env)
        body, _ = self.assert_init_error("other.handler", "Runtime.ImportModuleError", "left-pad", env=env)
        self.assertNotIn("install-sdk", body["errorMessage"])

    def test_init_errors(self):
        self.write("syn.js", "exports.handler = (;\n")
        self.write("ok.mjs", "export const x = 1;\nexport const handler = () => 1;\n")
        body, err = self.assert_init_error("missing.handler", "Runtime.ImportModuleError",
                                           "Error: Cannot find module 'missing'")
        self.assertIn("ERROR\tUncaught Exception \t{\"errorType\":\"Runtime.ImportModuleError\"", err)
        self.assert_init_error("syn.handler", "Runtime.UserCodeSyntaxError", "SyntaxError")
        self.assert_init_error("ok.nope", "Runtime.HandlerNotFound", "ok.nope is undefined or not exported")
        self.assert_init_error("ok.x", "Runtime.HandlerNotFound", "ok.x is not a function")
        self.assert_init_error("../x.handler", "Runtime.MalformedHandlerName", "'..' is not allowed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
