// A real coding agent against hearth: OpenCode 1.18.33 (tools/npm) in headless
// mode, `opencode run --format json -m hearth/MODEL` with the prompt on stdin.
//   node opencode_agent.mjs HEARTH_BINARY SCRIPTED_SERVE_BINARY SOURCE_DIR WORK_DIR
// 1. `hearth serve` on a tiny random Qwen3 model (see below for why not the demo model),
//    configured with the OpenCode provider snippet the server prints at start-up (only the
//    output limit lowered, so a random model's answer ends quickly). OpenCode sends its
//    title request and its first agent request (~7 K tokens of system prompt and 10 tool
//    schemas) at once; the check is the protocol, since the model's text is noise: every
//    request answered 200, the session ends without an error event, exit code 0.
// 2. scripted_serve (the same server code in front of a scripted model, see
//    scripted_runner.h): the answer written in the prompt is a streamed read tool call;
//    OpenCode must run it, send the result back, and get the final text, which comes
//    from the file it read.
// OpenCode is kept off the network: a temporary HOME and XDG dirs, the models.dev fetch
// off, and its global config dir seeded so that its background `npm install
// @opencode-ai/plugin` finds nothing to do (it installs only when node_modules is missing
// or the lock file lacks the package). Exit code 0 = pass.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { check, finish, make_tiny_model, start_server } from "../npm_harness.mjs";

const [hearth, scriptedServe, source, work] = process.argv.slice(2);
const npmDir = path.join(source, "tools/npm/node_modules");
// OpenCode's own binary, from the platform package the opencode-ai launcher package would
// install (tools/npm lists them directly): the baseline build on CPUs without AVX2.
const avx2 = /\bavx2\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
const opencode = [avx2 ? "opencode-linux-x64" : null, "opencode-linux-x64-baseline"].filter(Boolean)
  .map((pkg) => path.join(npmDir, pkg, "bin/opencode")).find((p) => existsSync(p) && statSync(p).size > 1e6);
if (!opencode) {
  console.log("FAIL the OpenCode binary is missing (tools/npm/node_modules/opencode-linux-x64*: run scripts/setup.sh, " +
    "npm ci in tools/npm; only Linux x64 is provided)");
  process.exit(1);
}

rmSync(work, { recursive: true, force: true });
const home = path.join(work, "home"), project = path.join(work, "project");
mkdirSync(path.join(home, ".config/opencode/node_modules"), { recursive: true });
writeFileSync(path.join(home, ".config/opencode/package-lock.json"),
  JSON.stringify({ packages: { "": { dependencies: { "@opencode-ai/plugin": "1.18.33" } } } }));
mkdirSync(project, { recursive: true });

// Starts a server; resolves to { proc, url, stdout } once it prints its URL.
function runOpencode(config, model, prompt) {
  const env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local/share"), XDG_CACHE_HOME: path.join(home, ".cache"),
    XDG_STATE_HOME: path.join(home, ".local/state"), OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
    OPENCODE_DISABLE_MODELS_FETCH: "1", OPENCODE_DISABLE_AUTOUPDATE: "1", OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_PROJECT_CONFIG: "1", OPENCODE_DISABLE_SHARE: "1" };
  const r = spawnSync(opencode, ["run", "--print-logs", "--format", "json", "-m", model], { cwd: project, env,
    input: prompt, encoding: "utf8", timeout: 180000, maxBuffer: 64 << 20 });
  const events = [];
  for (const line of (r.stdout ?? "").split("\n")) {
    if (!line.trim()) continue;
    try { events.push(JSON.parse(line)); } catch { events.push({ type: "unparsed", line }); }
  }
  return { status: r.status, signal: r.signal, events, stderr: r.stderr ?? "" };
}

// Responses of the chat route by status, from the server's /metrics.
async function chatStatuses(url) {
  const text = await (await fetch(url.replace(/\/v1$/, "/metrics"))).text();
  const out = {};
  for (const m of text.matchAll(/^hearth_http_responses_total\{route="([^"]+)",status="(\d+)"\} (\d+)$/gm))
    if (m[1] === "/v1/chat/completions") out[m[2]] = Number(m[3]);
  const prompt = Number(/^hearth_prompt_tokens_total (\S+)$/m.exec(text)?.[1] ?? 0);
  return { statuses: out, prompt };
}

function expectCleanSession(r) {
  const tail = r.stderr.split("\n").slice(-30).join("\n");
  assert.equal(r.status, 0, `opencode exited with ${r.status ?? r.signal}\n${tail}`);
  const bad = r.events.filter((e) => e.type === "error" || e.type === "unparsed");
  assert.deepEqual(bad, [], `error events\n${tail}`);
  assert.ok(!/AI_[A-Za-z]*Error|ProviderError|APICallError/.test(r.stderr), `provider error in the log\n${tail}`);
  const finishes = r.events.filter((e) => e.type === "step_finish").map((e) => e.part.reason);
  assert.ok(finishes.length >= 1, `no step_finish event\n${JSON.stringify(r.events).slice(0, 2000)}`);
  return finishes;
}


// A synthetic tiny Qwen3 (random weights, the real Qwen3 tokenizer and chat template, 40,960
// tokens of context). Not the committed demo model: its 2,048-token context can't hold
// OpenCode's first request, and a real overflow answered with context_length_exceeded
// sends OpenCode into compacting and retrying without end.
const modelFile = make_tiny_model(hearth, source, work, "q8_0", "tiny-q8_0.gguf");
const serveArgs = ["serve", "-m", modelFile, "--port", "0"];
// hearth serve prints the provider config after the URL line: wait for all of it.
const real = await start_server(hearth, serveArgs, { cwd: source, ready: (out) => /\n}\n/.test(out) });
// The snippet hearth printed, as a user would paste it.
const snippet = JSON.parse(real.stdout.slice(real.stdout.indexOf("\n{") + 1));
const modelId = Object.keys(snippet.provider.hearth.models)[0];

await check("OpenCode against hearth serve (tiny random model): requests accepted, session ends cleanly", async () => {
  const config = structuredClone(snippet);
  config.provider.hearth.models[modelId].limit.output = 32;
  const r = runOpencode(config, snippet.model, "Say hello in one short sentence.");
  const finishes = expectCleanSession(r);
  assert.ok(finishes.every((f) => ["stop", "length"].includes(f)), JSON.stringify(finishes));
  const m = await chatStatuses(real.url);
  assert.deepEqual(Object.keys(m.statuses), ["200"], `chat statuses ${JSON.stringify(m.statuses)}`);
  assert.ok(m.statuses["200"] >= 2, `expected the title and the agent request, got ${m.statuses["200"]}`);
  assert.ok(m.prompt > 3000, `the agent request (system prompt + tools) should be thousands of tokens, got ${m.prompt}`);
});

const scripted = await start_server(scriptedServe, [modelFile], { cwd: source });

await check("OpenCode runs a streamed tool call and sends the result back (scripted model)", async () => {
  const config = structuredClone(snippet);
  const provider = config.provider.hearth;
  provider.options.baseURL = scripted.url;
  provider.models = { scripted: { ...provider.models[modelId], name: "scripted", limit: { context: 16384, output: 256 } } };
  config.model = "hearth/scripted";
  // The file's text is the model's next answer (the scripted model reads it from the tool result).
  writeFileSync(path.join(project, "hello.txt"), "greeting <<<SCRIPTThe file says hello.SCRIPT>>>\n");
  const call = "<think>\nI should read the file.\n</think>\n\n" +
    "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"filePath\": \"hello.txt\"}}\n</tool_call>";
  const r = runOpencode(config, "hearth/scripted", `What does hello.txt say? <<<SCRIPT${call}SCRIPT>>>`);
  const finishes = expectCleanSession(r);
  const tools = r.events.filter((e) => e.type === "tool_use").map((e) => e.part);
  assert.equal(tools.length, 1, JSON.stringify(r.events).slice(0, 2000));
  assert.equal(tools[0].tool, "read");
  assert.equal(tools[0].state.status, "completed", JSON.stringify(tools[0].state).slice(0, 500));
  assert.deepEqual(tools[0].state.input, { filePath: "hello.txt" });
  assert.match(tools[0].callID, /^call_/);
  const text = r.events.filter((e) => e.type === "text").map((e) => e.part.text).join("");
  assert.equal(text, "The file says hello.");
  assert.deepEqual(finishes, ["tool-calls", "stop"]);
  const m = await chatStatuses(scripted.url);
  assert.deepEqual(Object.keys(m.statuses), ["200"], `chat statuses ${JSON.stringify(m.statuses)}`);
});

await finish({ "hearth serve": real, scripted_serve: scripted });
