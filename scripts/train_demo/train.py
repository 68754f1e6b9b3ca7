"""Trains hearth's demo model: a ~14M-parameter Qwen3ForCausalLM (q/k norms, GQA, SwiGLU,
tied embeddings) with its own 4096-token byte-level BPE vocabulary, on the Python standard
library (see corpus.py), and writes the HF folder plus the reference fixtures.

  python3 train.py --out DIR [--quick] [--steps N] [--until-step N] [--resume]

Reproducible: everything is seeded, batch k is drawn from a generator seeded with
(seed, k), so a run resumed from a checkpoint (--resume; written every --ckpt-every steps
and at --until-step) sees the same batches as one that never stopped. --until-step ends
the process after that step (training in several shorter runs); the export happens only
when the last step is done. --quick: an eighth of the files, a few steps, all outputs.

Outputs in --out: hf/ (config.json, model.safetensors in F16, tokenizer.json,
tokenizer_config.json with a ChatML chat_template, generation_config.json),
heldout.txt (the fixture text), reference.json (reference.py), train_log.json.
The weights are rounded to F16 before the reference figures are computed, so the F16
file is exactly the model PyTorch measured (in float32 arithmetic).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import reference  # noqa: E402

# hearth's kRegexQwen2 (src/tokenizer/pretokenize.h): GGUF then names it "qwen2".
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

SHAPE = dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=8, num_attention_heads=6,
             num_key_value_heads=2, head_dim=64)
VOCAB = 4096
SEQ = 512
HELDOUT_FIXTURE_TOKENS = 4096


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=64, help="sequences of SEQ tokens per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--until-step", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--resume", action="store_true")
    return p.parse_args()


def train_tokenizer(texts, path):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=corpus.SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.save(path)
    return tok


def encode_stream(tok, docs, eot):
    """Documents joined by <|endoftext|> as one int32 tensor."""
    out = []
    for enc in tok.encode_batch(docs):
        out.extend(enc.ids)
        out.append(eot)
    return torch.tensor(out, dtype=torch.int32)


def batch_at(stream, step, seed, batch, device):
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(stream) - SEQ - 1, (batch,), generator=g)
    rows = torch.stack([stream[s:s + SEQ + 1] for s in starts.tolist()]).to(device, non_blocking=True).long()
    return rows[:, :-1], rows[:, 1:]


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    frac = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@torch.no_grad()
def eval_loss(model, stream, n_seq=64):
    """Mean loss on the first n_seq non-overlapping SEQ windows of a held-out stream."""
    model.eval()
    n = min(n_seq, (len(stream) - 1) // SEQ)
    if n == 0:
        return float("nan")
    x = stream[:n * SEQ + 1].long().cuda()
    total = 0.0
    for i in range(0, n, 16):
        xi = torch.stack([x[j * SEQ:(j + 1) * SEQ] for j in range(i, min(n, i + 16))])
        yi = torch.stack([x[j * SEQ + 1:(j + 1) * SEQ + 1] for j in range(i, min(n, i + 16))])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=xi, use_cache=False).logits
        total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yi.reshape(-1), reduction="sum").item()
    model.train()
    return total / (n * SEQ)


def heldout_fixture_text(tok, heldout_files):
    """The held-out files joined by blank lines, cut at the end of the line where the
    HELDOUT_FIXTURE_TOKENS-th token falls."""
    text = "\n\n".join(t for _, t in heldout_files)
    enc = tok.encode(text)
    if len(enc.ids) <= HELDOUT_FIXTURE_TOKENS:
        return text
    cut = enc.offsets[HELDOUT_FIXTURE_TOKENS][0]
    nl = text.find("\n", cut)
    return text[:nl + 1] if nl >= 0 else text


def write_hf(model, tok, out_dir, ids):
    os.makedirs(out_dir, exist_ok=True)
    model.to(torch.float16).save_pretrained(out_dir)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": corpus.IM_END,
           "pad_token": corpus.EOT, "add_bos_token": False, "model_max_length": 2048,
           "chat_template": CHAT_TEMPLATE}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": ids["eot"], "eos_token_id": [ids["im_end"], ids["eot"]],
                   "pad_token_id": ids["eot"], "do_sample": False}, f, indent=2)


def main():
    a = parse_args()
    if a.quick:
        a.steps, a.batch, a.ckpt_every, a.eval_every, a.warmup = 30, 16, 15, 10, 5
    from tokenizers import Tokenizer
    from transformers import Qwen3Config, Qwen3ForCausalLM

    t_start = time.time()
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    ckpt_dir = os.path.join(a.out, "ckpt")
    os.makedirs(ckpt_dir, exist_ok=True)
    log = {"args": vars(a), "events": []}

    c = corpus.build(seed=a.seed, quick=a.quick)
    print("corpus", json.dumps(c["meta"]), flush=True)
    tok_path = os.path.join(ckpt_dir, "tokenizer.json")
    if a.resume and os.path.exists(tok_path):
        tok = Tokenizer.from_file(tok_path)
    else:
        tok = train_tokenizer(c["tokenizer_texts"], tok_path)
    ids = {"eot": tok.token_to_id(corpus.EOT), "im_start": tok.token_to_id(corpus.IM_START),
           "im_end": tok.token_to_id(corpus.IM_END)}
    t_tok = time.time()
    stream = encode_stream(tok, c["train_docs"], ids["eot"])
    held_stream = encode_stream(tok, [t for _, t in c["heldout_files"]], ids["eot"])
    print(f"tokenizer {tok.get_vocab_size()} tokens ({t_tok - t_start:.1f}s); train {len(stream)} tokens, "
          f"held-out {len(held_stream)} tokens ({time.time() - t_tok:.1f}s)", flush=True)

    cfg = Qwen3Config(vocab_size=tok.get_vocab_size(), max_position_embeddings=2048, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, bos_token_id=ids["eot"], eos_token_id=[ids["im_end"], ids["eot"]],
                      pad_token_id=ids["eot"], **SHAPE)
    model = Qwen3ForCausalLM(cfg).cuda()
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step = 0
    ckpts = sorted(f for f in os.listdir(ckpt_dir) if f.startswith("step_"))
    if a.resume and ckpts:
        st = torch.load(os.path.join(ckpt_dir, ckpts[-1]), map_location="cuda")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        log = st["log"]
        print(f"resumed from {ckpts[-1]} at step {step}", flush=True)
    print(f"model {n_params} parameters", flush=True)

    def save_ckpt():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log},
                   os.path.join(ckpt_dir, f"step_{step:06d}.pt"))

    model.train()
    t0, tokens_done = time.time(), 0
    while step < a.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        x, y = batch_at(stream, step, a.seed, a.batch, "cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_done += x.numel()
        if step % 50 == 0 or step == a.steps:
            dt = time.time() - t0
            print(f"step {step} loss {loss.item():.4f} lr {lr_at(step - 1, a):.2e} {tokens_done / dt:.0f} tok/s", flush=True)
        if step % a.eval_every == 0 or step == a.steps:
            ev = eval_loss(model, held_stream)
            log["events"].append({"step": step, "train_loss": loss.item(), "heldout_loss": ev, "time_s": time.time() - t0})
            print(f"step {step} held-out loss {ev:.4f} (ppl {math.exp(ev):.2f})", flush=True)
        if step % a.ckpt_every == 0 or step == a.until_step:
            save_ckpt()
        if step == a.until_step and step < a.steps:
            print(f"stopping after step {step} (--until-step); continue with --resume", flush=True)
            return
    torch.cuda.synchronize()
    log.setdefault("train_s", 0.0)
    log["train_s"] += time.time() - t0
    log["tokens_per_s"] = tokens_done / (time.time() - t0)

    # Export: round to F16 (what the file holds), then measure that model in float32.
    hf_dir = os.path.join(a.out, "hf")
    write_hf(model, tok, hf_dir, ids)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    ref_model = Qwen3ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).cuda().eval()
    text = heldout_fixture_text(tok, c["heldout_files"])
    with open(os.path.join(a.out, "heldout.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    ref = reference.make_reference(ref_model, tok, text, [ids["im_end"], ids["eot"]])
    all_ids = held_stream.tolist()
    ppl_all = reference.perplexity(ref_model, all_ids, 512, 256)
    ref["meta"] = dict(c["meta"], n_params=n_params, vocab=tok.get_vocab_size(), steps=a.steps, batch=a.batch,
                       seq=SEQ, lr=a.lr, seed=a.seed, train_tokens=len(stream), heldout_all_tokens=len(all_ids),
                       heldout_all_ppl_512_256=ppl_all[0], torch=torch.__version__,
                       transformers=__import__("transformers").__version__,
                       tokenizers=__import__("tokenizers").__version__, gpu=torch.cuda.get_device_name())
    # Tokenizer samples: a few held-out snippets with odd characters, and their ids.
    samples = [text[:400], text[-300:], "def héllo_wörld(x):\n\treturn x  # ünïcode ✓ 123456\r\n",
               "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"]
    ref["tokenizer_samples"] = [{"text": s, "ids": tok.encode(s).ids} for s in samples]
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f)
    log["total_s"] = time.time() - t_start
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print("perplexity", json.dumps(ref["perplexity"]), "all held-out", ppl_all[0], flush=True)
    for g in ref["generate"]:
        print("---", g["kind"], repr(g["prompt"]), "->", repr(g["text"]), flush=True)
    print(f"done in {time.time() - t_start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
