// `hearth serve` with no -m serves the demo model, and the official `openai` npm client
// gets a Python function back for a coding request, plain and streamed (the same text).
//   node openai_demo.mjs HEARTH_BINARY SOURCE_DIR
// The server runs in SOURCE_DIR (where the demo model resolves) on a free port and is ended
// with SIGTERM; it must exit cleanly. Exit code 0 = pass.
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";
import { check, finish, start_server } from "../npm_harness.mjs";

const [hearth, source] = process.argv.slice(2);
const require = createRequire(path.join(source, "tools/npm/package.json"));
const OpenAI = require("openai").default ?? require("openai");

const server = await start_server(hearth, ["serve", "--port", "0", "-c", "1024"], { cwd: source });
const baseURL = server.url;
await check("the demo model answers with a Python function, the same plain and streamed", async () => {
  assert.match(server.log(), /using the demo model .*hearth-demo-coder-q8_0\.gguf/);
  const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0, timeout: 60000 });
  const [{ id }] = (await client.models.list()).data;
  const body = { model: id, max_tokens: 64, temperature: 0,
                 messages: [{ role: "user", content: "Write a function that returns the factorial of n" }] };
  const r = await client.chat.completions.create(body);
  const text = r.choices[0].message.content;
  assert.ok(text.startsWith("def ") && text.includes("):\n    "), `not a Python function: ${JSON.stringify(text)}`);
  let streamed = "";
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true }))
    streamed += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(streamed, text);
  console.log(`     ${JSON.stringify(text.split("\n")[0])}`);
});

await finish({ "hearth serve": server });
