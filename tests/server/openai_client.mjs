// End-to-end test of `hearth serve` with the official `openai` npm client (tools/npm).
//   node openai_client.mjs HEARTH_BINARY SOURCE_DIR WORK_DIR
// Writes a tiny random Qwen3 model (real tokenizer and chat template), starts the server
// on a free port with an API key, and drives it as a client application would: models,
// chat (plain, streamed with usage, a forced tool call), completions with a token-id
// prompt, echo and logprobs, an aborted stream, the overflow and authentication errors.
// Ends the server with SIGTERM and expects a clean exit. Exit code 0 = pass.
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";
import { check, finish, make_tiny_model, start_server } from "../npm_harness.mjs";

const [hearth, source, work] = process.argv.slice(2);
const require = createRequire(path.join(source, "tools/npm/package.json"));
const OpenAI = require("openai").default ?? require("openai");

const model = make_tiny_model(hearth, source, work);
const server = await start_server(hearth, ["serve", "-m", model, "--port", "0", "-c", "512", "--parallel", "2",
  "--api-key", "sk-e2e", "--alias", "tiny"]);
const baseURL = server.url;
const client = new OpenAI({ baseURL, apiKey: "sk-e2e", maxRetries: 0, timeout: 60000 });
const user = (text) => [{ role: "user", content: text }];

await check("models.list reports the served context", async () => {
  const models = await client.models.list();
  assert.equal(models.data[0].id, "tiny");
  assert.equal(models.data[0].context_length, 512);
});

await check("chat completion", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: user("Hello"), max_tokens: 8, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens <= 8);
});

await check("streamed chat with include_usage equals the non-streamed answer", async () => {
  const body = { model: "tiny", messages: user("Tell me a story"), max_tokens: 12, temperature: 0 };
  const whole = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let content = "", roles = 0, finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.role) roles++;
    content += c.delta.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  assert.equal(roles, 1);
  assert.equal(content, whole.choices[0].message.content ?? "");
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
  assert.equal(typeof usage.prompt_tokens_details.cached_tokens, "number");
});

await check("a named tool_choice comes back as a tool call, streamed id/name first", async () => {
  const tools = [{ type: "function", function: { name: "read", description: "Read a file",
    parameters: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object",
      properties: { filePath: { type: "string" } }, required: ["filePath"] } } }];
  const body = { model: "tiny", messages: user("Read hello.txt"), tools, max_tokens: 10, temperature: 0,
    tool_choice: { type: "function", function: { name: "read" } } };
  const r = await client.chat.completions.create(body);
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, "read");
  assert.match(call.id, /^call_/);
  const stream = await client.chat.completions.create({ ...body, stream: true });
  const calls = [];
  for await (const chunk of stream) {
    for (const tc of chunk.choices[0]?.delta.tool_calls ?? []) {
      if (calls[tc.index] === undefined) {
        assert.equal(typeof tc.id, "string");
        assert.equal(tc.function.name, "read");
        calls[tc.index] = "";
      }
      calls[tc.index] += tc.function.arguments ?? "";
    }
  }
  assert.equal(calls.length, 1);
  assert.equal(calls[0], call.function.arguments);
});

await check("completion with a token-id prompt, echo and logprobs", async () => {
  const prompt = [785, 3974, 13876, 38835];
  const r = await client.completions.create({ model: "tiny", prompt, max_tokens: 3, temperature: 0, echo: true,
    logprobs: 2, ignore_eos: true });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, prompt.length + 3);
  assert.equal(lp.token_logprobs[0], null);
  assert.ok(lp.token_logprobs.slice(1).every((x) => x <= 0));
});

await check("an aborted stream leaves the server serving", async () => {
  const ac = new AbortController();
  const stream = await client.completions.create({ model: "tiny", prompt: "forever", max_tokens: 100000,
    ignore_eos: true, stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const _ of stream) if (++n === 3) ac.abort();
  } catch (e) {
    assert.ok(ac.signal.aborted, String(e));
  }
  const r = await client.completions.create({ model: "tiny", prompt: "still there", max_tokens: 2 });
  assert.equal(r.choices.length, 1);
});

await check("context overflow is a 400 context_length_exceeded", async () => {
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: user("word ".repeat(800)), max_tokens: 4 }),
    (e) => e.status === 400 && e.code === "context_length_exceeded" && /maximum context length is 512 tokens/.test(e.message));
});

await check("a wrong API key is a 401", async () => {
  const bad = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e.status === 401);
});

await finish({ "hearth serve": server });
