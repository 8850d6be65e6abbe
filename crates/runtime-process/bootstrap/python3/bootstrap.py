"""Updraft Python runtime bootstrap.

A standard-library-only AWS Lambda Runtime API client, modelled on AWS's
`awslambdaric`. Started by the platform as `python3 bootstrap.py` with the
usual Lambda environment (AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT...).
"""

import http.client
import importlib
import json
import logging
import os
import sys
import time
import traceback
import urllib.parse
from collections.abc import Awaitable

_THIS_FILE = os.path.abspath(__file__)
# The AWS SDK (boto3) the server installed, beside this file: last on sys.path,
# so a function's own copy (in its code) wins, as on Lambda.
SDK_DIR = os.path.join(os.path.dirname(_THIS_FILE), "sdk")
SDK_MODULES = ("boto3", "botocore", "s3transfer")
# Modules the runtime provides (snapshot_restore_py), last on sys.path too.
LIB_DIR = os.path.join(os.path.dirname(_THIS_FILE), "lib")
SDK_HINT = (
    " (the AWS SDK for Python is not installed on this server: start it with"
    " `updraft server --install-sdk`, or give an installed copy with --sdk-dir DIR)"
)

# Python puts the script's directory first on sys.path; user code must not see it.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(_THIS_FILE):
    del sys.path[0]

# --- Environment (read once) --------------------------------------------------
_ENV = os.environ
RUNTIME_API = _ENV.get("AWS_LAMBDA_RUNTIME_API", "")
HANDLER = _ENV.get("_HANDLER", "")
TASK_ROOT = _ENV.get("LAMBDA_TASK_ROOT") or os.getcwd()
FUNCTION_NAME = _ENV.get("AWS_LAMBDA_FUNCTION_NAME")
FUNCTION_VERSION = _ENV.get("AWS_LAMBDA_FUNCTION_VERSION")
LOG_GROUP_NAME = _ENV.get("AWS_LAMBDA_LOG_GROUP_NAME")
LOG_STREAM_NAME = _ENV.get("AWS_LAMBDA_LOG_STREAM_NAME")
MEMORY_LIMIT_IN_MB = _ENV.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")  # a string, as awslambdaric has it
# Lambda's advanced logging controls: JSON lines, and a level below which
# logging records are dropped (TRACE is Python's DEBUG).
LOG_FORMAT_JSON = _ENV.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
LOG_LEVEL = {"TRACE": "DEBUG"}.get(
    _ENV.get("AWS_LAMBDA_LOG_LEVEL", "").upper(), _ENV.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
)

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
JSON_HEADERS = {"Content-Type": "application/json"}
NEXT_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)  # ~1.5s in total, then exit 1
# Set by the server for a snapshot template (`snapshot = true`): the socket
# it orders instances on. Not the function's to see.
_SNAPSHOT_FD = _ENV.pop("_UPDRAFT_SNAPSHOT_FD", None)


# --- Runtime API client (one keep-alive connection) -------------------------
class RuntimeClient:
    def __init__(self, address):
        self.address = address
        self.conn = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """One request; on a connection failure reconnect and try once more."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.address)  # no timeout: /next long-polls
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, resp.headers, data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise

    def next_invocation(self):
        for delay in NEXT_RETRY_DELAYS + (None,):
            try:
                status, headers, body = self.request("GET", API_PREFIX + "/invocation/next")
                if status == 200:
                    return headers, body
                problem = "HTTP %d: %r" % (status, body[:200])
            except (OSError, http.client.HTTPException) as e:
                problem = repr(e)
            if delay is None:
                _stderr("Runtime API /invocation/next failed, exiting: " + problem)
                _flush()
                os._exit(1)
            time.sleep(delay)

    def post(self, path, body, headers):
        _flush()  # user log lines must be out before the platform sees the result
        try:
            status, _, data = self.request("POST", path, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as e:
            _stderr("Runtime API POST %s failed: %r" % (path, e))
            return
        if status >= 300:
            _stderr("Runtime API POST %s returned HTTP %d: %r" % (path, status, data[:500]))


# --- Output helpers ------------------------------------------------------------
def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _stderr(msg):
    try:
        sys.__stderr__.write(msg + "\n")
        sys.__stderr__.flush()
    except Exception:
        pass


for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.reconfigure(line_buffering=True)
    except Exception:
        pass


_current_request_id = ""


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id
        return True


# Record attributes that are not extra fields of a JSON line.
_RESERVED_RECORD_FIELDS = {
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
    "aws_request_id",
}


class _JsonFormatter(logging.Formatter):
    """awslambdaric's JSON line: timestamp, level, message, logger, requestId,
    the exception's errorType/errorMessage/stackTrace/location, and `extra`."""

    def formatTime(self, record, datefmt=None):
        t = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % record.msecs

    def format(self, record):
        levelno = min(50, max(0, record.levelno)) // 10 * 10
        exc = record.exc_info
        result = {
            "timestamp": self.formatTime(record),
            "level": logging.getLevelName(levelno),
            "message": record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc[2]) if exc else None,
            "errorType": exc[0].__name__ if exc else None,
            "errorMessage": str(exc[1]) if exc else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc else None,
        }
        result.update(
            (k, v)
            for k, v in record.__dict__.items()
            if k not in _RESERVED_RECORD_FIELDS and k not in result
        )
        return json.dumps(
            {k: v for k, v in result.items() if v is not None}, default=str, ensure_ascii=False
        )


def _install_logging():
    # Like Lambda: the root logger gets a handler, so logger.setLevel(INFO) +
    # logger.info(...) works (without one Python's lastResort drops INFO),
    # with awslambdaric's format: [LEVEL]\tUTC TIMESTAMP\tREQUEST_ID\tmessage,
    # or one JSON object a line with AWS_LAMBDA_LOG_FORMAT=JSON.
    if LOG_FORMAT_JSON:
        formatter = _JsonFormatter()
    else:
        formatter = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
        formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    if LOG_LEVEL in ("DEBUG", "INFO", "WARN", "ERROR", "FATAL"):
        # The root's level as awslambdaric sets it; on the handler too, since
        # Lambda drops lower records even when the code lowers the root's.
        root.setLevel(LOG_LEVEL)
        handler.setLevel(LOG_LEVEL)
    root.addHandler(handler)


# --- Errors ------------------------------------------------------------------------
class FaultException(Exception):
    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


def make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "Unknown",
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


_internal_prefixes = [_THIS_FILE, "<frozen importlib", os.path.dirname(importlib.__file__) + os.sep]


def build_fault(exc_info, request_id):
    etype, value, tb = exc_info
    frames = traceback.extract_tb(tb)
    # Drop the leading runtime frames (bootstrap, asyncio driver) like awslambdaric.
    i = 0
    while i < len(frames) and frames[i].filename.startswith(tuple(_internal_prefixes)):
        i += 1
    return make_error(str(value), etype.__name__, traceback.format_list(frames[i:]), request_id)


def log_error(error):
    desc = "[ERROR]"
    if error.get("errorType"):
        desc += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            desc += ":"
        desc += " " + error["errorMessage"]
    lines = [desc, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or []:
        lines.extend(element.splitlines() if element else [""])
    try:
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
    except Exception:
        _stderr("\n".join(lines))


# --- Handler loading -------------------------------------------------------------------
def load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, e)
        )
    modpath = modname.replace("/", ".")
    try:
        if modpath.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        module = importlib.import_module(modpath)
    except ImportError as e:
        hint = ""
        missing = (getattr(e, "name", None) or "").split(".")[0]
        if missing in SDK_MODULES and not os.path.isdir(os.path.join(SDK_DIR, "boto3")):
            hint = SDK_HINT
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR,
            "Unable to import module '{}': {}{}".format(modname, e, hint),
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '{}': {}".format(modname, e),
            trace,
        )
    try:
        fn = getattr(module, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND,
            "Handler '{}' missing on module '{}'".format(fname, modname),
        )
    if not callable(fn):
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND,
            "Handler '{}' on module '{}' is not callable".format(fname, modname),
        )
    return fn


# --- Context -----------------------------------------------------------------------------
class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id={},cognito_identity_pool_id={}])".format(
            self.cognito_identity_id, self.cognito_identity_pool_id
        )


class Client:
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "Client(%s)" % ",".join("%s=%s" % (k, getattr(self, k)) for k in self.__slots__)


class ClientContext:
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom={},env={},client={}])".format(self.custom, self.env, self.client)


def _obj_from_dict(cls, d):
    if not isinstance(d, dict):
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field))
    return obj


def _parse_json_header(value):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


class LambdaContext:
    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context, cognito_identity):
        self.aws_request_id = request_id
        self.log_group_name = LOG_GROUP_NAME
        self.log_stream_name = LOG_STREAM_NAME
        self.function_name = FUNCTION_NAME
        self.memory_limit_in_mb = MEMORY_LIMIT_IN_MB
        self.function_version = FUNCTION_VERSION
        self.invoked_function_arn = invoked_function_arn
        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        self.identity = CognitoIdentity()
        ci = cognito_identity if isinstance(cognito_identity, dict) else {}
        self.identity.cognito_identity_id = ci.get("cognitoIdentityId")
        self.identity.cognito_identity_pool_id = ci.get("cognitoIdentityPoolId")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id={},log_group_name={},log_stream_name={},function_name={},"
            "memory_limit_in_mb={},function_version={},invoked_function_arn={},client_context={},identity={}])"
        ).format(
            self.aws_request_id, self.log_group_name, self.log_stream_name, self.function_name,
            self.memory_limit_in_mb, self.function_version, self.invoked_function_arn,
            self.client_context, self.identity,
        )


# --- Invocation --------------------------------------------------------------------------
def _json_default(o):
    dec = sys.modules.get("decimal")  # Decimal (e.g. from DynamoDB) -> number, no import needed
    if dec is not None and isinstance(o, dec.Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


def _marshal(result):
    try:
        return json.dumps(result, ensure_ascii=False, default=_json_default).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(e))


_loop = None


def _run_async(awaitable):
    global _loop
    if _loop is None:  # one persistent loop: clients bound to it survive across invocations
        import asyncio

        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
        _internal_prefixes.append(os.path.dirname(asyncio.__file__) + os.sep)
    return _loop.run_until_complete(awaitable)


def handle_invocation(client, handler, headers, body):
    global _current_request_id
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
    _current_request_id = request_id
    trace_id = headers.get("Lambda-Runtime-Trace-Id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms"))
    except (TypeError, ValueError):
        deadline_ms = int(time.time() * 1000) + 900000  # header missing: assume Lambda's max timeout

    error = None
    try:
        try:
            event = json.loads(body) if body else {}
        except ValueError as e:
            raise FaultException(FaultException.UNMARSHAL_ERROR, "Unable to unmarshal input: {}".format(e))
        context = LambdaContext(
            request_id,
            deadline_ms,
            headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            _parse_json_header(headers.get("Lambda-Runtime-Client-Context")),
            _parse_json_header(headers.get("Lambda-Runtime-Cognito-Identity")),
        )
        result = handler(event, context)
        if isinstance(result, Awaitable):
            result = _run_async(result)
        payload = _marshal(result)
    except FaultException as e:
        error = make_error(e.msg, e.exception_type, e.trace, request_id)
    except Exception:
        error = build_fault(sys.exc_info(), request_id)

    path = API_PREFIX + "/invocation/" + urllib.parse.quote(request_id, safe="")
    if error is None:
        client.post(path + "/response", payload, JSON_HEADERS)
    else:
        log_error(error)
        client.post(
            path + "/error",
            json.dumps(error).encode("utf-8"),
            {"Content-Type": "application/json", ERROR_TYPE_HEADER: "Unhandled"},
        )


# --- Snapshots (snapshot = true) ----------------------------------------------
def _run_hooks(which):
    """Runs the hooks registered with snapshot_restore_py (the runtime's copy
    or a function's own): `before_snapshot` or `after_restore`."""
    mod = sys.modules.get("snapshot_restore_py")
    getter = getattr(mod, "get_" + which, None) if mod is not None else None
    if getter is None:
        return
    for func, args, kwargs in list(getter()):
        func(*args, **kwargs)


def _fail_init(client, error=None):
    """Reports the init's error (the exception being handled, unless
    given) and exits, as Lambda's runtime does."""
    if error is None:
        error = build_fault(sys.exc_info(), None)
    log_error(error)
    client.post(
        API_PREFIX + "/init/error",
        json.dumps(error).encode("utf-8"),
        {"Content-Type": "application/json", ERROR_TYPE_HEADER: error["errorType"]},
    )
    _flush()
    os._exit(1)


def _snapshot(client, fd):
    """This process is a snapshot template: the function's init has run.
    Serves the server's orders on the socket at `fd`: each forks an
    instance, which returns from here (a new Runtime API client) once the
    server has moved it into its own cgroup and sent it its environment and
    log. This process reports each child's pid and, as their parent, their
    exits. The box (root, uid, namespaces, seccomp) is this process's own,
    made before the init ran, and each child inherits it."""
    import ctypes
    import gc
    import selectors
    import signal
    import socket

    try:
        _run_hooks("before_snapshot")
    except Exception:
        _fail_init(client)
    _flush()
    client.close()
    # Objects made by the init stay out of the collector's way: a collection
    # in an instance would otherwise touch, and so copy, every page of them.
    gc.collect()
    gc.freeze()

    sock = socket.socket(fileno=fd)
    me = os.getpid()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "server")
    sel.register(wake_r, selectors.EVENT_READ, "children")

    def send(msg):
        sock.send(json.dumps(msg).encode())

    send({"ready": me})
    hello = None
    while hello is None:
        for key, _ in sel.select():
            if key.data == "children":
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    send({"exit": pid, "status": status})
                continue
            try:
                msg, fds, flags, _ = socket.recv_fds(sock, 1 << 16, 4)
            except InterruptedError:
                continue
            if not msg:
                os._exit(0)  # the server is gone
            try:
                seq = json.loads(msg)["seq"]
            except (ValueError, KeyError, TypeError):
                seq = None
            if seq is None or len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for f in fds:
                    os.close(f)
                if seq is not None:
                    send({"seq": seq, "error": "an unreadable order"})
                continue
            try:
                pid = os.fork()
            except OSError as e:
                os.close(fds[0])
                send({"seq": seq, "error": "fork: %s" % e})
                continue
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sel.close()
                os.close(wake_r)
                os.close(wake_w)
                sock.close()
                hello = fds[0]
                break
            os.close(fds[0])
            send({"seq": seq, "pid": pid})

    # An instance: its own session (the server signals the group), and it
    # dies with the template.
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != me:
        os._exit(1)
    conn = socket.socket(fileno=hello)
    try:
        conn.send(b"hello")  # the server reads this process's pid from it
        msg, fds, flags, _ = socket.recv_fds(conn, 1 << 20, 1)
    except OSError:
        os._exit(1)
    conn.close()
    if not msg or len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        os._exit(0)  # the server changed its mind
    order = json.loads(msg)
    os.dup2(fds[0], 1)
    os.dup2(fds[0], 2)
    os.close(fds[0])
    os.environ.clear()
    os.environ.update(order["env"])
    time.tzset()
    global RUNTIME_API, LOG_STREAM_NAME
    RUNTIME_API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    LOG_STREAM_NAME = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
    client = RuntimeClient(RUNTIME_API)
    # Each instance draws its own random numbers (os.urandom and the
    # secrets module always do; the random module's state was the template's).
    if "random" in sys.modules:
        sys.modules["random"].seed()
    try:
        _run_hooks("after_restore")
    except Exception:
        _fail_init(client)
    return client


def main():
    if not RUNTIME_API:
        _stderr("AWS_LAMBDA_RUNTIME_API is not set")
        sys.exit(1)
    client = RuntimeClient(RUNTIME_API)
    _install_logging()
    if TASK_ROOT not in sys.path:
        sys.path.insert(0, TASK_ROOT)
    if LIB_DIR not in sys.path:
        sys.path.append(LIB_DIR)
    if SDK_DIR not in sys.path:
        sys.path.append(SDK_DIR)

    error = None
    try:
        handler = load_handler(HANDLER)
    except FaultException as e:
        error = make_error(e.msg, e.exception_type, e.trace)
    except Exception:
        error = build_fault(sys.exc_info(), None)
    if error is not None:
        _fail_init(client, error)

    if _SNAPSHOT_FD is not None:
        # Returns in each instance forked from this template.
        client = _snapshot(client, int(_SNAPSHOT_FD))

    while True:
        headers, body = client.next_invocation()
        handle_invocation(client, handler, headers, body)


if __name__ == "__main__":
    main()
