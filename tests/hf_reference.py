#!/usr/bin/python3
"""hf_reference.py - an independent float64 forward pass of Hugging Face checkpoints (numpy only).

Reads a Hugging Face directory (config.json + model.safetensors, or sharded safetensors with
model.safetensors.index.json) of model_type llama, mistral, qwen2, gpt2 or opt, and computes
logits in float64 following the Hugging Face modeling code's semantics (not tfm.h's), so tfm.h
can be checked against it:

  hf_reference.py logits HF_DIR --prompt-ids "1 2 3" [--all] [--check FILE]...
        one line of logits per position (the last one without --all); with --check, compares
        them instead with FILE's rows (max |d| <= --tol, equal argmax; see compare_rows)
  hf_reference.py greedy HF_DIR --prompt-ids "1 2 3" -n N [--check FILE]...
        "generated_ids(N): ..." and the smallest top-1/top-2 gap of the run; with --check, FILE's
        "generated_ids" line must equal them (and every gap be >= 1e-3)
  hf_reference.py check-ref HF_DIR [--logits F]... [--tokens F]... [--tol T]
        against other implementations' files (../shared/ref formats): full logits rows, argmax and
        max logit at every listed position, and the greedy continuation (teacher-forced)
  hf_reference.py compare A B [A2 B2 ...] [--tol T] [--rms-tol R]
        logits files, B the reference (rows of numbers; text up to a ':' is skipped)

Exit status: 0 ok, 1 a check failed, 2 bad input.
"""
import json
import math
import os
import struct
import sys

import numpy as np

# ------------------------------------------------------------------------------ safetensors

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None}


def read_safetensors(path, out):
    """Adds every tensor of one .safetensors file to out (name -> float64 array)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: too short" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header runs past the end" % path)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = memoryview(data)[8 + n:]
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        shape = [int(d) for d in info["shape"]]
        count = int(np.prod(shape)) if shape else 1
        dtype = info["dtype"]
        if dtype not in DTYPES or not 0 <= begin <= end <= len(body):
            raise ValueError("%s: tensor %s: bad dtype or offsets" % (path, name))
        raw = body[begin:end]
        if dtype == "BF16":  # the top 16 bits of a float32
            if len(raw) != 2 * count:
                raise ValueError("%s: tensor %s: size mismatch" % (path, name))
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            dt = np.dtype(DTYPES[dtype]).newbyteorder("<")
            if len(raw) != dt.itemsize * count:
                raise ValueError("%s: tensor %s: size mismatch" % (path, name))
            arr = np.frombuffer(raw, dtype=dt)
        out[name] = arr.astype(np.float64).reshape(shape)


def load_checkpoint(hf_dir):
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    weights = {}
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for name in files:
        read_safetensors(os.path.join(hf_dir, name), weights)
    return cfg, weights


class Weights:
    """Tensor lookup with the optional prefixes checkpoints use (model., transformer., decoder.)."""

    def __init__(self, tensors, prefixes):
        self.t, self.prefixes = tensors, prefixes

    def get(self, name, required=True):
        for p in self.prefixes:
            if p + name in self.t:
                return self.t[p + name]
        if required:
            raise KeyError("tensor %s missing" % name)
        return None

# ------------------------------------------------------------------------------ building blocks


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)  # biased, as torch's layer_norm
    return (x - mean) / np.sqrt(var + eps) * w + b


def linear(x, w, b=None):
    """torch.nn.Linear: w is [out, in]."""
    y = x @ w.T
    return y if b is None else y + b


_erf = np.vectorize(math.erf)


def activation(name):
    tanh_gelu = lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    acts = {
        "relu": lambda x: np.maximum(x, 0.0),
        "silu": lambda x: x / (1.0 + np.exp(-x)),
        "swish": lambda x: x / (1.0 + np.exp(-x)),
        "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
        "gelu_new": tanh_gelu,
        "gelu_pytorch_tanh": tanh_gelu,
        "gelu_fast": tanh_gelu,
    }
    if name not in acts:
        raise ValueError("activation %s not supported by the reference" % name)
    return acts[name]


def rotate_half_rope(x, positions, theta, rot_dim):
    """HF apply_rotary_pos_emb: x [T, H, hd]; pairs (i, i + rot_dim/2) of the first rot_dim dims."""
    inv_freq = 1.0 / theta ** (np.arange(0, rot_dim, 2, dtype=np.float64) / rot_dim)
    freqs = np.outer(positions.astype(np.float64), inv_freq)           # [T, rot_dim/2]
    cos = np.concatenate([np.cos(freqs)] * 2, axis=-1)[:, None, :]     # [T, 1, rot_dim]
    sin = np.concatenate([np.sin(freqs)] * 2, axis=-1)[:, None, :]
    r, rest = x[..., :rot_dim], x[..., rot_dim:]
    half = rot_dim // 2
    rotated = np.concatenate([-r[..., half:], r[..., :half]], axis=-1)
    return np.concatenate([r * cos + rotated * sin, rest], axis=-1)


def attention(q, k, v, scale, window=None):
    """Causal attention. q [T, H, hd], k and v [T, Hkv, hd]; query head h uses KV head
    h // (H / Hkv) (HF repeat_kv). window: keys older than q_pos - window + 1 are masked."""
    T, H, hd = q.shape
    group = H // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) * scale                    # [H, T, T]
    qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
    masked = ki > qi
    if window:
        masked |= ki <= qi - window
    scores = np.where(masked[None], -np.inf, scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p, v).reshape(T, H * hd)

# ------------------------------------------------------------------------------ architectures


def forward_llama(cfg, t, ids):
    """LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM. Returns the final hidden states."""
    W = Weights(t, ["model.", ""])
    mt = cfg["model_type"]
    if cfg.get("rope_scaling"):
        raise ValueError("rope_scaling is not supported by the reference")
    dim, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or dim // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    act = activation(cfg.get("hidden_act", "silu"))
    window = cfg.get("sliding_window") if mt == "mistral" else None
    if mt == "qwen2" and cfg.get("use_sliding_window"):
        raise ValueError("qwen2 sliding window is not supported by the reference")
    pos = np.arange(len(ids))
    x = W.get("embed_tokens.weight")[ids]
    for i in range(cfg["num_hidden_layers"]):
        p = "layers.%d." % i
        h = rms_norm(x, W.get(p + "input_layernorm.weight"), eps)
        a = p + "self_attn."
        q = linear(h, W.get(a + "q_proj.weight"), W.get(a + "q_proj.bias", False)).reshape(-1, H, hd)
        k = linear(h, W.get(a + "k_proj.weight"), W.get(a + "k_proj.bias", False)).reshape(-1, Hkv, hd)
        v = linear(h, W.get(a + "v_proj.weight"), W.get(a + "v_proj.bias", False)).reshape(-1, Hkv, hd)
        q = rotate_half_rope(q, pos, theta, hd)
        k = rotate_half_rope(k, pos, theta, hd)
        o = attention(q, k, v, hd ** -0.5, window)
        x = x + linear(o, W.get(a + "o_proj.weight"), W.get(a + "o_proj.bias", False))
        h = rms_norm(x, W.get(p + "post_attention_layernorm.weight"), eps)
        m = p + "mlp."
        g = act(linear(h, W.get(m + "gate_proj.weight"), W.get(m + "gate_proj.bias", False)))
        u = linear(h, W.get(m + "up_proj.weight"), W.get(m + "up_proj.bias", False))
        x = x + linear(g * u, W.get(m + "down_proj.weight"), W.get(m + "down_proj.bias", False))
    return rms_norm(x, W.get("norm.weight"), eps)


def forward_gpt2(cfg, t, ids):
    """GPT2LMHeadModel. Conv1D weights are stored [in, out]."""
    W = Weights(t, ["transformer.", ""])
    dim, H = cfg["n_embd"], cfg["n_head"]
    hd = dim // H
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    act = activation(cfg.get("activation_function", "gelu_new"))
    x = W.get("wte.weight")[ids] + W.get("wpe.weight")[np.arange(len(ids))]
    for i in range(cfg["n_layer"]):
        p = "h.%d." % i
        h = layer_norm(x, W.get(p + "ln_1.weight"), W.get(p + "ln_1.bias"), eps)
        qkv = h @ W.get(p + "attn.c_attn.weight") + W.get(p + "attn.c_attn.bias")
        q, k, v = (qkv[:, j * dim:(j + 1) * dim].reshape(-1, H, hd) for j in range(3))
        scale = hd ** -0.5 if cfg.get("scale_attn_weights", True) else 1.0
        if cfg.get("scale_attn_by_inverse_layer_idx", False):
            scale /= i + 1
        o = attention(q, k, v, scale)
        x = x + o @ W.get(p + "attn.c_proj.weight") + W.get(p + "attn.c_proj.bias")
        h = layer_norm(x, W.get(p + "ln_2.weight"), W.get(p + "ln_2.bias"), eps)
        h = act(h @ W.get(p + "mlp.c_fc.weight") + W.get(p + "mlp.c_fc.bias"))
        x = x + h @ W.get(p + "mlp.c_proj.weight") + W.get(p + "mlp.c_proj.bias")
    return layer_norm(x, W.get("ln_f.weight"), W.get("ln_f.bias"), eps)


def forward_opt(cfg, t, ids):
    """OPTForCausalLM: learned positions with an offset of 2, pre- or post-LayerNorm."""
    W = Weights(t, ["model.decoder.", "decoder.", ""])
    dim, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = dim // H
    pre = cfg.get("do_layer_norm_before", True)
    act = activation(cfg.get("activation_function", "relu"))
    eps = 1e-5  # OPT's nn.LayerNorm default
    ln = lambda x, name: layer_norm(x, W.get(name + ".weight"), W.get(name + ".bias"), eps)
    bias = lambda name: W.get(name + ".bias", False)
    # an all-ones attention mask gives positions 0..T-1; the table is offset by 2 rows
    x = W.get("embed_tokens.weight")[ids]
    if W.get("project_in.weight", False) is not None:
        x = linear(x, W.get("project_in.weight"))
    x = x + W.get("embed_positions.weight")[np.arange(len(ids)) + 2]
    for i in range(cfg["num_hidden_layers"]):
        p = "layers.%d." % i
        a = p + "self_attn."
        h = ln(x, p + "self_attn_layer_norm") if pre else x
        q = linear(h, W.get(a + "q_proj.weight"), bias(a + "q_proj")) * hd ** -0.5
        k = linear(h, W.get(a + "k_proj.weight"), bias(a + "k_proj"))
        v = linear(h, W.get(a + "v_proj.weight"), bias(a + "v_proj"))
        o = attention(q.reshape(-1, H, hd), k.reshape(-1, H, hd), v.reshape(-1, H, hd), 1.0)
        x = x + linear(o, W.get(a + "out_proj.weight"), bias(a + "out_proj"))
        if not pre:
            x = ln(x, p + "self_attn_layer_norm")
        h = ln(x, p + "final_layer_norm") if pre else x
        h = act(linear(h, W.get(p + "fc1.weight"), bias(p + "fc1")))
        x = x + linear(h, W.get(p + "fc2.weight"), bias(p + "fc2"))
        if not pre:
            x = ln(x, p + "final_layer_norm")
    if pre and not cfg.get("_remove_final_layer_norm", False):
        x = ln(x, "final_layer_norm")
    if W.get("project_out.weight", False) is not None:
        x = linear(x, W.get("project_out.weight"))
    return x


FORWARD = {"llama": forward_llama, "mistral": forward_llama, "qwen2": forward_llama,
           "gpt2": forward_gpt2, "opt": forward_opt}
EMBEDDING = {"llama": (["model.", ""], "embed_tokens.weight"), "mistral": (["model.", ""], "embed_tokens.weight"),
             "qwen2": (["model.", ""], "embed_tokens.weight"), "gpt2": (["transformer.", ""], "wte.weight"),
             "opt": (["model.decoder.", "decoder.", ""], "embed_tokens.weight")}
TIED_DEFAULT = {"gpt2": True, "opt": True}  # tie_word_embeddings when config.json does not say


class Model:
    def __init__(self, hf_dir):
        self.cfg, self.t = load_checkpoint(hf_dir)
        mt = self.cfg.get("model_type")
        if mt not in FORWARD:
            raise ValueError("model_type %r not supported" % mt)
        self.forward_hidden = FORWARD[mt]
        prefixes, name = EMBEDDING[mt]
        tied = self.cfg.get("tie_word_embeddings", TIED_DEFAULT.get(mt, False))
        if tied:
            self.head = Weights(self.t, prefixes).get(name)
        elif "lm_head.weight" in self.t:
            self.head = self.t["lm_head.weight"]
        else:
            raise ValueError("untied model without lm_head.weight")
        self.n_vocab = self.head.shape[0]

    def logits(self, ids, rows=None):
        """Logits [T, V] (or only the given row indices) for the token sequence ids."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            raise ValueError("token id out of range")
        h = self.forward_hidden(self.cfg, self.t, ids)
        if rows is not None:
            h = h[rows]
        return h @ self.head.T

    def greedy(self, prompt, n):
        """Greedy continuation (full recomputation each step) and the smallest top-1/top-2 gap."""
        seq, gaps = list(prompt), []
        for _ in range(n):
            row = self.logits(seq, rows=[len(seq) - 1])[0]
            top2 = np.sort(row)[-2:]
            gaps.append(top2[1] - top2[0])
            seq.append(int(np.argmax(row)))
        return seq[len(prompt):], min(gaps) if gaps else float("inf")

# ------------------------------------------------------------------------------ files


def parse_ids(text):
    return [int(v) for v in text.replace(",", " ").split()]


def read_logits_file(path):
    """Rows of numbers, one per non-empty line (text before a ':' is ignored)."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rsplit(":", 1)[-1].strip()
            if line:
                rows.append(np.array([float(v) for v in line.split()]))
    return rows


def read_ref_logits(path):
    """../shared/ref logits files: 'pos P input_token T argmax A (logits: v ... | max_logit M)'."""
    entries = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) < 6 or w[0] != "pos":
                continue
            e = {"pos": int(w[1]), "token": int(w[3]), "argmax": int(w[5])}
            if w[6] == "logits:":
                e["logits"] = np.array([float(v) for v in w[7:]])
            elif w[6] == "max_logit":
                e["max"] = float(w[7])
            entries.append(e)
    return entries


def read_ref_tokens(path):
    """Prompt and continuation: 'prompt_ids(n): ...' / 'prompt_tokens(n): ...' then
    'generated_ids(n): ...' or 'sequence(n): ...' (prompt included)."""
    fields = {}
    with open(path) as f:
        for line in f:
            if "):" in line:
                key = line.split("(", 1)[0]
                fields[key] = parse_ids(line.split("):", 1)[1])
    prompt = fields.get("prompt_ids", fields.get("prompt_tokens"))
    if "generated_ids" in fields:
        return prompt, fields["generated_ids"]
    return prompt, fields["sequence"][len(prompt):]


def print_rows(rows):
    out = sys.stdout
    for r in rows:
        out.write(" ".join("%.9g" % v for v in r))
        out.write("\n")

# ------------------------------------------------------------------------------ commands


def check_ref_logits(model, path, tol):
    """Full rows, max logit and argmax at every position a reference logits file lists."""
    entries = sorted(read_ref_logits(path), key=lambda e: e["pos"])
    if [e["pos"] for e in entries] != list(range(len(entries))) or not entries:
        raise ValueError("%s: positions are not 0..n-1" % path)
    L = model.logits([e["token"] for e in entries])
    worst_row = worst_max = 0.0
    bad_argmax = 0
    for e in entries:
        row = L[e["pos"]]
        if "logits" in e:
            worst_row = max(worst_row, float(np.max(np.abs(row - e["logits"]))))
        if "max" in e:
            worst_max = max(worst_max, abs(float(row.max()) - e["max"]))
        bad_argmax += int(np.argmax(row)) != e["argmax"]
    good = worst_row <= tol and worst_max <= tol and bad_argmax == 0
    print("%s: %s, %d positions: full rows max|d| %.3g, max logit max|d| %.3g, argmax differs at %d"
          % ("ok" if good else "FAIL", os.path.basename(path), len(entries), worst_row, worst_max, bad_argmax))
    return good


def check_ref_tokens(model, path):
    """The reference's greedy continuation, teacher-forced: argmax at each step equals the next id."""
    prompt, gen = read_ref_tokens(path)
    seq = prompt + gen[:-1]
    got = [int(np.argmax(r)) for r in model.logits(seq, rows=list(range(len(prompt) - 1, len(seq))))]
    same = next((i for i, (x, y) in enumerate(zip(got, gen)) if x != y), len(gen))
    print("%s: %s, greedy ids equal for %d of %d" % ("ok" if same == len(gen) else "FAIL", os.path.basename(path), same, len(gen)))
    return same == len(gen)


def compare_rows(A, B, tol, rms_tol, what):
    """A against the reference B ([rows, V]): max |A - B| <= tol, and equal argmaxes or, with
    rms_tol (lossy weight types), rms(A - B) <= rms_tol * rms(B)."""
    if A.shape != B.shape:
        print("FAIL: %s: %s rows x logits, reference %s" % (what, A.shape, B.shape))
        return False
    worst = float(np.max(np.abs(A - B)))
    rel_rms = float(np.sqrt(np.mean((A - B) ** 2) / np.mean(B ** 2)))
    argmax_diff = int(np.sum(np.argmax(A, axis=1) != np.argmax(B, axis=1)))
    good = worst <= tol and (argmax_diff == 0 if rms_tol is None else rel_rms <= rms_tol)
    print("%s: %s: %d rows x %d logits: max|d| %.3g (tolerance %.2g), rms(d)/rms %.3g%s, argmax differs in %d"
          % ("ok" if good else "FAIL", what, A.shape[0], A.shape[1], worst, tol, rel_rms,
             "" if rms_tol is None else " (tolerance %.2g)" % rms_tol, argmax_diff))
    return good


def check_greedy(ids, gap, path):
    """ids equal the 'generated_ids' line of path, and every step was decided by a clear margin."""
    with open(path) as f:
        got = parse_ids(f.read().split(":", 1)[-1])
    good = got == ids and gap >= 1e-3
    print("%s: %s: %d greedy ids %s, smallest top-1/top-2 gap %.3g%s"
          % ("ok" if good else "FAIL", os.path.basename(path), len(ids), "equal" if got == ids else "DIFFER",
             gap, "" if gap >= 1e-3 else " (too small to decide)"))
    return good


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["logits", "greedy", "check-ref", "compare"])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--prompt-ids", default="")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--check", action="append", default=[])
    ap.add_argument("--logits", action="append", default=[])
    ap.add_argument("--tokens", action="append", default=[])
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--rms-tol", type=float)
    a = ap.parse_args(argv)
    ok = True
    if a.command == "compare":
        if len(a.paths) % 2:
            raise ValueError("compare takes pairs of files")
        for x, y in zip(a.paths[0::2], a.paths[1::2]):
            ok &= compare_rows(np.array(read_logits_file(x)), np.array(read_logits_file(y)), a.tol, a.rms_tol,
                               "%s vs %s" % (os.path.basename(x), os.path.basename(y)))
        return 0 if ok else 1
    model = Model(a.paths[0])
    if a.command == "check-ref":
        for path in a.logits:
            ok &= check_ref_logits(model, path, a.tol)
        for path in a.tokens:
            ok &= check_ref_tokens(model, path)
        return 0 if ok else 1
    prompt = parse_ids(a.prompt_ids)
    if not prompt:
        raise ValueError("--prompt-ids is empty")
    if a.command == "logits":
        L = model.logits(prompt, rows=None if a.all else [len(prompt) - 1])
        for path in a.check:
            ok &= compare_rows(np.array(read_logits_file(path)), L, a.tol, a.rms_tol, os.path.basename(path))
        if not a.check:
            print_rows(L)
    else:
        ids, gap = model.greedy(prompt, a.n)
        for path in a.check:
            ok &= check_greedy(ids, gap, path)
        if not a.check:
            print("generated_ids(%d): %s" % (len(ids), " ".join(map(str, ids))))
            print("min_gap: %.6g" % gap)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError, KeyError) as e:
        print("hf_reference.py: %s" % e, file=sys.stderr)
        sys.exit(2)
