#!/usr/bin/env node
// Prefix-cache benchmark (issue 9): replays a 10-turn coding-agent session against
// `hearth serve`, the way OpenCode talks to it (docs: opencode.md in the reference notes):
// streamed chat requests carrying a ~9.5K-character system prompt with an <env> block,
// ten tool schemas (~20 KB of JSON, draft 2020-12 $schema), x-session-id headers, and per
// turn one assistant tool call plus its tool result (a file of ~1.5 KB) appended. The same
// session runs on a server with the cache (default) and one with --no-prefix-cache; it
// prints time to first token per turn, prompt and cached tokens, as a Markdown table.
// TTFT = request sent -> first streamed chunk carrying generated text, reasoning or a
// tool call (the role chunk that opens every stream does not count).
//
// Usage: node bench/agent_cache.mjs HEARTH_BINARY [--model M] [--turns 10] [--ctx 16384]
//            [--max-tokens 8] [--only cache|nocache] [--json OUT] [-- extra hearth serve args]
//        node bench/agent_cache.mjs --suite-out FILE [--turns 10] [--max-tokens 8]
//            writes the session's requests as a `hearth bench endpoint --suite` JSONL file
//            (one streamed case per turn) instead, for machines without node:
//            hearth bench endpoint --suite FILE --reps 1 --warmup 0 --concurrency "" --no-probe
//            --spawn "hearth serve …" (and again with --no-prefix-cache) gives the same TTFTs.
// Needs node >= 18 (fetch). Nothing here asserts speed; the figures go in docs/benchmarks.md.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";

const args = process.argv.slice(2);
const suiteOut = args[0] === "--suite-out" ? args[1] : "";
if (suiteOut) args.splice(0, 2, "(none)");
if (args.length < 1 || args[0].startsWith("-")) {
  console.error("usage: node bench/agent_cache.mjs HEARTH_BINARY [--model M] [--turns N] [--ctx N] [--max-tokens N] [--only cache|nocache] [--json OUT] [-- serve args]");
  process.exit(2);
}
const bin = args[0];
const opt = { model: "", turns: 10, ctx: 16384, maxTokens: 8, only: "", json: "" };
let extra = [];
for (let i = 1; i < args.length; ++i) {
  const a = args[i];
  if (a === "--") { extra = args.slice(i + 1); break; }
  const v = args[++i];
  if (v === undefined) { console.error(`${a}: missing value`); process.exit(2); }
  if (a === "--model") opt.model = v;
  else if (a === "--turns") opt.turns = Number(v);
  else if (a === "--ctx") opt.ctx = Number(v);
  else if (a === "--max-tokens") opt.maxTokens = Number(v);
  else if (a === "--only") opt.only = v;
  else if (a === "--json") opt.json = v;
  else { console.error(`unknown option ${a}`); process.exit(2); }
}

// ---- the session: an OpenCode-like system prompt, tools and tool round trips ----------
const rules = [
  "You are an interactive CLI tool that helps users with software engineering tasks.",
  "Use the instructions below and the tools available to you to assist the user.",
  "Be concise, direct, and to the point. Answer in fewer than four lines unless asked for detail.",
  "When you run a non-trivial bash command, explain what it does and why you are running it.",
  "Always read a file with the read tool before editing it, and keep edits minimal.",
  "Follow the conventions of the codebase: look at neighbouring files, imports and tests first.",
  "Never commit changes unless the user asks you to. Never push to a remote repository.",
  "Use the todowrite tool to plan multi-step tasks and mark items done as you complete them.",
  "When a test fails, read the failure carefully, form a hypothesis, and verify it before changing code.",
  "Prefer grep and glob over bash for searching; batch independent tool calls in one message.",
];
let system = "You are opencode, an interactive CLI tool that helps users with software engineering tasks.\n\n";
for (let i = 0; system.length < 9000; ++i) system += `# Rule ${i + 1}\n${rules[i % rules.length]} (${i})\n\n`;
system += "<env>\n  Working directory: /home/user/project\n  Is directory a git repo: yes\n  Platform: linux\n" +
          "  Today's date: Wed Nov 25 2026\n</env>\n<skills>\n  none\n</skills>";

const schema = "https://json-schema.org/draft/2020-12/schema";
const int = { type: "integer", minimum: 0, maximum: 9007199254740991 };
function tool(name, description, properties, required) {
  return { type: "function", function: { name, description: description + " " + "Use it when the task needs it; ".repeat(40),
    parameters: { $schema: schema, type: "object", properties, required, additionalProperties: false } } };
}
const str = (d) => ({ type: "string", description: d });
const tools = [
  tool("bash", "Executes a bash command in a persistent shell session.", { command: str("The command"), timeout: int, description: str("What it does") }, ["command", "description"]),
  tool("edit", "Performs exact string replacements in files.", { filePath: str("Absolute path"), oldString: str("Text to replace"), newString: str("Replacement"), replaceAll: { type: "boolean" } }, ["filePath", "oldString", "newString"]),
  tool("glob", "Fast file pattern matching tool.", { pattern: str("Glob pattern"), path: str("Directory") }, ["pattern"]),
  tool("grep", "Fast content search tool using regular expressions.", { pattern: str("Regex"), path: str("Directory"), include: str("File pattern") }, ["pattern"]),
  tool("read", "Reads a file from the local filesystem.", { filePath: str("Absolute path"), offset: int, limit: int }, ["filePath"]),
  tool("skill", "Loads a skill by name.", { name: str("Skill name") }, ["name"]),
  tool("task", "Launches a sub-agent for a complex multi-step task.", { description: str("Short description"), prompt: str("The task"), subagent_type: str("Agent type") }, ["description", "prompt", "subagent_type"]),
  tool("todowrite", "Creates and manages a structured task list.", { todos: { type: "array", items: { type: "object", properties: { content: str("Item"), status: str("pending|in_progress|completed"), id: str("Id") }, required: ["content", "status", "id"] } } }, ["todos"]),
  tool("webfetch", "Fetches content from a URL.", { url: str("The URL"), format: str("text|markdown|html"), timeout: int }, ["url", "format"]),
  tool("write", "Writes a file to the local filesystem.", { filePath: str("Absolute path"), content: str("The content") }, ["filePath", "content"]),
];

function file_content(turn) {
  let s = `<path>/home/user/project/src/module_${turn}.cpp</path>\n<type>file</type>\n<content>\n`;
  for (let line = 1; s.length < 1500; ++line) s += `${line}: int function_${turn}_${line}(int x) { return x * ${line} + ${turn}; }\n`;
  return s + "</content>";
}

const first_user = "The tests in src/ fail after the last refactor. Find out why and fix them.";
// The agent's step after turn t: it called read on the next file; the result comes back as
// a tool message.
function agent_step(messages, t) {
  const id = `call_${t + 1}`;
  messages.push({ role: "assistant", content: "", tool_calls: [{ id, type: "function", function: { name: "read", arguments: JSON.stringify({ filePath: `/home/user/project/src/module_${t}.cpp` }) } }] });
  messages.push({ role: "tool", tool_call_id: id, content: file_content(t) });
}

// ---- one server, one session ------------------------------------------------------------
function start_server(cache) {
  const serveArgs = ["serve", "--port", "0", "-c", String(opt.ctx), "--parallel", "2", ...(opt.model ? ["-m", opt.model] : []),
                     ...(cache ? [] : ["--no-prefix-cache"]), ...extra];
  const proc = spawn(bin, serveArgs, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/at (http:\/\/[^\s]+)\/v1/);
      if (m) resolve({ proc, url: m[1], stderr: () => stderr });
    });
    proc.on("exit", (code) => reject(new Error(`hearth serve exited with ${code}: ${stderr}`)));
  });
}

async function turn_request(url, messages) {
  const body = { model: "hearth", messages, tools, tool_choice: "auto", stream: true, stream_options: { include_usage: true },
                 max_tokens: opt.maxTokens, temperature: 0 };
  const t0 = performance.now();
  const res = await fetch(url + "/v1/chat/completions", {
    method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json", "x-session-id": "ses_bench", "x-session-affinity": "ses_bench" } });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const header = res.headers.get("x-hearth-cache") || "";
  let ttft = null, usage = null, buf = "", text = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) usage = j.usage;
      const d = j.choices?.[0]?.delta;
      if (d && (d.content || d.reasoning_content || d.reasoning || d.tool_calls)) {
        if (ttft === null) ttft = performance.now() - t0;
        text += d.content || "";
      }
      if (j.choices?.[0]?.finish_reason && ttft === null) ttft = performance.now() - t0;  // nothing visible came
    }
  }
  return { ttft_ms: ttft, total_ms: performance.now() - t0, usage, header, text };
}

async function run_session(cache) {
  const srv = await start_server(cache);
  const rows = [];
  try {
    const messages = [{ role: "system", content: system }, { role: "user", content: first_user }];
    for (let t = 0; t < opt.turns; ++t) {
      const r = await turn_request(srv.url, messages);
      rows.push({ turn: t + 1, prompt_tokens: r.usage?.prompt_tokens, cached_tokens: r.usage?.prompt_tokens_details?.cached_tokens ?? 0,
                  ttft_ms: r.ttft_ms, total_ms: r.total_ms, header: r.header });
      process.stderr.write(`${cache ? "cache  " : "nocache"} turn ${t + 1}: prompt ${r.usage?.prompt_tokens} cached ${rows.at(-1).cached_tokens} ttft ${r.ttft_ms.toFixed(0)} ms\n`);
      agent_step(messages, t);
    }
  } finally {
    srv.proc.kill("SIGTERM");
    await new Promise((r) => srv.proc.on("exit", r));
  }
  return rows;
}

if (suiteOut) {
  const lines = [];
  const messages = [{ role: "system", content: system }, { role: "user", content: first_user }];
  for (let t = 0; t < opt.turns; ++t) {
    lines.push(JSON.stringify({ name: `turn ${t + 1}`, messages, tools, max_tokens: opt.maxTokens, stream: true }));
    agent_step(messages, t);
  }
  writeFileSync(suiteOut, lines.join("\n") + "\n");
  process.exit(0);
}

const results = {};
if (opt.only !== "nocache") results.cache = await run_session(true);
if (opt.only !== "cache") results.nocache = await run_session(false);

const load = os.loadavg().map((x) => x.toFixed(1)).join(" ");
console.log(`\n${new Date().toISOString()}  ${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}  load ${load}  model ${opt.model || "(demo)"}  ctx ${opt.ctx}  max_tokens ${opt.maxTokens}\n`);
console.log("| turn | prompt tokens | cached | TTFT cache (ms) | TTFT no cache (ms) | speed-up |");
console.log("|---:|---:|---:|---:|---:|---:|");
for (let t = 0; t < opt.turns; ++t) {
  const c = results.cache?.[t], n = results.nocache?.[t];
  const f = (x) => (x == null ? "" : x.toFixed(0));
  const speed = c && n ? (n.ttft_ms / c.ttft_ms).toFixed(1) + "x" : "";
  console.log(`| ${t + 1} | ${(c ?? n).prompt_tokens} | ${c ? c.cached_tokens : ""} | ${f(c?.ttft_ms)} | ${f(n?.ttft_ms)} | ${speed} |`);
}
const sum = (rows) => rows?.reduce((a, r) => a + r.ttft_ms, 0);
if (results.cache && results.nocache)
  console.log(`\ntotal TTFT over ${opt.turns} turns: ${(sum(results.cache) / 1000).toFixed(1)} s with the cache, ${(sum(results.nocache) / 1000).toFixed(1)} s without`);
if (opt.json) writeFileSync(opt.json, JSON.stringify({ options: opt, load, results }, null, 2));
