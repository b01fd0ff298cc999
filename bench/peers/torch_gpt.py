"""PyTorch reference of nn's GPT (`ModelSpec::gpt`, `nn-cli fit --model gpt`), for
bench/gpt.sh.

Architecture as crates/nn-layers/src/model/transformer.rs builds it: token Embedding
(uniform ±0.05) + learned position embedding (Glorot uniform) → `layers` pre-LayerNorm
blocks (x + causal MHA(LN(x)); x + Dense(d)(GELU exact(Dense(4d)(LN(x))))) → final
LayerNorm (eps 1e-5) → Dense(vocab) logits. Parameters
`V·d + T·d + L·(12d² + 13d) + 2d + d·V + V`, asserted below.

Data as nn-cli forms it for `--data text:FILE --text-column text --test-split P
--validation-split Q` WITHOUT `--holdout-groups`: the CSV rows in file order, the
first floor(n·(1−P)) rows kept, the last Q of those (floor cut) the validation part;
each part's texts joined with "\n", encoded with the run's tokenizer.json (the one nn
trained and saved), cut into non-overlapping windows of `context` inputs + the next
token as targets (stride `context`, trailing tokens dropped), as nn_text::lm_windows.

Prints one JSON line: parameters, training tokens, tokens/s (median over steps after
warm-up), validation loss (mean cross-entropy, nats/token) after one pass over the
training windows, and the noise of other processes (common.Noise).
"""
import argparse
import csv
import gzip
import io
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tokenizers import Tokenizer

from common import Noise, cpu_name


def glorot_(w, fan_in, fan_out):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        w.uniform_(-bound, bound)


class Dense(nn.Linear):
    """nn's Dense: Glorot-uniform kernel, zero bias."""

    def __init__(self, i, o):
        super().__init__(i, o)
        glorot_(self.weight, i, o)
        nn.init.zeros_(self.bias)


class Block(nn.Module):
    """x + MHA(LN1(x)) causal; x + Dense(d)(GELU(Dense(4d)(LN2(x))))."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
        # Query, key, value and output projections: d·d + d each (key_dim = d / heads).
        self.q, self.k, self.v, self.o = Dense(d, d), Dense(d, d), Dense(d, d), Dense(d, d)
        self.ff1, self.ff2 = Dense(d, 4 * d), Dense(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        split = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        a = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)), is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x)), approximate="none"))


class Gpt(nn.Module):
    def __init__(self, vocab, context, d, heads, layers):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        with torch.no_grad():
            self.tok.weight.uniform_(-0.05, 0.05)
        self.pos = nn.Parameter(torch.empty(context, d))
        glorot_(self.pos, context, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.logits = Dense(d, vocab)

    def forward(self, ids):
        x = self.tok(ids) + self.pos[: ids.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.logits(self.ln(x))


def expected_params(v, t, d, layers):
    return v * d + t * d + layers * (12 * d * d + 13 * d) + 2 * d + d * v + v


def parts(path, column, test_split, val_split):
    """(training text, validation text): nn-cli's contiguous row split (no hold-out groups)."""
    with gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8") as f:
        texts = [row[column] for row in csv.DictReader(io.StringIO(f.read()))]
    n = len(texts)
    keep = math.floor(n * (1.0 - test_split)) if test_split > 0 else n
    cut = math.floor(keep * (1.0 - val_split))
    return "\n".join(texts[:cut]), "\n".join(texts[cut:keep])


def windows(ids, context):
    """[n, context] inputs and [n, context] next-token targets, stride `context`."""
    ids = torch.tensor(ids, dtype=torch.long)
    n = (len(ids) - context - 1) // context + 1 if len(ids) > context else 0
    idx = torch.arange(n)[:, None] * context + torch.arange(context)[None, :]
    return ids[idx], ids[idx + 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="CSV (.gz) of texts")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json of the nn run")
    ap.add_argument("--test-split", type=float, default=0.1)
    ap.add_argument("--validation-split", type=float, default=0.1)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warmup", type=int, default=10, help="steps left out of the tokens/s median")
    ap.add_argument("--nn-params", type=int, default=None, help="assert the parameter count equals this")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    whole = Noise.snap()

    tok = Tokenizer.from_file(args.tokenizer)
    train_text, val_text = parts(args.data, args.text_column, args.test_split, args.validation_split)
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
    xtr, ytr = windows(enc(train_text), args.context)
    xva, yva = windows(enc(val_text), args.context)
    vocab = tok.get_vocab_size()

    model = Gpt(vocab, args.context, args.d_model, args.heads, args.layers)
    n_params = sum(p.numel() for p in model.parameters())
    want = expected_params(vocab, args.context, args.d_model, args.layers)
    print(f"torch gpt: {n_params} parameters (nn formula {want}); {xtr.numel()} training tokens, "
          f"{xva.numel()} validation tokens, vocab {vocab}", flush=True)
    assert n_params == want, (n_params, want)
    if args.nn_params is not None:
        assert n_params == args.nn_params, f"torch {n_params} != nn {args.nn_params}"
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-7)

    step_s, losses, section = [], [], Noise.snap()
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(xtr))
        for i in range(0, len(order), args.batch_size):
            b = order[i : i + args.batch_size]
            t0 = time.perf_counter()
            logits = model(xtr[b])
            loss = F.cross_entropy(logits.reshape(-1, vocab), ytr[b].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_s.append((time.perf_counter() - t0, b.numel() * args.context))
            losses.append(loss.item())
    train_noise = Noise.since(section)
    train_s = sum(s for s, _ in step_s)
    timed = step_s[args.warmup :] or step_s
    tok_per_s = statistics.median(n / s for s, n in timed)

    model.eval()
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(xva), 256):
            lg = model(xva[i : i + 256])
            tot += F.cross_entropy(lg.reshape(-1, vocab), yva[i : i + 256].reshape(-1), reduction="sum").item()
            cnt += yva[i : i + 256].numel()
    info = {
        "framework": f"torch {torch.__version__}", "cpu": cpu_name(), "threads": args.threads,
        "params": n_params, "train_tokens": xtr.numel(), "val_tokens": xva.numel(), "steps": len(step_s),
        "train_s": round(train_s, 3), "train_tokens_per_s_median": round(tok_per_s, 1),
        "train_tokens_per_s_whole": round(xtr.numel() * args.epochs / train_s, 1),
        "train_loss_last_epoch": statistics.mean(losses[-math.ceil(len(xtr) / args.batch_size):]),
        "val_loss": tot / cnt, "train_noise": train_noise, "whole_run_noise": Noise.since(whole),
    }
    print(json.dumps(info), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
