"""Train devicefit's bundled demo language model (a tiny LLaMA-config, character-level LM).

Corpus: the docstrings of the Docutils package modules whose header declares "This module has been placed in
the public domain" (Docutils' COPYING: public-domain dedication), so the text may be shipped and reused freely.
``--rebuild-corpus`` re-extracts it from an installed ``docutils`` into ``corpus.txt``; otherwise the shipped
``corpus.txt`` is used. The last 10% of the corpus is held out (``heldout.txt``) and never trained on.

Run (a few minutes on 2 CPU cores)::

    python scripts/train_demo_lm.py [--rebuild-corpus] [--steps 300]

Writes ``src/devicefit/data/demo_lm/``: ``config.json`` + ``model.safetensors`` (fp16 weights, loaded as fp32),
``chars.json`` (the character vocabulary), ``corpus.txt``, ``heldout.txt`` and ``prompts.txt``.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "src" / "devicefit" / "data" / "demo_lm"
HELD_OUT_SHARE = 0.1


def extract_corpus() -> str:
    """Docstrings (> 60 characters) of Docutils modules dedicated to the public domain, printable ASCII only."""
    import docutils

    root = Path(docutils.__file__).parent
    parts = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "placed in the public domain" not in source[:2000]:
            continue  # a few Docutils files carry other licences: leave them out
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 60:
                    parts.append(doc)
    text = "\n\n".join(parts)
    return "".join(c for c in text if 32 <= ord(c) < 127 or c == "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild-corpus", action="store_true", help="re-extract corpus.txt from docutils")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import transformers as tf

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.rebuild_corpus or not (OUT / "corpus.txt").exists():
        (OUT / "corpus.txt").write_text(extract_corpus())
    text = (OUT / "corpus.txt").read_text()
    split = int(len(text) * (1 - HELD_OUT_SHARE))
    train_text, held_out = text[:split], text[split:]
    (OUT / "heldout.txt").write_text(held_out)
    chars = sorted(set(text))
    (OUT / "chars.json").write_text(json.dumps(chars))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in train_text])
    config = tf.LlamaConfig(
        vocab_size=len(chars),
        hidden_size=96,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    model = tf.LlamaForCausalLM(config)
    print(
        f"{sum(p.numel() for p in model.parameters()):,} parameters, {len(train_text):,} training characters"
    )
    opt = torch.optim.AdamW(model.parameters(), lr=6e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=6e-3, total_steps=args.steps, pct_start=0.05)
    start = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(data) - args.seq - 1, (args.batch,))
        batch = torch.stack([data[i : i + args.seq + 1] for i in idx])
        loss = model(batch[:, :-1], labels=batch[:, :-1]).loss  # transformers shifts the labels itself
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    ids = torch.tensor([[index[c] for c in held_out[:511]]])
    with torch.no_grad():
        nll = model(ids, labels=ids).loss.item()
    print(f"held-out perplexity (per character): {math.exp(nll):.3f}")
    model.half().save_pretrained(OUT)  # fp16 on disk keeps the repo small; devicefit loads it as fp32
    prompts = ["The parser ", "Return the ", "This module ", "A document tree "]
    (OUT / "prompts.txt").write_text("\n".join(prompts) + "\n")


if __name__ == "__main__":
    main()
