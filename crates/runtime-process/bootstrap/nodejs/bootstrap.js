'use strict';
// Updraft Node.js runtime bootstrap.
//
// A dependency-free AWS Lambda Runtime API client, modelled on AWS's
// aws-lambda-nodejs-runtime-interface-client. Started by the platform as
// `node bootstrap.js` with the usual Lambda environment.

const fs = require('fs');
const http = require('http');
const path = require('path');
const util = require('util');
const { pathToFileURL } = require('url');

// --- Environment (read once) -------------------------------------------------
const env = process.env;
const RUNTIME_API = env.AWS_LAMBDA_RUNTIME_API || '';
const HANDLER = env._HANDLER || '';
const TASK_ROOT = env.LAMBDA_TASK_ROOT || process.cwd();
const ENV_DATA = {
  functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
  functionName: env.AWS_LAMBDA_FUNCTION_NAME,
  memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
};
const API_PREFIX = '/2018-06-01/runtime';
const NEXT_RETRY_DELAYS = [50, 100, 200, 400, 800]; // ~1.5s in total, then exit 1

const sep = RUNTIME_API.lastIndexOf(':');
const API_HOST = (sep > 0 ? RUNTIME_API.slice(0, sep) : RUNTIME_API).replace(/^\[(.*)\]$/, '$1');
const API_PORT = sep > 0 ? Number(RUNTIME_API.slice(sep + 1)) : 80;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

// --- Synchronous logging ---------------------------------------------------------
// console writes to pipes may be asynchronous; log lines must be written before
// the result is posted, so console.* write synchronously to fd 1/2.
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function writeSync(fd, str) {
  const buf = Buffer.from(str, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') return; // fd made non-blocking by someone else: wait & retry
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }
}
// Lambda's advanced logging controls: with AWS_LAMBDA_LOG_FORMAT=JSON each
// console call is one JSON object a line, and calls below AWS_LAMBDA_LOG_LEVEL
// write nothing.
const LOG_JSON = (env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
const LEVELS = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
const MIN_LEVEL = LOG_JSON ? (LEVELS[(env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ?? 0) : 0;
let logRequestId;
function errorFields(e) {
  return {
    errorType: (e && e.constructor && e.constructor.name) || 'UnknownError',
    errorMessage: e.message,
    stackTrace: typeof e.stack === 'string' ? e.stack.split('\n') : [],
  };
}
// As the Node.js RIC: one argument is the message as is (an Error becomes
// its fields), several are util.format'ed, the first Error's fields added.
function jsonLine(level, args) {
  const line = { timestamp: new Date().toISOString(), level, requestId: logRequestId };
  if (args.length === 1) {
    line.message = args[0];
    try {
      return JSON.stringify(line, (_k, v) => (v instanceof Error ? errorFields(v) : v));
    } catch (_e) {
      line.message = util.format(args[0]);
      return JSON.stringify(line);
    }
  }
  line.message = util.format(...args);
  const err = args.find((a) => a instanceof Error);
  if (err) Object.assign(line, errorFields(err));
  return JSON.stringify(line);
}
function logger(level, fd) {
  if (LEVELS[level] < MIN_LEVEL) return () => {};
  if (LOG_JSON) return (...args) => writeSync(fd, `${jsonLine(level, args)}\n`);
  return (...args) => writeSync(fd, `${level}\t${util.format(...args)}\n`);
}
console.log = logger('INFO', 1);
console.info = logger('INFO', 1);
console.debug = logger('DEBUG', 1);
console.warn = logger('WARN', 2);
console.error = logger('ERROR', 2);
console.fatal = logger('FATAL', 2);
console.trace = LOG_JSON ? logger('TRACE', 1) : function trace(...args) {
  const e = new Error(util.format(...args));
  e.name = 'Trace';
  Error.captureStackTrace(e, trace);
  writeSync(2, `TRACE\t${e.stack}\n`);
};

// --- Errors --------------------------------------------------------------------------
class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
class MarshalError extends Error {}
class UnmarshalError extends Error {}
for (const cls of [ImportModuleError, HandlerNotFound, MalformedHandlerName, UserCodeSyntaxError,
  UnhandledPromiseRejection, MarshalError, UnmarshalError]) {
  cls.prototype.name = `Runtime.${cls.name}`;
}

function isError(e) {
  return e instanceof Error || util.types.isNativeError(e);
}

// Body posted to /error and /init/error, as Lambda's Node runtime sends it:
// `trace` is the stack, its `Type: message` line first.
function toRuntimeResponse(error) {
  try {
    if (isError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch (_e) {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while ' +
        'retrieving one or more of its message, name, and stack',
      trace: [],
    };
  }
}

// Log form, as Lambda's runtime prints it: '\t' + JSON with enumerable props.
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => {
      if (!isError(v)) return v;
      const ret = Object.assign({ errorType: v.name, errorMessage: v.message, code: v.code }, v);
      if (typeof v.stack === 'string') ret.stack = v.stack.split('\n');
      return ret;
    });
  } catch (_e) {
    return '\t' + JSON.stringify(toRuntimeResponse(error));
  }
}

// --- Runtime API client ----------------------------------------------------------------
function request(method, urlPath, body, headers, retried) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: API_HOST, port: API_PORT, method, path: urlPath, headers },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => {
      // A kept-alive socket closed by the server: reconnect once.
      if (!retried && req.reusedSocket) resolve(request(method, urlPath, body, headers, true));
      else reject(err);
    });
    req.end(body);
  });
}

async function nextInvocation() {
  for (let attempt = 0; ; attempt++) {
    let problem;
    try {
      const res = await request('GET', `${API_PREFIX}/invocation/next`);
      if (res.status === 200) return res;
      problem = `HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`;
    } catch (e) {
      problem = String(e);
    }
    if (attempt >= NEXT_RETRY_DELAYS.length) {
      writeSync(2, `Runtime API /invocation/next failed, exiting: ${problem}\n`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, NEXT_RETRY_DELAYS[attempt]));
  }
}

async function post(urlPath, body, extraHeaders) {
  const headers = Object.assign(
    { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, extraHeaders);
  try {
    const res = await request('POST', urlPath, body, headers);
    if (res.status >= 300) {
      writeSync(2, `Runtime API POST ${urlPath} returned HTTP ${res.status}: ${res.body.toString().slice(0, 500)}\n`);
    }
  } catch (e) {
    writeSync(2, `Runtime API POST ${urlPath} failed: ${e}\n`);
  }
}

function postError(id, err) {
  console.error('Invoke Error', toFormatted(err));
  return post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/error`,
    JSON.stringify(toRuntimeResponse(err)), { 'Lambda-Runtime-Function-Error-Type': 'Unhandled' });
}

function postResponse(id, result) {
  let body;
  try {
    body = JSON.stringify(result === undefined ? null : result);
  } catch (_e) {
    return postError(id, new MarshalError('Unable to stringify response body'));
  }
  if (body === undefined) body = 'null'; // e.g. a function
  return post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`, body);
}

// --- The runtime's node_modules for ES modules ------------------------------------
// `require` searches NODE_PATH (the SDK in the runtime's node_modules, after
// the function's own node_modules); `import` does not. As Lambda's runtime
// makes NODE_PATH work for ES modules, a resolve hook retries a bare
// specifier the default resolution did not find from each NODE_PATH entry.
const NODE_PATH_HOOK = `
let parents = [];
export async function initialize(data) { parents = data; }
const bare = (s) => !/^(\\.{0,2}\\/|#|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(s);
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    if (!e || e.code !== 'ERR_MODULE_NOT_FOUND' || !bare(specifier)) throw e;
    for (const parentURL of parents) {
      try { return await next(specifier, { ...context, parentURL }); } catch (_e) { /* next */ }
    }
    throw e;
  }
}`;

// Node >= 22.15 runs resolve hooks in the loading thread (`module.registerHooks`):
// registered at start, they cost nothing. Older Node runs `module.register`'s
// hooks in a loader thread of their own, whose start doubled a cold start
// (~45 ms); there the hook is registered only when an ES module is about to be
// loaded (the handler is one), so a CommonJS handler starts without it.
const SYNC_HOOKS = typeof require('module').registerHooks === 'function';
let esmHooked = false;

function resolveEsmFromNodePath() {
  if (esmHooked) return;
  esmHooked = true;
  const dirs = (env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  const mod = require('module');
  if (!dirs.length) return;
  const parents = dirs.map((d) => pathToFileURL(path.join(d, 'noop.js')).href);
  if (SYNC_HOOKS) {
    mod.registerHooks({
      resolve(specifier, context, next) {
        try {
          return next(specifier, context);
        } catch (e) {
          if (!e || e.code !== 'ERR_MODULE_NOT_FOUND' || !bareSpecifier(specifier)) throw e;
          for (const parentURL of parents) {
            try { return next(specifier, { ...context, parentURL }); } catch (_e) { /* next */ }
          }
          throw e;
        }
      },
    });
  } else if (typeof mod.register === 'function') {
    mod.register(`data:text/javascript,${encodeURIComponent(NODE_PATH_HOOK)}`, { data: parents });
  }
}

function bareSpecifier(s) {
  return !/^(\.{0,2}\/|#|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(s);
}

// A missing @aws-sdk package: say how the server gets the SDK.
const SDK_HINT = ' (the AWS SDK for JavaScript is not installed on this server: start it with ' +
  '`updraft server --install-sdk`, or give an installed copy with --sdk-dir DIR)';
function sdkHint(e) {
  const m = /['"](@aws-sdk\/[^'"/]+)/.exec(String(e && e.message));
  if (!m) return '';
  const dirs = (env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  return dirs.some((d) => fs.existsSync(path.join(d, m[1], 'package.json'))) ? '' : SDK_HINT;
}

// --- Handler loading -------------------------------------------------------------------
function hasPackageJsonTypeModule(file) {
  let dir = path.dirname(file);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
      } catch (_e) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

function tryRequire(file) {
  if (!fs.existsSync(file)) return undefined;
  try {
    return require(file);
  } catch (e) {
    if (e.code === 'ERR_REQUIRE_ESM') {
      resolveEsmFromNodePath();
      return import(pathToFileURL(file).href);
    }
    throw e;
  }
}

async function tryImport(file) {
  if (!fs.existsSync(file)) return undefined;
  resolveEsmFromNodePath();
  return import(pathToFileURL(file).href);
}

async function loadModule(moduleRoot, moduleName) {
  const base = path.resolve(TASK_ROOT, moduleRoot, moduleName);
  // Same order as Lambda: extensionless, .js (CommonJS unless "type": "module"), .mjs, .cjs.
  const extensionless = tryRequire(base);
  if (extensionless) return extensionless;
  const esmJs = hasPackageJsonTypeModule(base + '.js');
  if (!esmJs) {
    const cjs = tryRequire(base + '.js');
    if (cjs) return cjs;
  }
  const loaded = (esmJs && (await tryImport(base + '.js'))) ||
    (await tryImport(base + '.mjs')) ||
    tryRequire(base + '.cjs');
  if (loaded) return loaded;
  // Fall back to Node resolution (e.g. a handler module inside node_modules).
  return require(require.resolve(moduleName, { paths: [TASK_ROOT, path.resolve(TASK_ROOT, moduleRoot)] }));
}

async function loadHandler(fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName("'..' is not allowed in handler name.");
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;

  let userApp;
  try {
    userApp = await loadModule(moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(String(e));
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new ImportModuleError(String(e) + sdkHint(e));
    }
    throw e;
  }
  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], userApp);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

// --- Invocation loop ----------------------------------------------------------------------
let handler;
let current = null; // { id, done }
let onEmptyEventLoop = null; // completion deferred until the event loop drains

process.on('beforeExit', () => {
  if (onEmptyEventLoop) {
    const fn = onEmptyEventLoop;
    onEmptyEventLoop = null;
    fn();
  }
});

function failCurrentAndExit(err, code) {
  const inv = current;
  if (inv && !inv.done) {
    inv.done = true;
    postError(inv.id, err).finally(() => process.exit(code));
  } else {
    process.exit(code);
  }
}

process.on('uncaughtException', (err) => {
  console.error('Uncaught Exception', toFormatted(err));
  failCurrentAndExit(err, 129);
});

process.on('unhandledRejection', (reason, promise) => {
  const err = new UnhandledPromiseRejection(reason && reason.toString(), promise);
  console.error('Unhandled Promise Rejection', toFormatted(err));
  failCurrentAndExit(err, 128);
});

function complete(inv, isError, value) {
  if (inv.done) return;
  inv.done = true;
  onEmptyEventLoop = null;
  (isError ? postError(inv.id, value) : postResponse(inv.id, value)).then(next);
}

function parseJsonHeader(value, what) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (_e) {
    throw new UnmarshalError(`Cannot parse ${what} as json`);
  }
}

function invoke({ headers, body }) {
  const id = headers['lambda-runtime-aws-request-id'] || '';
  const inv = { id, done: false };
  current = inv;
  logRequestId = id;

  const traceId = headers['lambda-runtime-trace-id'];
  if (traceId) env._X_AMZN_TRACE_ID = traceId;
  else delete env._X_AMZN_TRACE_ID;
  const deadlineHeader = Number(headers['lambda-runtime-deadline-ms']);
  const deadline = deadlineHeader > 0 ? deadlineHeader : Date.now() + 900000;

  let event;
  let context;
  const callback = (err, result) => {
    if (inv.done) return;
    const finish = () => complete(inv, err !== undefined && err !== null, err != null ? err : result);
    if (context.callbackWaitsForEmptyEventLoop) onEmptyEventLoop = finish;
    else finish();
  };
  try {
    event = body.length ? JSON.parse(body.toString('utf8')) : {};
  } catch (e) {
    complete(inv, true, new UnmarshalError(`Unable to parse event: ${e.message}`));
    return;
  }
  try {
    context = Object.assign({
      callbackWaitsForEmptyEventLoop: true,
      clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: id,
      getRemainingTimeInMillis: () => deadline - Date.now(),
      done: (err, result) => complete(inv, err !== undefined && err !== null, err != null ? err : result),
      succeed: (result) => complete(inv, false, result),
      fail: (err) => complete(inv, true, err),
    }, ENV_DATA);
  } catch (e) {
    complete(inv, true, e);
    return;
  }

  // Handler neither returned a promise nor called back: respond null once the
  // event loop is empty (Lambda's behaviour).
  onEmptyEventLoop = () => complete(inv, false, null);
  let result;
  try {
    result = handler(event, context, callback);
  } catch (err) {
    complete(inv, true, err);
    return;
  }
  if (result !== null && result !== undefined && typeof result.then === 'function') {
    result.then((r) => complete(inv, false, r), (e) => complete(inv, true, e));
  } else if (result !== undefined && handler.length < 3) {
    // Plain synchronous return value (Lambda would ignore it and send null).
    complete(inv, false, result);
  }
}

function next() {
  nextInvocation().then(invoke);
}

async function main() {
  if (!RUNTIME_API) {
    writeSync(2, 'AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  try {
    if (SYNC_HOOKS) resolveEsmFromNodePath();
    handler = await loadHandler(HANDLER);
  } catch (err) {
    console.error('Uncaught Exception', toFormatted(err));
    const body = toRuntimeResponse(err);
    await post(`${API_PREFIX}/init/error`, JSON.stringify(body),
      { 'Lambda-Runtime-Function-Error-Type': body.errorType });
    process.exit(1);
  }
  next();
}

main();
