// A Connect client (connect-es: createConnectTransport of connect-node).
//   node client.cjs BASE_URL HTTP_VERSION METHOD SCRIPT_JSON [TIMEOUT_MS]
// METHOD is "say" or "count"; prints one JSON line:
//   {"ok": true, "values": [...]}   or   {"ok": false, "code": "unavailable",
//   "message": "...", "values": [...messages before the error]}
"use strict";
const { createClient, ConnectError, Code } = require("@connectrpc/connect");
const { createConnectTransport } = require("@connectrpc/connect-node");
const { Echo } = require("./service.cjs");

const [baseUrl, httpVersion, method, script, timeoutMs] = process.argv.slice(2);

function snake(code) {
  return Code[code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

async function main() {
  const transport = createConnectTransport({ baseUrl, httpVersion });
  const client = createClient(Echo, transport);
  const opts = timeoutMs ? { timeoutMs: Number(timeoutMs) } : {};
  const values = [];
  try {
    if (method === "say") {
      values.push((await client.say({ value: script }, opts)).value);
    } else {
      for await (const m of client.count({ value: script }, opts)) values.push(m.value);
    }
    console.log(JSON.stringify({ ok: true, values }));
  } catch (e) {
    const err = ConnectError.from(e);
    console.log(JSON.stringify({ ok: false, code: snake(err.code), message: err.rawMessage, values }));
  }
  process.exit(0);
}
main();
