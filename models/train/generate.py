"""Batched sampling with the models' own decoding state (prefill, then one token per step)."""
import torch

from data import DEVICE, TOK, example, left_pad


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
