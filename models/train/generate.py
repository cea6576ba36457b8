"""Batched sampling with the models' own decoding state (prefill, then one token per step)."""
import torch

from data import DEVICE, STEP_DELIMITER, TOK, example, left_pad
from revision_layout import ForcedLines, injected_line, interleaved_prompt, steps_of


def next_tokens(logits, temperature, gen, done):
    """One token per row, sampled (temperature > 0) or greedy; rows already done get <eos>."""
    if temperature > 0:
        nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)
    else:
        nxt = logits.argmax(-1, keepdim=True)
    return torch.where(done.unsqueeze(1), torch.full_like(nxt, TOK.eos_id), nxt)


@torch.no_grad()
def generate(model, prompts, temperature=0.0, max_new=280, batch_size=None, seed=0):
    """Completions (text after the prompt, up to <eos>) for each prompt string.
    temperature 0 = greedy. Each prompt is encoded as <bos> + prompt."""
    model.eval()
    batch_size = batch_size or (2048 if DEVICE.type == "cuda" else 256)
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = [example(p, "")[0][:-1] for p in prompts[i:i + batch_size]]
        ids, pos = (t.to(DEVICE) for t in left_pad(chunk))
        logits, state = model(ids, pos)
        last = logits[:, -1]
        p = pos[:, -1:]
        B = len(chunk)
        done = torch.zeros(B, dtype=torch.bool, device=DEVICE)
        toks = []
        for _ in range(max_new):
            nxt = next_tokens(last, temperature, gen, done)
            toks.append(nxt)
            done |= nxt[:, 0] == TOK.eos_id
            if done.all():
                break
            p = p + 1
            logits, state = model.step(nxt, p, state)
            last = logits[:, -1]
        toks = torch.cat(toks, 1).tolist()
        for row in toks:
            if TOK.eos_id in row:
                row = row[:row.index(TOK.eos_id)]
            out.append(TOK.decode(row))
    return out


@torch.no_grad()
def generate_interleaved_revisions(model, problems, previous_solutions, temperature=0.0, max_new=280,
                                   batch_size=None, seed=0):
    """Revised solutions in the interleaved layout (revision_layout.py): before each of its steps a
    row is fed the previous attempt's step as forced tokens, which are not part of the returned text.
    `max_new` bounds the generated tokens of a row, forced ones not counted."""
    model.eval()
    batch_size = batch_size or (2048 if DEVICE.type == "cuda" else 256)
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    empty_line = TOK.encode(injected_line([], 0))
    delimiter = TOK.encode(STEP_DELIMITER)
    out = []
    for i in range(0, len(problems), batch_size):
        chunk_problems, chunk_previous = problems[i:i + batch_size], previous_solutions[i:i + batch_size]
        prompts = [example(interleaved_prompt(p), "")[0][:-1] for p in chunk_problems]
        ids, pos = (t.to(DEVICE) for t in left_pad(prompts))
        logits, state = model(ids, pos)
        last = logits[:, -1]
        p = pos[:, -1:]
        B = len(prompts)
        lines = []
        for previous in chunk_previous:
            steps = steps_of(previous)
            lines.append([TOK.encode(injected_line(steps, k)) for k in range(len(steps))])
        forced = ForcedLines(lines, empty_line, delimiter)
        done = torch.zeros(B, dtype=torch.bool, device=DEVICE)
        generated = [[] for _ in range(B)]
        while True:
            row_tokens = next_tokens(last, temperature, gen, done)[:, 0].tolist()
            for b in range(B):
                if done[b]:
                    continue
                token = forced.pop(b)
                if token is not None:
                    row_tokens[b] = token
                    continue
                generated[b].append(row_tokens[b])
                forced.generated(b, row_tokens[b])
                if row_tokens[b] == TOK.eos_id or len(generated[b]) >= max_new:
                    done[b] = True
            if done.all():
                break
            p = p + 1
            logits, state = model.step(torch.tensor(row_tokens, device=DEVICE).unsqueeze(1), p, state)
            last = logits[:, -1]
        for row in generated:
            if TOK.eos_id in row:
                row = row[:row.index(TOK.eos_id)]
            out.append(TOK.decode(row))
    return out
