"""Single-step checks for the PRM (issue 15): cheap generated steps `a op b = c` of the synthetic
task's shapes and sizes, half of them near misses, read in a verifier rendering (render.py), on the
PRM's backbone (RG-LRU recurrence + local attention, model.py). Logs the held-out AUC of right
against wrong steps per kind of step (+, -, *) against training minutes (evaluation time excluded).

    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/prm_steps.py --render columns --minutes 8 --name steps_columns
    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/prm_steps.py --render ordinary --minutes 8 --name steps_ordinary

Steps come from the task's own generators, ported (levels 1-5 of datasets/synth/generate.ts): a
random step of an arithmetic chain (+, -, * with the level's ranges and caps), the subtraction
`d - b` and the quotient `rhs / coef` of a linear equation, the numerator sum of a same-denominator
fraction sum. Near misses change the result: one digit replaced, a carry or borrow dropped, off by
1, 10 or 100, the sign flipped, two digits swapped, a digit dropped or doubled, the other
operation's result, an operand copied; for a two-digit multiplier also one digit of one partial
product of the long multiplication wrong (the policy's usual product slip; `--partial-slips`).
Labels: the step's own verdict at its last character; with `--dense`, also one at every column's
result digit (whether the result's digits so far, units first, are right).
"""
import argparse
import json
import math
import os
import random
import re
import time

import numpy as np
import torch
import torch.nn.functional as F

from data import DEVICE, TOK, label, synth
from model import LM, POLICY_ARCH, PRM, n_params
from prm import auc, changed_result, sample_labelled
from train import load_lm
from render import checks_of, copy_sources, prm_example, render_solution, render_step, step_checks

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")

ARITHMETIC_LEVELS = [dict(ops=1, add=(1, 99), mul=(2, 9), cap=1000), dict(ops=2, add=(2, 99), mul=(2, 12), cap=2000),
                     dict(ops=3, add=(2, 199), mul=(2, 12), cap=10000), dict(ops=4, add=(10, 499), mul=(2, 25), cap=50000),
                     dict(ops=5, add=(10, 999), mul=(2, 25), cap=200000)]
# ladder 2's arithmetic levels (LADDERS[2] in generate.ts): longer chains, products of values to 200000 by 2-25
ARITHMETIC_LEVELS_2 = [dict(ops=3, add=(10, 499), mul=(2, 25), cap=50000), dict(ops=4, add=(10, 499), mul=(2, 25), cap=50000),
                       dict(ops=4, add=(10, 999), mul=(2, 25), cap=100000), dict(ops=5, add=(10, 499), mul=(2, 25), cap=100000),
                       dict(ops=5, add=(10, 999), mul=(2, 25), cap=200000)]
LINEAR_LEVELS = [dict(coef=(2, 9), x=(1, 20), const=(1, 50)), dict(coef=(2, 12), x=(-20, 20), const=(1, 99)),
                 dict(coef=(1, 12), x=(-10, 10), const=(1, 50)), dict(coef=(1, 15), x=(-20, 20), const=(1, 99)),
                 dict(coef=(1, 15), x=(-20, 20), const=(1, 20))]


def arithmetic_step(rng, levels=ARITHMETIC_LEVELS):
    """(a, op, b, a op b) from a random position of a random level's chain."""
    kn = levels[rng.randrange(5)]
    value = rng.randint(*kn["add"])
    steps = []
    for _ in range(kn["ops"]):
        op = rng.choice("+-*")
        operand = rng.randint(*kn["mul"]) if op == "*" else rng.randint(*kn["add"])
        if op == "*" and abs(value * operand) > kn["cap"]:
            op = rng.choice("+-")
            operand = rng.randint(*kn["add"])
        nxt = value + operand if op == "+" else value - operand if op == "-" else value * operand
        steps.append((value, op, operand, nxt))
        value = nxt
    return rng.choice(steps)


def equation_step(rng):
    """`d - b` (or `d + |b|`) of moving a constant, or `rhs / coef` checked as a product."""
    kn = LINEAR_LEVELS[rng.randrange(5)]
    x = rng.randint(*kn["x"])
    coef = rng.randint(*kn["coef"]) * rng.choice([1, -1])
    b = rng.randint(*kn["const"]) * rng.choice([1, -1])
    if rng.random() < 0.5:
        d = coef * x + b
        return (d, "-", b, d - b) if b > 0 else (d, "+", -b, d - b)
    return (x, "*", coef, x * coef)  # x = rhs / coef is rendered as the product x * coef = rhs


def fraction_step(rng):
    den = rng.randint(2, 840)
    a, b = rng.randint(1, 300), rng.randint(1, 300)
    op = rng.choice("+-")
    return (a, op, b, a + b if op == "+" else a - b)


# ladder 2's fraction levels (FRACTION_LADDER_2 in generate.ts): terms, denominators, numerators, largest common denominator
FRACTION_LEVELS_2 = [(2, (2, 15), (1, 30), 210), (3, (2, 10), (1, 12), 240), (3, (2, 12), (1, 15), 360),
                     (3, (2, 15), (1, 20), 420), (4, (2, 12), (1, 15), 420)]


def ratio_step(rng):
    """(a, b, p, q, m): a step of a ladder-2 fraction solution that rewrites a/b as p/q, a conversion
    to the common denominator (q = m * b) or a simplification (a = m * p, b = m * q), from a random
    position of a random level's chain as generate.ts works it out; redrawn until one is found."""
    while True:
        terms, den, num, cap = FRACTION_LEVELS_2[rng.randrange(5)]
        fractions = []
        for _ in range(terms):
            d, n = rng.randint(*den), rng.randint(*num)
            while math.gcd(n, d) != 1:
                n = rng.randint(*num)
            fractions.append((n, d))
        (an, ad), found = fractions[0], []
        for n, d in fractions[1:]:
            common = ad * d // math.gcd(ad, d)
            if common > cap:
                break
            sign = rng.choice([1, -1])
            if ad != d:
                found += [(an, ad, an * common // ad, common, common // ad), (n, d, n * common // d, common, common // d)]
            combined = an * common // ad + sign * n * common // d
            g = math.gcd(abs(combined), common)
            if g != 1:
                found.append((combined, common, combined // g, common // g, g))
            an, ad = combined // g, common // g
        if found:
            return rng.choice(found)


def ratio_near_miss(a, b, p, q, m, rng):
    """A wrong p/q for a/b and the name of the slip: the numerator with one of near_miss's slips
    (as the product a * m of a conversion, or the quotient of a simplification), the conversion's
    multiplier off by 1 or 2, or the denominator with a slip."""
    conversion = q == b * m
    r = rng.random()
    if r < 0.2:
        w, _ = near_miss(b, "*", m if conversion else 1, q, rng)  # b * m is q, or b is q * m
        return p, abs(w) or q + 1, "denominator"
    if r < 0.4 and conversion:
        return a * (m + rng.choice([-2, -1, 1, 2])), q, "multiplier"
    w, slip = near_miss(a, "*", m, p, rng) if conversion else near_miss(a, "*", 1, p, rng)
    return w, q, slip


def product_step(rng, levels):
    """A product of a chain at the given levels (redrawn until the step drawn is one)."""
    while True:
        step = arithmetic_step(rng, levels)
        if step[1] == "*":
            return step


def true_step(rng, steps_ladder=1, product_share=0.0):
    """A step of ladder 1's shapes and sizes; with `steps_ladder` 2 the arithmetic steps are ladder 2's,
    and `product_share` of all steps are products of its chains."""
    levels = ARITHMETIC_LEVELS_2 if steps_ladder == 2 else ARITHMETIC_LEVELS
    if product_share > 0 and rng.random() < product_share:  # no draw without it: earlier runs' streams stay
        return product_step(rng, levels)
    r = rng.random()
    return arithmetic_step(rng, levels) if r < 0.7 else equation_step(rng) if r < 0.9 else fraction_step(rng)


def dropped_carry(a, op, b):
    """The result of a column-by-column + or - of the magnitudes with one carry/borrow forgotten."""
    x, y = abs(a), abs(b)
    if op == "*" or x == 0 or y == 0:
        return None
    X, Y = str(x)[::-1], str(y)[::-1]
    add = (op == "+") == ((a < 0) == (b < 0))
    if not add and x < y:
        X, Y = Y, X
    n = max(len(X), len(Y))
    X, Y = X.ljust(n, "0"), Y.ljust(n, "0")
    out, carry, dropped = [], 0, False
    drop_at = random.Random(a * 7919 + b).randrange(n)
    for i in range(n):
        s = int(X[i]) + int(Y[i]) + carry if add else int(X[i]) - int(Y[i]) - carry
        carry = 1 if (s >= 10 if add else s < 0) else 0
        if carry and i >= drop_at and not dropped:
            carry, dropped = 0, True
        out.append(str(s % 10))
    if carry and add:
        out.append("1")
    if not dropped:
        return None
    return int("".join(out)[::-1])


def near_miss(a, op, b, c, rng, partial_slips=False):
    """A wrong result near the right one, and the name of the slip; with `partial_slips`, long
    multiplication slips too (without it the draws are those of the runs before it existed)."""
    s = str(abs(c))
    neg = c < 0
    kinds = ["digit", "digit", "carry", "carry", "offset", "sign", "swap", "length", "other_op", "copy"]
    if partial_slips and op == "*" and abs(b) >= 10:
        kinds += ["partial"] * 4
    for _ in range(20):
        kind = rng.choice(kinds)
        w = None
        if kind == "partial":
            w = partial_product_slip(a, b, rng)
        elif kind == "digit":
            i = rng.randrange(len(s))
            d = rng.choice([t for t in "0123456789" if t != s[i] and (i > 0 or t != "0" or len(s) == 1)])
            w = int(s[:i] + d + s[i + 1:]) * (-1 if neg else 1)
        elif kind == "carry":
            v = dropped_carry(a, op, b)
            if v is not None:
                w = v * (-1 if neg else 1)
        elif kind == "offset":
            w = c + rng.choice([-1, 1, -10, 10, -100, 100, -1000, 1000])
        elif kind == "sign" and c != 0:
            w = -c
        elif kind == "swap" and len(s) > 1:
            i = rng.randrange(len(s) - 1)
            if s[i] != s[i + 1]:
                t = s[:i] + s[i + 1] + s[i] + s[i + 2:]
                if t[0] != "0":
                    w = int(t) * (-1 if neg else 1)
        elif kind == "length" and len(s) > 1:
            i = rng.randrange(len(s))
            t = s[:i] + s[i + 1:] if rng.random() < 0.5 else s[:i] + s[i] + s[i:]
            if t and t[0] != "0":
                w = int(t) * (-1 if neg else 1)
        elif kind == "other_op":
            w = a - b if op == "+" else a + b if op == "-" else a + b
        elif kind == "copy":
            w = a if rng.random() < 0.5 else b
        if w is not None and w != c:
            return w, kind
    return c + 1, "offset"


def partial_product_slip(a, b, rng):
    """a * b worked out as long multiplication, a * (units of b) + a * (tens of b) * 10, with one digit
    of one partial product wrong: the policy's usual slip on a two-digit multiplier (off by a multiple
    of 10 or 100 in the middle of the result). None when a is 0."""
    sign = -1 if (a < 0) != (b < 0) else 1
    x, y = abs(a), abs(b)
    if x == 0:
        return None
    partials = [x * (y % 10), x * (y // 10) * 10]
    i = rng.randrange(2)
    s = str(partials[i])
    j = rng.randrange(len(s) - i)  # not the appended 0 of the tens' partial product
    d = rng.choice([t for t in "0123456789" if t != s[j] and (j > 0 or t != "0" or len(s) == 1)])
    partials[i] = int(s[:j] + d + s[j + 1:])
    return sign * sum(partials)


def text_of(a, op, b, c):
    return f"{a} {op} {b} = {c}"


def column_right(check, i):
    """The per-column label of column i (0 = units) of a rendered check: whether the claimed result's
    magnitude is right in its digits so far, units first; for `a / b = p/q`, whether the cross
    products a * q and p * b agree so far."""
    a, op, b, c = check
    mod = 10 ** (i + 1)
    if op == "/":
        p, q = (c.split("/") + ["1"])[:2]
        return abs(int(a)) * int(q) % mod == abs(int(p)) * int(b) % mod
    return abs(true_result(a, op, b)) % mod == abs(int(c)) % mod


def make_example(rng, render, steps_ladder=1, product_share=0.0, partial_slips=False, ratio_share=0.0):
    """(token ids, label indices, labels, kind, slip) for one generated step; with `ratio_share`,
    that share of the steps rewrite a fraction (`a/b = p/q`, kind `/`)."""
    if ratio_share > 0 and rng.random() < ratio_share:  # no draw without it: earlier runs' streams stay
        a, b, p, q, m = ratio_step(rng)
        right = rng.random() < 0.5
        w, wq, slip = (p, q, "right") if right else ratio_near_miss(a, b, p, q, m, rng)
        op, text = "/", f"{a}/{b} = {w}" + (f"/{wq}" if wq != 1 else "")
    else:
        a, op, b, c = true_step(rng, steps_ladder, product_share)
        right = rng.random() < 0.5
        w, slip = (c, "right") if right else near_miss(a, op, b, c, rng, partial_slips)
        text = text_of(a, op, b, w)
    checks = step_checks(text, render)
    text, cols = render_step(text, render)
    ids = [TOK.bos_id] + TOK.encode(text)
    idx = [1 + off for off, _, _ in cols]
    ys = [column_right(checks[k], i) for _, k, i in cols]
    return ids, idx, ys, len(ids) - 1, right, op, slip


def true_result(a, op, b):
    a, b = int(a), int(b)
    return a + b if op == "+" else a - b if op == "-" else a * b


def corrupt_solution(solution, rng):
    """The gold solution with one step's result changed (a near miss for an integer check, else a
    changed number right of the last "="); the final answer step is never the one changed."""
    steps = [s for s in solution.split("\n\n") if s.strip()]
    k = rng.randrange(max(len(steps) - 1, 1))
    checks = checks_of(steps[k])
    step = steps[k]
    if checks and rng.random() < 0.8:
        a, op, b, c = checks[-1]
        w, _ = near_miss(int(a), op, int(b), int(c), rng)
        i = step.rfind(c)
        step = step[:i] + str(w) + step[i + len(c):] if i >= 0 else None
    else:
        step = changed_result(step, rng)
    if step is None:
        return None
    return "\n\n".join(steps[:k] + [step] + steps[k + 1:])


CHAIN_STEP = re.compile(r"^(-?\d+) ([-+*]) (\d+) = (-?\d+)$")


def copy_error(solution, rng):
    """The gold solution of an arithmetic chain with one number copied wrong (a digit changed in a
    step's second operand) and every later step worked out again from it, as the policy's own copy
    slips go: each step a true equation, the answer wrong. None for a solution of another form."""
    steps = [s for s in solution.split("\n\n") if s.strip()]
    parsed = [CHAIN_STEP.match(s) for s in steps[:-1]]
    if not parsed or not all(parsed) or "\\boxed" not in steps[-1]:
        return None
    k = rng.randrange(len(parsed))
    digits = list(parsed[k].group(3))
    i = rng.randrange(len(digits))
    digits[i] = rng.choice([d for d in "0123456789" if d != digits[i] and (i > 0 or d != "0" or len(digits) == 1)])
    out, a = steps[:k], parsed[k].group(1)
    for j in range(k, len(parsed)):
        b = "".join(digits) if j == k else parsed[j].group(3)
        op = parsed[j].group(2)
        value = true_result(a, op, b)
        out.append(f"{a} {op} {b} = {value}")
        a = str(value)
    return "\n\n".join(out + [f"The answer is \\boxed{{{a}}}"])


def solution_examples(n, seed, render, log, policy_rows=(), ladder=1, copy_errors=0.0):
    """Whole solutions (problem + steps, in the rendering) of `n` train problems: the gold solution
    or a copy with one step's result changed, each labelled by `data label` (prefixCorrect at every
    step end), plus per-column labels in the steps up to the first wrong one (with --dense; in mode
    `equations` also at the checks that pair a step with the line before it, e.g. a moved term's
    `-37 + 37 = 0`); then the labelled `policy_rows` (the policy's own samples) in the same form.
    With `copy_errors`, that share of the solutions have a number copied wrong instead (`copy_error`),
    when they are arithmetic chains."""
    suffix = "" if ladder == 1 else f"_ladder{ladder}"
    # other seeds name their problems, and so their labels, apart (seed 0's keep their old names)
    suffix += f"_s{seed}" if seed else ""
    problems = synth("train", n, seed + 1, os.path.join(WORK, f"train_{n}{suffix}.jsonl"), ladder)
    rng = random.Random(seed + 7)
    rows = []
    for p in problems:
        sol = copy_error(p["solution"], rng) if copy_errors > 0 and rng.random() < copy_errors else None
        if sol is None:
            sol = corrupt_solution(p["solution"], rng) if rng.random() < 0.6 else None
        rows.append(dict(problem=p["problem"], answer=p["answer"], solution=sol or p["solution"]))
    name = f"solutions_{n}{suffix}" + (f"_copy{copy_errors}" if copy_errors > 0 else "")
    rows = label(rows, WORK, name) + list(policy_rows)
    exs = []
    for r in rows:
        ids, ends = prm_example(r["problem"], r["solution"], render)
        if len(ends) != len(r["prefixCorrect"]):
            continue
        idx, ys = [], []
        if render != "ordinary":
            text, _ = render_solution(r["solution"], render, problem=r["problem"])
            start = len(ids) - len(text)
            pos, steps = 0, [s for s in r["solution"].split("\n\n") if s.strip()]
            sources = copy_sources(r["problem"], [s.rstrip() for s in steps])
            for k, step in enumerate(steps):
                previous = steps[k - 1] if k > 0 else r["problem"]
                st, cols = render_step(step, render, previous, sources[k])
                if k > 0 and not r["prefixCorrect"][k - 1]:
                    break
                checks = step_checks(step, render, previous, sources[k])
                for off, ci, i in cols:
                    idx.append(start + pos + off)
                    ys.append(column_right(checks[ci], i))
                pos += len(st) + 2
        exs.append((ids, idx, ys, ends, r["prefixCorrect"]))
    log(f"solutions: {len(exs)} examples ({len(policy_rows)} policy samples), "
        f"{sum(all(e[4]) for e in exs)} all right")
    return exs


def batch_solutions(exs, dense):
    T = max(len(e[0]) for e in exs)
    ids = torch.full((len(exs), T), TOK.pad_id, dtype=torch.long)
    pos = torch.full((len(exs), T), -1, dtype=torch.long)
    bi, ti, y = [], [], []
    for k, (x, idx, ys, ends, labels) in enumerate(exs):
        ids[k, :len(x)] = torch.tensor(x)
        pos[k, :len(x)] = torch.arange(len(x))
        if dense:
            bi += [k] * len(idx)
            ti += idx
            y += [float(v) for v in ys]
        bi += [k] * len(ends)
        ti += ends
        y += [float(v) for v in labels]
    return tuple(t.to(DEVICE) for t in (ids, pos, torch.tensor(bi, dtype=torch.long), torch.tensor(ti, dtype=torch.long),
                                   torch.tensor(y)))


def batch(exs, dense):
    """Single-step examples: a solution with one labelled end (the step's last token)."""
    return batch_solutions([(x, idx, ys, [end], [right]) for x, idx, ys, end, right, *_rest in exs], dense)


@torch.no_grad()
def evaluate(prm, val, bs=256):
    prm.eval()
    scores = []
    for i in range(0, len(val), bs):
        chunk = val[i:i + bs]
        ids, pos, *_ = batch(chunk, False)
        logit = prm(ids, pos)
        scores += logit[torch.arange(len(chunk), device=DEVICE), torch.tensor([e[3] for e in chunk], device=DEVICE)].tolist()
    prm.train()
    rep = {}
    for op in [op for op in "+-*/" if any(e[5] == op for e in val)]:
        sel = [(s, e[4]) for s, e in zip(scores, val) if e[5] == op]
        rep[op] = auc([s for s, _ in sel], [y for _, y in sel])
    # per slip: AUC of right steps against the steps with that slip (all kinds together)
    rights = [s for s, e in zip(scores, val) if e[4]]
    for slip in sorted({e[6] for e in val if not e[4]}):
        wrong = [s for s, e in zip(scores, val) if e[6] == slip]
        rep["slip " + slip] = auc(rights + wrong, [True] * len(rights) + [False] * len(wrong))
    # a fraction's rewrites by slip: AUC of the right ones against the wrong ones with that slip
    ratio_rights = [s for s, e in zip(scores, val) if e[4] and e[5] == "/"]
    for slip in sorted({e[6] for e in val if not e[4] and e[5] == "/"}):
        wrong = [s for s, e in zip(scores, val) if e[6] == slip and e[5] == "/"]
        rep["/ slip " + slip] = auc(ratio_rights + wrong, [True] * len(ratio_rights) + [False] * len(wrong))
    return rep


def fast_lru_init(prm, share, lo=0.001, hi=0.5):
    """Re-initialise a share of every RG-LRU's channels so that sigma(lambda)^c is in [lo, hi]: with
    Griffin's [0.9, 0.999] a channel's gate a_t = sigma(lambda)^(c r_t) stays in [0.9, 1], so it can
    hold a value but never drop it within a few tokens; a carry (generate / propagate / kill) needs
    both. Same architecture and ONNX graph; only the starting point of lambda differs."""
    from model import RecurrentMix
    g = torch.Generator().manual_seed(1)
    for m in prm.modules():
        if isinstance(m, RecurrentMix):
            n = int(round(share * m.d))
            a0 = (torch.rand(n, generator=g) * (hi - lo) + lo) ** (1.0 / m.C)
            with torch.no_grad():
                m.lam[:n] = torch.log(a0 / (1 - a0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", choices=["columns", "overlap", "ordinary", "equations", "grounded", "fractions"],
                    default="columns",
                    help="the verifier rendering (render.py); `equations` also pairs each equation step with "
                         "the line before it, `grounded` also lays each number a Compute step copies beside its "
                         "source, `fractions` also checks each fraction a step converts or simplifies")
    ap.add_argument("--dense", action="store_true", help="also label every column's result digit")
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=float, default=1.0, help="minutes of training between evaluations")
    ap.add_argument("--val", type=int, default=3000)
    ap.add_argument("--init", help="continue from work/NAME.pt")
    ap.add_argument("--fast-lru", type=float, default=0.0,
                    help="share of each RG-LRU's channels re-initialised with sigma(lambda)^c in [0.001, 0.5] "
                         "(fast gates that can reset, as a carry needs) instead of Griffin's [0.9, 0.999]")
    ap.add_argument("--solutions", type=int, default=0, help="train problems for whole-solution examples")
    ap.add_argument("--solutions-share", type=float, default=0.0, help="share of batches of whole solutions")
    ap.add_argument("--copy-errors", type=float, default=0.0,
                    help="share of whole solutions with a number copied wrong (arithmetic chains), before other corruptions")
    ap.add_argument("--ladder", default="1",
                    help="the difficulty ladders of the whole-solution and policy-sample train problems, "
                         "comma-separated (each gives --solutions problems and --policy-problems samples)")
    ap.add_argument("--policy", help="add this policy checkpoint's own labelled samples (work/NAME.pt) to the "
                                     "whole-solution examples")
    ap.add_argument("--policy-problems", type=int, default=2000, help="train problems the policy samples")
    ap.add_argument("--policy-samples", type=int, default=4, help="samples per problem at T=0.8")
    ap.add_argument("--sample-only", action="store_true",
                    help="sample and label the whole-solution examples, then stop (the training run, on a "
                         "machine without node, reads the labels back)")
    ap.add_argument("--steps-ladder", type=int, choices=[1, 2], default=1,
                    help="the ladder whose arithmetic chains the single steps (and the held-out steps) come from")
    ap.add_argument("--product-share", type=float, default=0.0,
                    help="share of single steps (training and held-out) that are products of those chains")
    ap.add_argument("--partial-slips", action="store_true",
                    help="near misses of a product by a two-digit multiplier include long-multiplication slips")
    ap.add_argument("--ratio-share", type=float, default=0.0,
                    help="share of single steps (training and held-out) that rewrite a fraction of ladder 2 "
                         "(`a/b = p/q`: a conversion or a simplification), half of them wrong")
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(WORK, exist_ok=True)
    logfile = os.path.join(WORK, args.name + ".log")

    def log(msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        with open(logfile, "a") as f:
            f.write(line + "\n")

    torch.manual_seed(args.seed)
    val_rng, rng = random.Random(10_000 + args.seed), random.Random(args.seed)
    val = [make_example(val_rng, args.render, args.steps_ladder, args.product_share, args.partial_slips,
                        args.ratio_share)
           for _ in range(args.val)]
    cfg = dict(POLICY_ARCH, d_model=args.d_model, vocab_size=len(TOK))
    if args.init:
        ck = torch.load(os.path.join(WORK, args.init + ".pt"), map_location="cpu")
        cfg = ck["cfg"]
    prm = PRM(LM(cfg))
    base_minutes, base_steps = 0.0, 0  # minutes and steps already trained (continued runs)
    if args.init:
        prm.load_state_dict(ck["state"])
        if "history" in ck:  # a checkpoint read back from ONNX (from_onnx.py) has no training record
            base_minutes, base_steps = ck["history"][-1]["minutes"], ck["steps"]
    if args.fast_lru > 0 and not args.init:
        fast_lru_init(prm, args.fast_lru)
    prm.to(DEVICE)
    log(f"{args.name}: {json.dumps(vars(args))}, {n_params(prm)} parameters on {DEVICE}; example: "
        f"{TOK.decode(val[0][0])!r}")
    sol_exs = []
    for ladder in ([int(v) for v in args.ladder.split(",")] if args.solutions_share > 0 else []):
        policy_rows = policy_samples(args, ladder, log) if args.policy else []
        sol_exs += solution_examples(args.solutions, args.seed, args.render, log, policy_rows, ladder, args.copy_errors)
    if args.sample_only:
        return
    sol_order = []
    opt = torch.optim.AdamW(prm.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.95))
    trained, step, ema, next_eval = 0.0, 0, None, 0.0
    history = []
    while True:
        done = trained >= args.minutes * 60
        if trained >= next_eval * 60 or done:
            rep = evaluate(prm, val)
            history.append(dict(minutes=round(base_minutes + trained / 60, 2), steps=base_steps + step, **rep))
            log(f"eval {json.dumps(history[-1])}")
            next_eval += args.eval_every
            save(prm, cfg, args, base_steps + step, history)  # a run stopped early keeps its last evaluation
        if done:
            break
        t0 = time.time()
        frac = trained / (args.minutes * 60)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 50) * (1 - 0.9 * frac)
        if rng.random() < args.solutions_share:
            if not sol_order:
                sol_order = list(range(len(sol_exs)))
                rng.shuffle(sol_order)
            chosen = [sol_order.pop() for _ in range(min(args.batch_size // 4, len(sol_order)))]
            ids, pos, bi, ti, y = batch_solutions([sol_exs[i] for i in chosen], args.dense)
        else:
            exs = [make_example(rng, args.render, args.steps_ladder, args.product_share, args.partial_slips,
                                args.ratio_share) for _ in range(args.batch_size)]
            ids, pos, bi, ti, y = batch(exs, args.dense)
        logit = prm(ids, pos)[bi, ti]
        loss = F.binary_cross_entropy_with_logits(logit, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0:
            log(f"step {step} loss {ema:.4f} trained {trained / 60:.2f} min")
        trained += time.time() - t0
    log(f"{args.name}: done, {step} steps")


def save(prm, cfg, args, steps, history):
    torch.save(dict(cfg=cfg, state={k: v.detach().cpu() for k, v in prm.state_dict().items()},
                    render=args.render, dense=args.dense, steps=steps, history=history, init=args.init,
                    policy=args.policy),
               os.path.join(WORK, args.name + ".pt"))


def policy_samples(args, ladder, log):
    """The policy's own samples at T=0.8 on train problems it was not shown in the gold-solution
    examples (a separate draw), labelled; read back from an earlier run when they exist."""
    suffix = "" if ladder == 1 else f"_ladder{ladder}"
    # as in solution_examples: the labels are cached by name, so other seeds name theirs
    seed = f"_s{args.seed}" if args.seed else ""
    name = f"prm_steps_samples_{args.policy}_{args.policy_problems}x{args.policy_samples}{suffix}{seed}"
    problems = synth("train", args.policy_problems, args.seed + 11,
                     os.path.join(WORK, f"train_{args.policy_problems}_s{args.seed + 11}{suffix}.jsonl"), ladder)
    reuse = os.path.exists(os.path.join(WORK, name + ".labelled.jsonl"))
    policy = None if reuse else load_lm(args.policy)[0].eval()
    t0 = time.time()
    rows = sample_labelled(policy, problems, args.policy_samples, args.seed + 11, name, reuse)
    log(f"policy samples: {len(rows)} from {args.policy} ({'read back' if reuse else 'sampled'} in "
        f"{(time.time() - t0) / 60:.1f} min), {sum(r['correct'] for r in rows)} right")
    return [dict(problem=r["problem"], answer=r["answer"], solution=r["solution"],
                 prefixCorrect=r["prefixCorrect"]) for r in rows]


if __name__ == "__main__":
    main()
