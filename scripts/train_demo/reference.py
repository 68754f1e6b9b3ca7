"""Reference figures for hearth's demo model, computed with PyTorch/transformers/tokenizers:
the numbers hearth's tests compare against (fixtures/demo/reference.json).

Perplexity (the definition `hearth perplexity` implements, see src/cli/cmd_perplexity.cpp):
  ids = tokenizer.encode(text)      # tokenizers' ids: no BOS, special-token strings parsed
  windows start at 0, stride, 2*stride, ...; a window holds ids[begin : begin + ctx];
  each token t >= 1 is scored once, in the first window that holds it with t > begin,
  i.e. window [begin, end) scores targets max(prev_end, begin + 1) .. end - 1;
  windows stop after the one that reaches the last token.
  ppl = exp(sum of -log p(ids[t] | ids[begin:t]) / number of scored tokens), in float32
  logits with the sum in float64.
Usage as a script (on a machine with a GPU or CPU): python3 reference.py HF_DIR TEXT_FILE [CTX STRIDE]
"""
import json
import math
import sys

import torch

GEN_TOKENS = 48
RAW_PROMPTS = [
    "def fibonacci(n):\n",
    "import os\n\n\ndef list_python_files(path):\n",
    "class Stack:\n    \"\"\"A last-in, first-out stack.\"\"\"\n\n    def __init__(self):\n",
]
CHAT_PROMPTS = [
    "Write a function that returns the factorial of n",
    "Write a function that reverses a string",
    "Write a Python function `is_prime`: Return True if n is a prime number.",
]


@torch.no_grad()
def perplexity(model, ids, ctx, stride):
    """(ppl, nll_sum, n_scored) of `ids` under the definition in the file comment."""
    assert 0 < stride <= ctx
    device = next(model.parameters()).device
    n = len(ids)
    nll, scored, prev_end = 0.0, 0, 0
    begin = 0
    while begin < n:
        end = min(begin + ctx, n)
        window = torch.tensor([ids[begin:end]], device=device)
        logits = model(input_ids=window, use_cache=False).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        first = max(prev_end, begin + 1)
        if first < end:
            rows = torch.arange(first - begin - 1, end - begin - 1, device=device)
            targets = window[0, first - begin:end - begin]
            nll -= logp[rows, targets].double().sum().item()
            scored += end - first
        prev_end = end
        if end == n:
            break
        begin += stride
    return math.exp(nll / scored), nll, scored


@torch.no_grad()
def greedy(model, prompt_ids, stop_ids, n_new=GEN_TOKENS):
    """Greedy continuation with transformers' generate, plus each step's top-2 logit gap
    (a test may accept a different token only where the gap is tiny)."""
    device = next(model.parameters()).device
    x = torch.tensor([prompt_ids], device=device)
    out = model.generate(x, max_new_tokens=n_new, do_sample=False, eos_token_id=stop_ids, pad_token_id=stop_ids[-1],
                         output_scores=True, return_dict_in_generate=True)
    new = out.sequences[0, len(prompt_ids):].tolist()
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    return new, gaps


def chat_text(request):
    return f"<|im_start|>user\n{request}<|im_end|>\n<|im_start|>assistant\n"


def make_reference(model, tok, heldout_text, stop_ids, ctxs=((512, 256), (256, 256))):
    """The fixture dictionary for `heldout_text` (tok: a tokenizers.Tokenizer)."""
    ids = tok.encode(heldout_text).ids
    ref = {"heldout_tokens": len(ids), "heldout_ids": ids, "perplexity": [], "generate": []}
    for ctx, stride in ctxs:
        ppl, nll, n = perplexity(model, ids, ctx, stride)
        ref["perplexity"].append({"ctx": ctx, "stride": stride, "ppl": ppl, "nll_sum": nll, "scored": n})
    for kind, prompts in (("raw", RAW_PROMPTS), ("chat", CHAT_PROMPTS)):
        for p in prompts:
            text = p if kind == "raw" else chat_text(p)
            prompt_ids = tok.encode(text).ids
            new, gaps = greedy(model, prompt_ids, stop_ids)
            ref["generate"].append({"kind": kind, "prompt": p, "prompt_ids": prompt_ids, "tokens": new,
                                    "text": tok.decode(new, skip_special_tokens=False), "top2_gaps": gaps})
    return ref


if __name__ == "__main__":
    from tokenizers import Tokenizer
    from transformers import Qwen3ForCausalLM

    hf_dir, text_file = sys.argv[1], sys.argv[2]
    ctx, stride = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (512, 256)
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m = Qwen3ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).to(dev).eval()
    t = Tokenizer.from_file(f"{hf_dir}/tokenizer.json")
    with open(text_file, encoding="utf-8", newline="") as f:
        ids = t.encode(f.read()).ids
    print(json.dumps(dict(zip(("ppl", "nll_sum", "scored"), perplexity(m, ids, ctx, stride)))))
