"""After training: converts the HF folder that run_device.sh brought back into the committed
demo model, copies the reference fixtures, and records how hearth compares with PyTorch.

  python3 scripts/train_demo/finish.py DEVICE_OUT_DIR [--hearth build/bin/hearth]

DEVICE_OUT_DIR holds demo.tgz.part-* (unpacked into DEVICE_OUT_DIR/unpacked). Writes
  assets/demo/hearth-demo-coder-q8_0.gguf   (hearth make-model --from ... --type q8_0)
  fixtures/demo/heldout.txt, fixtures/demo/reference.json   (from the device, unchanged)
  fixtures/demo/hearth_check.json   hearth's perplexity and greedy tokens for the F16 and
                                    Q8_0 GGUF files next to PyTorch's (the F16 file is not
                                    committed, so this comparison is recorded once here).
"""
import argparse
import glob
import io
import json
import os
import shutil
import subprocess
import tarfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAME = "hearth-demo-coder"


def hearth_json(hearth, *args):
    out = subprocess.run([hearth, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("device_out")
    p.add_argument("--hearth", default=os.path.join(ROOT, "build", "bin", "hearth"))
    a = p.parse_args()
    work = os.path.join(a.device_out, "unpacked")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    blob = b"".join(open(f, "rb").read() for f in sorted(glob.glob(os.path.join(a.device_out, "demo.tgz.part-*"))))
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as t:
        t.extractall(work)
    hf = os.path.join(work, NAME)  # the folder name becomes general.name
    os.rename(os.path.join(work, "hf"), hf)
    q8 = os.path.join(ROOT, "assets", "demo", f"{NAME}-q8_0.gguf")
    f16 = os.path.join(work, f"{NAME}-f16.gguf")
    os.makedirs(os.path.dirname(q8), exist_ok=True)
    subprocess.run([a.hearth, "make-model", "--from", hf, "--type", "q8_0", "--out", q8], check=True)
    subprocess.run([a.hearth, "make-model", "--from", hf, "--type", "f16", "--out", f16], check=True)
    fx = os.path.join(ROOT, "fixtures", "demo")
    os.makedirs(fx, exist_ok=True)
    shutil.copy(os.path.join(work, "heldout.txt"), os.path.join(fx, "heldout.txt"))
    ref = json.load(open(os.path.join(work, "reference.json")))
    with open(os.path.join(fx, "reference.json"), "w") as f:
        json.dump(ref, f, indent=None, separators=(",", ":"))
    text = os.path.join(fx, "heldout.txt")
    check = {"pytorch": ref["perplexity"], "files": {}}
    for label, model in (("f16", f16), ("q8_0", q8)):
        r = {"perplexity": [], "generate": []}
        for pp in ref["perplexity"]:
            h = hearth_json(a.hearth, "perplexity", "-m", model, "-f", text, "--ctx", str(pp["ctx"]),
                            "--stride", str(pp["stride"]), "--json")
            r["perplexity"].append(dict(h, rel_diff=h["ppl"] / pp["ppl"] - 1))
        for g in ref["generate"]:
            h = hearth_json(a.hearth, "run", "-m", model, "--raw", "--prompt-tokens", ",".join(map(str, g["prompt_ids"])),
                            "-n", str(len(g["tokens"])), "--temp", "0", "--json")
            same = next((i for i, (x, y) in enumerate(zip(h["tokens"], g["tokens"])) if x != y),
                        min(len(h["tokens"]), len(g["tokens"])))
            r["generate"].append({"prompt": g["prompt"], "equal": h["tokens"] == g["tokens"], "first_diff": same,
                                  "tokens": h["tokens"]})
        check["files"][label] = r
        print(label, json.dumps([(x["ppl"], x["rel_diff"]) for x in r["perplexity"]]),
              [x["equal"] for x in r["generate"]], flush=True)
    with open(os.path.join(fx, "hearth_check.json"), "w") as f:
        json.dump(check, f, indent=1)


if __name__ == "__main__":
    main()
