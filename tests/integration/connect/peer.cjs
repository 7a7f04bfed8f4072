// A Connect server (connect-es: @connectrpc/connect-node) on node:http
// (HTTP/1.1) and node:http2 (h2c), for the Connect integration tests.
//
//   node peer.cjs PORT_FILE LOG_FILE
// writes "H1PORT H2PORT" to PORT_FILE (atomically) and one JSON line per call
// to LOG_FILE. Each request's StringValue is a JSON script:
//   {"key": "k1", "fail": N, "code": "unavailable", "sleep_ms": M, "messages": K,
//    "stall_ms": S}
// The first N calls with that key fail with `code` (Say: a unary error
// response; Count: before any message, so an end-of-stream error); then
// Say answers "ok:KEY:CALL" after sleep_ms, Count streams K messages, the
// first after sleep_ms, the second stall_ms after the first. Paths that are no Connect method go to the fallback:
// /overloaded answers 503 with x-envoy-overloaded: true.
"use strict";
const fs = require("node:fs");
const http = require("node:http");
const http2 = require("node:http2");
const { ConnectError, Code } = require("@connectrpc/connect");
const { connectNodeAdapter } = require("@connectrpc/connect-node");
const { Echo } = require("./service.cjs");

const [portFile, logFile] = process.argv.slice(2);
const calls = new Map();

function log(entry) {
  fs.appendFileSync(logFile, JSON.stringify(entry) + "\n");
}

function codeOf(name) {
  // "unavailable" -> Code.Unavailable
  const camel = name.replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
  const c = Code[camel];
  if (c === undefined) throw new Error("no such code " + name);
  return c;
}

function begin(method, req, ctx) {
  const script = JSON.parse(req.value || "{}");
  const key = script.key || "";
  const n = (calls.get(method + key) || 0) + 1;
  calls.set(method + key, n);
  log({
    method, key, n,
    connect_timeout_ms: ctx.requestHeader.get("connect-timeout-ms"),
    timeout_ms: ctx.timeoutMs() === undefined ? null : ctx.timeoutMs(),
    attempt: ctx.requestHeader.get("x-envoy-attempt-count"),
  });
  if (n <= (script.fail || 0)) throw new ConnectError(`scripted failure ${n}`, codeOf(script.code || "unavailable"));
  return { script, key, n };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (!ms) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); });
  });
}

const routes = (router) => router.service(Echo, {
  async say(req, ctx) {
    const { script, key, n } = begin("Say", req, ctx);
    await sleep(script.sleep_ms, ctx.signal);
    return { value: `ok:${key}:${n}` };
  },
  async *count(req, ctx) {
    const { script, key } = begin("Count", req, ctx);
    await sleep(script.sleep_ms, ctx.signal);
    for (let i = 0; i < (script.messages || 0); i++) {
      yield { value: `${key}:${i}` };
      if (i === 0) await sleep(script.stall_ms, ctx.signal);
    }
  },
});

function fallback(req, res) {
  const url = req.url || "";
  log({ method: "fallback", path: url, attempt: req.headers["x-envoy-attempt-count"] || null,
        protocol: req.httpVersion });
  if (url.startsWith("/overloaded")) {
    res.writeHead(503, { "content-type": "text/plain", "x-envoy-overloaded": "true" });
    res.end("overloaded\n");
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
}

// Connect's default read/write limits are fine; no timeout of the server's
// own so that the sidecar's deadline is what the tests see.
const handler = connectNodeAdapter({ routes, fallback });
const h1 = http.createServer(handler);
const h2 = http2.createServer(handler);
let ready = 0;
function listening() {
  if (++ready < 2) return;
  fs.writeFileSync(portFile + ".tmp", `${h1.address().port} ${h2.address().port}\n`);
  fs.renameSync(portFile + ".tmp", portFile);
}
h1.listen(0, "127.0.0.1", listening);
h2.listen(0, "127.0.0.1", listening);
process.on("SIGTERM", () => process.exit(0));
