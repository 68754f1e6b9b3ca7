#!/usr/bin/env python3
"""Builds small decoder models with Hugging Face transformers and records the reference
outputs hearth's tests compare against.

For each model: random, non-trivial weights (norm weights too), saved as an HF folder
(config.json + model.safetensors, float32), plus reference.json with, for several token
prompts, the float64 greedy continuation (24 tokens) and the top-5 log-probabilities at
every generated step. Prompts are kept only when every greedy step wins by a clear
margin, so a correct float32/float16 implementation must reproduce the tokens exactly.
All weights are rounded to float16-representable values first, so the same reference
holds for every lossless export (F32 and F16 GGUF, the safetensors folder).

Runs where torch and transformers are installed (the GPU machine; CPU is enough):
    python3 scripts/make_reference_models.py --out fixtures/models
"""
import argparse
import json
import os
import zlib

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

N_GENERATE = 24
TOP_K = 5
MIN_MARGIN = 0.05  # log-prob gap between the greedy token and the runner-up, every step

MODELS = {
    # head_dim (32) != hidden/heads (24), untied output head.
    "qwen3-a": (Qwen3ForCausalLM, Qwen3Config, dict(
        hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=384, max_position_embeddings=512,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False)),
    # tied embeddings, GQA 8:2.
    "qwen3-b": (Qwen3ForCausalLM, Qwen3Config, dict(
        hidden_size=128, intermediate_size=192, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, head_dim=16, vocab_size=320, max_position_embeddings=512,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True)),
    # YaRN rope scaling as Qwen3's model card enables it (factor 4), on a short original context.
    "qwen3-yarn": (Qwen3ForCausalLM, Qwen3Config, dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=512,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16})),
    # Qwen2: q/k/v biases.
    "qwen2": (Qwen2ForCausalLM, Qwen2Config, dict(
        hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=288, max_position_embeddings=512, rms_norm_eps=1e-6,
        rope_theta=10000.0, tie_word_embeddings=False)),
    # Llama 3.1-style rope scaling.
    "llama3": (LlamaForCausalLM, LlamaConfig, dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, vocab_size=300, max_position_embeddings=512, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:  # biases
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / fan_in ** 0.5))
            # Every value representable in float16: the folder, GGUF F32 and GGUF F16
            # then hold the same weights and must all reproduce the same reference.
            p.copy_(p.half().float())


def greedy(model, prompt):
    ids = torch.tensor([prompt])
    steps = []
    with torch.no_grad():
        for _ in range(N_GENERATE):
            logits = model(ids).logits[0, -1].double()
            logp = torch.log_softmax(logits, dim=-1)
            top = torch.topk(logp, TOP_K + 1)
            steps.append({
                "token": int(top.indices[0]),
                "top_ids": [int(i) for i in top.indices[:TOP_K]],
                "top_logprobs": [float(v) for v in top.values[:TOP_K]],
                "margin": float(top.values[0] - top.values[1]),
            })
            ids = torch.cat([ids, top.indices[:1].view(1, 1)], dim=1)
    return steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="fixtures/models")
    ap.add_argument("--prompts", type=int, default=4)
    args = ap.parse_args()
    torch.manual_seed(0)
    for name, (model_cls, config_cls, kw) in MODELS.items():
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        config = config_cls(**kw, bos_token_id=1, eos_token_id=2)
        config._attn_implementation = "eager"
        model = model_cls(config).float().eval()
        randomize(model, gen)
        if config.tie_word_embeddings:
            model.tie_weights()
        out_dir = os.path.join(args.out, name)
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        ref_model = model.double()
        prompts = []
        tries = 0
        while len(prompts) < args.prompts and tries < 400:
            tries += 1
            length = [1, 5, 13, 37, 70][len(prompts) % 5] if tries < 200 else 1 + tries % 40
            prompt = torch.randint(3, config.vocab_size, (length,), generator=gen).tolist()
            steps = greedy(ref_model, prompt)
            if min(s["margin"] for s in steps) < MIN_MARGIN:
                continue
            prompts.append({"prompt": prompt, "steps": steps})
        assert len(prompts) == args.prompts, f"{name}: only {len(prompts)} prompts with a clear margin"
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump({"model": name, "transformers": transformers.__version__, "torch": torch.__version__,
                       "dtype": "float64", "n_generate": N_GENERATE, "prompts": prompts}, f, indent=1)
        print(name, "ok:", len(prompts), "prompts, tries", tries)


if __name__ == "__main__":
    main()
