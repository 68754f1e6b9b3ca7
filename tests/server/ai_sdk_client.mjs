// End-to-end test of hearth's server with the Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`,
// the provider OpenCode uses), from tools/npm.
//   node ai_sdk_client.mjs HEARTH_BINARY SCRIPTED_SERVE_BINARY SOURCE_DIR WORK_DIR
// Two servers:
// - `hearth serve` on a tiny random Qwen3 model (real tokenizer and chat template), with
//   --api-key-file: plain and streamed text (streamed == generated at temperature 0, usage
//   included), model options in the body (chat_template_kwargs, top_k), and errors as the
//   SDK surfaces them (overflow 400 with OpenAI's wording, a bad field 400 without it, 401).
// - scripted_serve: the same server code in front of a scripted "model" that answers
//   with the text between <<<SCRIPT and SCRIPT>>> in the prompt, for what a random model
//   never writes: reasoning split, parallel tool calls with streamed arguments (the SDK,
//   like OpenCode, finishes a call as soon as its arguments parse, so a JSON-valid prefix
//   would show up as wrong input here), and a tool round trip.
// Exit code 0 = pass.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";
import { check, finish, make_tiny_model, start_server } from "../npm_harness.mjs";

const [hearth, scriptedServe, source, work] = process.argv.slice(2);
const require = createRequire(path.join(source, "tools/npm/package.json"));
let ai, compatible;
try {
  ai = require("ai");
  compatible = require("@ai-sdk/openai-compatible");
} catch (e) {
  console.log(`FAIL the AI SDK packages are missing (${e.message.split("\n")[0]}): run scripts/setup.sh (npm ci in tools/npm)`);
  process.exit(1);
}
const { generateText, streamText, tool, jsonSchema, APICallError } = ai;
const { createOpenAICompatible } = compatible;

const model = make_tiny_model(hearth, source, work);
const keyFile = path.join(work, "key.txt");
writeFileSync(keyFile, "sk-aisdk\n");

const real = await start_server(hearth, ["serve", "-m", model, "--port", "0", "-c", "512", "--parallel", "2",
  "--api-key-file", keyFile, "--alias", "tiny"]);
const scripted = await start_server(scriptedServe, [model, "--api-key", "sk-aisdk"]);
const [realURL, scriptedURL] = [real.url, scripted.url];
const provider = (baseURL, apiKey = "sk-aisdk") =>
  createOpenAICompatible({ name: "hearth", baseURL, apiKey, includeUsage: true });
const tiny = provider(realURL).chatModel("tiny");
const scriptedModel = provider(scriptedURL).chatModel("scripted");
const script = (text) => `Answer exactly this: <<<SCRIPT${text}SCRIPT>>>`;


// Everything a streamText run produced, summed up.
async function collect(result) {
  const out = { text: "", reasoning: "", calls: [], inputStarts: {}, inputDeltas: {}, finish: null, usage: null, errors: [] };
  for await (const p of result.fullStream) {
    if (p.type === "text-delta") out.text += p.text;
    else if (p.type === "reasoning-delta") out.reasoning += p.text;
    else if (p.type === "tool-input-start") out.inputStarts[p.id] = p.toolName;
    else if (p.type === "tool-input-delta") (out.inputDeltas[p.id] ??= []).push(p.delta);
    else if (p.type === "tool-call") out.calls.push({ id: p.toolCallId, name: p.toolName, input: p.input });
    else if (p.type === "finish") { out.finish = p.finishReason; out.usage = p.totalUsage; }
    else if (p.type === "error") out.errors.push(p.error);
  }
  return out;
}

// onError: streamText would print stream errors (the expected ones too) on the console.
const base = { maxRetries: 0, temperature: 0, onError: () => {} };

await check("generateText: text, usage and finish reason", async () => {
  const r = await generateText({ ...base, model: tiny, prompt: "Hello there", maxOutputTokens: 8 });
  assert.equal(typeof r.text, "string");
  assert.ok(r.usage.inputTokens > 5, JSON.stringify(r.usage));
  assert.ok(r.usage.outputTokens >= 1 && r.usage.outputTokens <= 8, JSON.stringify(r.usage));
  assert.equal(r.usage.totalTokens, r.usage.inputTokens + r.usage.outputTokens);
  assert.ok(["stop", "length"].includes(r.finishReason), r.finishReason);
});

await check("streamText equals generateText at temperature 0, with usage", async () => {
  const args = { ...base, model: tiny, prompt: "Tell me a story", maxOutputTokens: 12 };
  const whole = await generateText(args);
  const s = await collect(streamText(args));
  assert.deepEqual(s.errors, []);
  assert.equal(s.text, whole.text);
  assert.equal(s.reasoning, whole.reasoningText ?? "");
  assert.equal(s.finish, whole.finishReason);
  assert.equal(s.usage.inputTokens, whole.usage.inputTokens);
  assert.equal(s.usage.outputTokens, whole.usage.outputTokens);
});

await check("model options copied into the body are accepted (chat_template_kwargs, top_k)", async () => {
  const r = await generateText({ ...base, model: tiny, prompt: "Hi", maxOutputTokens: 4,
    providerOptions: { hearth: { chat_template_kwargs: { enable_thinking: false }, top_k: 20 } } });
  assert.ok(r.usage.outputTokens >= 1);
  // enable_thinking false closes an empty think block in the prompt: 4 more prompt tokens.
  const plain = await generateText({ ...base, model: tiny, prompt: "Hi", maxOutputTokens: 4 });
  assert.ok(r.usage.inputTokens > plain.usage.inputTokens, `${r.usage.inputTokens} vs ${plain.usage.inputTokens}`);
});

await check("context overflow: 400 with OpenAI's wording, streamed and not", async () => {
  const args = { ...base, model: tiny, prompt: "word ".repeat(800), maxOutputTokens: 4 };
  await assert.rejects(generateText(args), (e) => APICallError.isInstance(e) && e.statusCode === 400 &&
    /maximum context length is 512 tokens/.test(e.message) && /context_length_exceeded/.test(e.responseBody));
  const s = await collect(streamText(args));
  assert.equal(s.errors.length, 1);
  assert.equal(s.errors[0].statusCode, 400);
});

await check("a bad field is a 400 naming it, without the overflow wording", async () => {
  await assert.rejects(generateText({ ...base, model: tiny, prompt: "x", maxOutputTokens: 4, temperature: 9 }),
    (e) => e.statusCode === 400 && /temperature/.test(e.message) && !/context length/.test(e.message));
});

await check("a wrong API key is a 401", async () => {
  await assert.rejects(generateText({ ...base, model: provider(realURL, "sk-wrong").chatModel("tiny"), prompt: "x" }),
    (e) => e.statusCode === 401);
});

await check("reasoning goes to reasoning parts, never into the text", async () => {
  const args = { ...base, model: scriptedModel, prompt: script("<think>\nPlan the answer.\n</think>\n\nForty-two.") };
  const r = await generateText(args);
  assert.equal(r.reasoningText, "Plan the answer.");
  assert.equal(r.text, "Forty-two.");
  assert.equal(r.finishReason, "stop");
  assert.ok(r.usage.outputTokenDetails.reasoningTokens > 3, JSON.stringify(r.usage));
  const s = await collect(streamText(args));
  assert.equal(s.reasoning, "Plan the answer.");
  assert.equal(s.text, "Forty-two.");
  assert.equal(s.usage.outputTokenDetails.reasoningTokens, r.usage.outputTokenDetails.reasoningTokens);
});

const tools = {
  read: tool({ description: "Read a file", inputSchema: jsonSchema({ $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object", properties: { filePath: { type: "string" }, limit: { type: "integer", minimum: 0 } },
    required: ["filePath"] }) }),
  glob: tool({ description: "Find files", inputSchema: jsonSchema({ type: "object",
    properties: { pattern: { type: "string" }, path: { type: "string" } }, required: ["pattern"] }) }),
};
const twoCalls = "<think>\nI need both.\n</think>\n\n" +
  "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"filePath\": \"/tmp/project/hello.txt\", \"limit\": {\"n\": 2000}}}\n</tool_call>\n" +
  "<tool_call>\n{\"name\": \"glob\", \"arguments\": {\"pattern\": \"src/**/*.cpp\", \"path\": \"/tmp/project\"}}\n</tool_call>";
const wantCalls = [
  { name: "read", input: { filePath: "/tmp/project/hello.txt", limit: { n: 2000 } } },
  { name: "glob", input: { pattern: "src/**/*.cpp", path: "/tmp/project" } },
];

await check("parallel tool calls: streamed arguments add up to the generated calls", async () => {
  const args = { ...base, model: scriptedModel, prompt: script(twoCalls), tools };
  const r = await generateText(args);
  assert.equal(r.finishReason, "tool-calls");
  assert.equal(r.reasoningText, "I need both.");
  assert.deepEqual(r.toolCalls.map((c) => ({ name: c.toolName, input: c.input })), wantCalls);
  assert.notEqual(r.toolCalls[0].toolCallId, r.toolCalls[1].toolCallId);
  const s = await collect(streamText(args));
  assert.deepEqual(s.errors, []);
  assert.equal(s.finish, "tool-calls");
  assert.deepEqual(s.calls.map((c) => ({ name: c.name, input: c.input })), wantCalls);
  for (const c of s.calls) {
    assert.equal(s.inputStarts[c.id], c.name);
    // Arguments arrive in pieces (one per token), and the pieces are the arguments.
    assert.ok(s.inputDeltas[c.id].length > 3, `${c.name}: ${s.inputDeltas[c.id].length} argument deltas`);
    assert.deepEqual(JSON.parse(s.inputDeltas[c.id].join("")), c.input);
  }
});

await check("a forced tool and a tool round trip (assistant tool_calls + tool result sent back)", async () => {
  const first = await generateText({ ...base, model: scriptedModel, tools, toolChoice: { type: "tool", toolName: "read" },
    // The server forces the call by writing its start after a closed think block; the
    // script includes that prefill and goes on from it.
    prompt: script("<think>\n\n</think>\n\n<tool_call>\n{\"name\": \"read\", \"arguments\": {\"filePath\": \"a.txt\"}}\n</tool_call>") });
  assert.equal(first.toolCalls.length, 1);
  assert.equal(first.toolCalls[0].toolName, "read");
  const call = first.toolCalls[0];
  const messages = [
    { role: "user", content: "Read a.txt" },
    { role: "assistant", content: [{ type: "tool-call", toolCallId: call.toolCallId, toolName: "read", input: call.input }] },
    { role: "tool", content: [{ type: "tool-result", toolCallId: call.toolCallId, toolName: "read",
      output: { type: "text", value: script("The file says hello.") } }] },
  ];
  const s = await collect(streamText({ ...base, model: scriptedModel, tools, messages }));
  assert.deepEqual(s.errors, []);
  assert.equal(s.text, "The file says hello.");
  assert.equal(s.finish, "stop");
});

await finish({ "hearth serve": real, scripted_serve: scripted });
