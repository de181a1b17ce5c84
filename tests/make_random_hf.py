#!/usr/bin/python3
"""make_random_hf.py - small random-weight Hugging Face checkpoints for architecture cross-checks.

  make_random_hf.py [OUT_DIR]        (default build/random-hf)

Writes one directory per case (config.json + model.safetensors, plus vocab.json + merges.txt for
the byte-level ones), deterministic from fixed seeds (numpy's legacy RandomState, stable across
versions):
  qwen2-tied     Qwen2, 4 heads / 2 KV heads, q/k/v biases, tied head, embedding padded past
                 the tokenizer (as Qwen2 checkpoints are), rope_theta 1e6
  qwen2-untied   the same shape with an lm_head, weights stored as BF16
  llama-gqa      Llama, 4 heads / 2 KV heads, untied, rope_theta 5e5; q/k rows in the Hugging
                 Face rotate-halves layout, so a converter must un-permute them for GGUF
  mistral        Mistral, 8 heads / 2 KV heads, untied, weights stored as F16, a sliding window
                 longer than any test sequence
Llama and Mistral have no tokenizer files: convert them with --tokenizer-bin (512 tokens).
Prints one line per directory written.
"""
import json
import os
import struct
import sys

import numpy as np

# ------------------------------------------------------------------------------ safetensors writer


def to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    """tensors: name -> float array; dtype F32, F16 or BF16 for every tensor."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        x = tensors[name]
        if dtype == "F32":
            raw = x.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = x.astype("<f2").tobytes()
        else:
            raw = to_bf16_bits(x).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(x.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data section 8-byte aligned, as safetensors writers do
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)

# ------------------------------------------------------------------------------ tokenizer


def byte_chars():
    """GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the rest
    are shifted to U+0100 and up. Returns the 256 characters in vocabulary order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in keep] + [chars[b] for b in range(256) if b not in keep]


MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "Ġ w", "a t", "e n",
          "Ġ o", "i s", "Ġ b", "e d", "o u", "n d", "Ġa nd", "Ġ i", "in g", "Ġ h", "Ġ m", "o r"]


def byte_bpe():
    """A tiny byte-level BPE (GPT-2 style): 256 byte tokens, the merges above (each joins two
    earlier tokens), then <|endoftext|>. Returns (tokens in id order, merges)."""
    vocab = byte_chars()
    for m in MERGES:
        a, b = m.split()
        assert a in vocab and b in vocab and a + b not in vocab, m
        vocab.append(a + b)
    return vocab + ["<|endoftext|>"], MERGES


def write_byte_bpe(d):
    vocab, merges = byte_bpe()
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


# ------------------------------------------------------------------------------ weights


class Init:
    def __init__(self, seed):
        self.rng = np.random.RandomState(seed)

    def mat(self, out, inp, gain=1.0):
        """[out, in] (torch Linear layout), std gain/sqrt(in): activations keep their scale."""
        return self.rng.standard_normal((out, inp)) * (gain / np.sqrt(inp))

    def vec(self, n, std, mean=0.0):
        return mean + std * self.rng.standard_normal(n)


def llama_family(cfg, seed, bias):
    """Llama / Mistral / Qwen2 weights, Hugging Face names and layout."""
    r = Init(seed)
    dim, ffn, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = dim // H
    t = {"model.embed_tokens.weight": 0.25 * r.rng.standard_normal((V, dim)),  # small: blocks dominate
         "model.norm.weight": r.vec(dim, 0.1, 1.0)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        t[p + "input_layernorm.weight"] = r.vec(dim, 0.1, 1.0)
        t[p + "post_attention_layernorm.weight"] = r.vec(dim, 0.1, 1.0)
        # q and k get a larger gain so attention is far from uniform and RoPE matters
        t[p + "self_attn.q_proj.weight"] = r.mat(H * hd, dim, 1.2)
        t[p + "self_attn.k_proj.weight"] = r.mat(Hkv * hd, dim, 1.2)
        t[p + "self_attn.v_proj.weight"] = r.mat(Hkv * hd, dim)
        t[p + "self_attn.o_proj.weight"] = r.mat(dim, H * hd)
        if bias:
            t[p + "self_attn.q_proj.bias"] = r.vec(H * hd, 0.3)
            t[p + "self_attn.k_proj.bias"] = r.vec(Hkv * hd, 0.5)
            t[p + "self_attn.v_proj.bias"] = r.vec(Hkv * hd, 0.3)
        t[p + "mlp.gate_proj.weight"] = r.mat(ffn, dim)
        t[p + "mlp.up_proj.weight"] = r.mat(ffn, dim)
        t[p + "mlp.down_proj.weight"] = r.mat(dim, ffn)
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = r.mat(V, dim, 4.0)
    return t


def config(model_type, **kw):
    cfg = {"architectures": [{"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM",
                              "mistral": "MistralForCausalLM"}[model_type]],
           "model_type": model_type, "hidden_size": 64, "intermediate_size": 160,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 256, "hidden_act": "silu", "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


def cases(n_bpe):
    qwen = dict(vocab_size=n_bpe + 27, rms_norm_eps=1e-6, rope_theta=1000000.0,
                bos_token_id=n_bpe - 1, eos_token_id=n_bpe - 1, use_sliding_window=False)
    return [
        ("qwen2-tied", 101, "F32", True, config("qwen2", tie_word_embeddings=True, **qwen)),
        ("qwen2-untied", 102, "BF16", True, config("qwen2", tie_word_embeddings=False, **qwen)),
        ("llama-gqa", 103, "F32", False, config("llama", vocab_size=512, rms_norm_eps=1e-5, rope_theta=500000.0,
                                                 tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
        ("mistral", 104, "F16", False, config("mistral", vocab_size=512, num_attention_heads=8, rms_norm_eps=1e-5,
                                               rope_theta=1000000.0, sliding_window=4096, tie_word_embeddings=False,
                                               bos_token_id=1, eos_token_id=2)),
    ]


def main(argv):
    out = argv[0] if argv else "build/random-hf"
    for name, seed, dtype, byte_level, cfg in cases(len(byte_bpe()[0])):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        if byte_level:
            write_byte_bpe(d)
        cfg["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        write_safetensors(os.path.join(d, "model.safetensors"), llama_family(cfg, seed, cfg["model_type"] == "qwen2"), dtype)
        print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
