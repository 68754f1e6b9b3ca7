// Reliability soak for `hearth serve` (a benchmark, not a CTest test: it runs for minutes).
//   node tests/server/soak.mjs HEARTH_BINARY MODEL [SECONDS=180] [CLIENTS=64] [SEQUENTIAL=1000]
// Phase 1: SEQUENTIAL requests one after another. Phase 2: CLIENTS concurrent clients for
// SECONDS, each looping over a mix of streamed and plain chat, text completions, streams
// dropped mid-way, plain requests abandoned while waiting, malformed bodies and over-long
// prompts. Then it checks that the server is idle again (no running or waiting request, no
// KV block held), that no answer was a 500 or a dropped connection, that no request took
// longer than STUCK_S (stuck), and that resident memory after the load is back within
// max(16 MiB, 10%) of its idle level after phase 1 (the first requests warm allocations
// up). Prints one JSON summary; exit code 1 on failure.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

const [hearth, model, secondsArg, clientsArg, seqArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 180), clients = Number(clientsArg ?? 64), sequential = Number(seqArg ?? 1000);

const server = spawn(hearth, ["serve", "-m", model, "--port", "0", "-c", "1024", "--parallel", "4", "--max-queue", "256"],
  { stdio: ["ignore", "pipe", "ignore"] });
let crashed = null;
const base = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/at (http:\/\/\S+)\/v1/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code, sig) => { crashed = `exit ${code} ${sig}`; reject(new Error(crashed)); });
});

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))[1]) * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const counts = {};
const note = (k) => { counts[k] = (counts[k] ?? 0) + 1; };
const words = (n) => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");

const STUCK_S = 120;
let slowest = 0;
async function post(path, body, opts = {}) {
  const t0 = Date.now();
  const stuck = setTimeout(() => note("stuck"), STUCK_S * 1000);
  try {
    await send(path, body, opts);
  } finally {
    clearTimeout(stuck);
    slowest = Math.max(slowest, (Date.now() - t0) / 1000);
  }
}
async function send(path, body, { stream = false, dropAfter = 0, abandonMs = 0, raw = false } = {}) {
  const ac = new AbortController();
  let res;
  const abandon = abandonMs ? setTimeout(() => { ac.abort(); note("abandoned"); }, abandonMs) : null;
  try {
    res = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" },
      body: raw ? body : JSON.stringify(body), signal: ac.signal });
  } catch (e) {
    clearTimeout(abandon);
    if (!ac.signal.aborted) note("connection_error");
    return;
  }
  note(`status_${res.status}`);
  try {
    if (!stream) { await res.text(); return; }
    const reader = res.body.getReader();
    let chunks = 0;
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      if (dropAfter && ++chunks >= dropAfter) { ac.abort(); note("dropped"); return; }
    }
  } catch (e) {
    if (!ac.signal.aborted) note("read_error");
  } finally {
    clearTimeout(abandon);
  }
}

const chat = (text, max, extra = {}) => ({ model: "x", messages: [{ role: "user", content: text }], max_tokens: max, ...extra });
async function one(i) {
  switch (i % 8) {
    case 0: return post("/v1/chat/completions", chat(`q${i}`, 16));
    case 1: return post("/v1/chat/completions", chat(`q${i}`, 24, { stream: true, stream_options: { include_usage: true } }), { stream: true });
    case 2: return post("/v1/completions", { prompt: `p${i}`, max_tokens: 12, logprobs: 2 });
    case 3: return post("/v1/chat/completions", chat(`drop${i}`, 400, { stream: true, ignore_eos: true }), { stream: true, dropAfter: 3 });
    case 4: return post("/v1/chat/completions", `{"messages": [{"role": "user", "content": ${i % 2 ? "" : "\"x\""}`, { raw: true });
    case 5: return post("/v1/chat/completions", chat(words(1200), 8));
    case 6: return post("/v1/completions", { prompt: [1, 2, 3, i % 1000], max_tokens: 8, stream: true }, { stream: true });
    default: return post("/v1/chat/completions", chat(`wait${i}`, 400, { ignore_eos: true }), { abandonMs: 150 });
  }
}

async function idle() {
  for (let k = 0; k < 100; k++) {
    const m = await (await fetch(base + "/metrics")).text();
    const g = (n) => Number(new RegExp(`^${n} (\\S+)$`, "m").exec(m)[1]);
    if (g("hearth_requests_running") === 0 && g("hearth_requests_waiting") === 0 && g("hearth_kv_cache_blocks_used") === 0) return true;
    await sleep(100);
  }
  return false;
}

const summary = { seconds, clients, sequential };
await sleep(500);
summary.rss_start = rss();
let t0 = Date.now();
for (let i = 0; i < sequential; i++) await one(i);
summary.sequential_s = (Date.now() - t0) / 1000;
summary.idle_after_sequential = await idle();
summary.rss_after_sequential = rss();
summary.counts_sequential = { ...counts };
t0 = Date.now();
let issued = 0;
const load = Promise.all(Array.from({ length: clients }, async (_, c) => {
  // Each client goes round every kind of request (client c starts at kind c).
  for (let k = 0; Date.now() - t0 < seconds * 1000; k++) { await one(c + k * 9); issued++; }
}));
// A client that never comes back is a stuck request too (its timer has already counted it).
const finished = await Promise.race([load.then(() => true), sleep((seconds + STUCK_S + 30) * 1000).then(() => false)]);
summary.clients_finished = finished;
summary.concurrent_requests = issued;
summary.idle_after_concurrent = await idle();
await sleep(1000);
summary.rss_end = rss();
summary.rss_back_to_idle = summary.rss_end <= summary.rss_after_sequential + Math.max(16 << 20, summary.rss_after_sequential / 10);
summary.slowest_request_s = slowest;
summary.counts = counts;
summary.crashed = crashed;
const health = await fetch(base + "/health").then((r) => r.status).catch(() => 0);
summary.health_after = health;
// The server's own count of responses by route and status.
const metrics = await fetch(base + "/metrics").then((r) => r.text()).catch(() => "");
summary.server_responses = Object.fromEntries([...metrics.matchAll(
  /^hearth_http_responses_total\{route="([^"]+)",status="(\d+)"\} (\d+)$/gm)].map((m) => [`${m[1]} ${m[2]}`, Number(m[3])]));
// From here on an exit is the one asked for, not a crash.
server.removeAllListeners("exit");
const exited = new Promise((r) => server.on("exit", (c, s) => r(c ?? s)));
server.kill("SIGTERM");
summary.exit = await exited;
console.log(JSON.stringify(summary, null, 2));
const ok = !crashed && health === 200 && summary.idle_after_sequential && summary.idle_after_concurrent &&
  !counts.status_500 && !counts.connection_error && !counts.read_error && !counts.stuck && summary.clients_finished &&
  summary.rss_back_to_idle &&
  summary.exit === 0;
process.exit(ok ? 0 : 1);
