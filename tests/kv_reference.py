#!/usr/bin/python3
"""Independent replay of the KV-cache pruning rule (A2SF / H2O / WINDOW) on attention steps dumped
by tests/test_kv.c (build/kv_attn.txt), written from the rule's text, not from tfm.h:

  For every layer and KV head separately, each kept token has a score. After a token's attention:
  score[i] = alpha * score[i] + p[i] over the kept tokens, p the softmax actually used (summed over
  the query heads of a group); the new token enters with its own p. When more than budget tokens
  are kept, the one with the smallest score is evicted, except the protected ones (the last
  n_recent positions, the first n_sink positions); ties evict the oldest.
  H2O: alpha = 1, n_recent = budget / 2 (when not given). WINDOW: keep the first n_sink and the
  last budget - n_sink positions. FULL: no eviction.

Only the positions and p of each step are taken from the dump; the kept set and scores are
the replay's own (float32, as the rule's arithmetic is done in float32 by the library). Each step's
slots must equal the replay's kept set plus the new token, its evicted position must be the
replay's victim, and the final kept sets must match. Exit status 0 when all agree.

Dump lines:
  config NAME POLICY budget B alpha A n_recent R n_sink S n_head H n_head_kv K
  step SEQ LAYER KVH POS EVICTED N slot_pos[N] p[N]      (p as C99 hex floats)
  final SEQ LAYER KVH N pos[N]
"""
import sys

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy missing (tests/kv_reference.py)")
    sys.exit(0)


class Config:
    def __init__(self, fields):
        self.name, self.policy = fields[1], fields[2]
        kv = dict(zip(fields[3::2], fields[4::2]))
        self.budget = int(kv["budget"])
        self.alpha = np.float32(float.fromhex(kv["alpha"]))
        self.n_recent = int(kv["n_recent"])
        self.n_sink = int(kv["n_sink"])
        self.group = int(kv["n_head"]) // int(kv["n_head_kv"])
        if self.policy == "h2o":
            self.alpha = np.float32(1.0)
            if self.n_recent == 0:
                self.n_recent = self.budget // 2


def victim(cfg, scores, cur):
    """Position to evict from {position: score} (the new token at `cur` included)."""
    if cfg.policy == "window":
        return min(q for q in scores if q >= cfg.n_sink)
    candidates = [q for q in scores if q >= cfg.n_sink and q <= cur - cfg.n_recent]
    return min(candidates, key=lambda q: (scores[q], q))


class Replay:
    def __init__(self):
        self.cfg = None
        self.kept = {}        # (seq, layer, kvh) -> {position: np.float32 score}
        self.steps = self.evictions = self.errors = 0
        self.worst_psum = 0.0

    def fail(self, msg):
        self.errors += 1
        if self.errors <= 10:
            print("MISMATCH %s: %s" % (self.cfg.name, msg))

    def step(self, f):
        seq, layer, kvh, cur, evicted, n = (int(x) for x in f[1:7])
        slots = [int(x) for x in f[7:7 + n]]
        p = np.array([float.fromhex(x) for x in f[7 + n:7 + 2 * n]], dtype=np.float32)
        key = (seq, layer, kvh)
        scores = self.kept.setdefault(key, {})
        self.steps += 1
        if sorted(slots) != sorted(list(scores) + [cur]):
            self.fail("%s pos %d: slots %s, replay kept %s + new" % (key, cur, sorted(slots), sorted(scores)))
            scores.clear()
            scores.update({q: np.float32(0) for q in slots if q != cur})
        self.worst_psum = max(self.worst_psum, abs(float(p.sum(dtype=np.float64)) - self.cfg.group))
        pmap = dict(zip(slots, p))
        if self.cfg.policy == "full":
            want = -1
        else:
            for q in scores:
                scores[q] = np.float32(self.cfg.alpha * scores[q]) + pmap[q]
            scores[cur] = pmap[cur]
            want = victim(self.cfg, scores, cur) if len(scores) > self.cfg.budget else -1
        scores.setdefault(cur, np.float32(0))
        if want != evicted:
            self.fail("%s pos %d: library evicted %d, rule says %d" % (key, cur, evicted, want))
        if evicted >= 0:
            self.evictions += 1
            scores.pop(evicted, None)

    def final(self, f):
        seq, layer, kvh, n = (int(x) for x in f[1:5])
        got = sorted(int(x) for x in f[5:5 + n])
        want = sorted(self.kept.get((seq, layer, kvh), {}))
        if got != want:
            self.fail("final (%d,%d,%d): library keeps %s, replay %s" % (seq, layer, kvh, got, want))

    def report(self):
        if self.cfg is not None:
            print("  replay %-26s %-6s budget %3d alpha %.2g n_recent %2d n_sink %d: %d steps, %d evictions, "
                  "max |sum p - group| %.2g" % (self.cfg.name, self.cfg.policy, self.cfg.budget, self.cfg.alpha,
                                                 self.cfg.n_recent, self.cfg.n_sink, self.steps, self.evictions,
                                                 self.worst_psum))
            if self.worst_psum > 1e-4:
                self.fail("p does not sum to the group size (%g)" % self.worst_psum)


def main(path):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print("SKIP: %s missing" % path)
        return 0
    replay, errors, configs = Replay(), 0, 0
    for line in lines:
        f = line.split()
        if not f:
            continue
        if f[0] == "config":
            replay.report()
            errors += replay.errors
            replay = Replay()
            replay.cfg = Config(f)
            configs += 1
        elif f[0] == "step":
            replay.step(f)
        elif f[0] == "final":
            replay.final(f)
    replay.report()
    errors += replay.errors
    print("kv_reference.py: %d runs replayed, %d mismatches" % (configs, errors))
    return 1 if errors or configs == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/kv_attn.txt"))
