"""The interleaved revision layout, kept free of torch so that it can be checked with plain python3.

The reviser reads its previous attempt one step at a time: before it writes its step k, the line
`> {previous step k}\n` is fed to it as forced tokens (not sampled, not trained on, not part of the
solution), so the step it revises is always inside the 64-token attention window. When the previous
attempt has no step k, the line is the template with an empty step, `> \n`.

    <bos>{problem}\n\nRevise:\n\n> {old 1}\n{new 1}\n\n> {old 2}\n{new 2}\n\n> \n{new 3}<eos>
"""
STEP_DELIMITER = "\n\n"
BOS = "<bos>"
PREVIOUS_STEP = "{previous_step}"

# What export.py writes into config.json as prompt_format.revision for a model trained on this layout.
REVISION_INTERLEAVED = {
    "layout": "interleaved",
    "prompt": BOS + "{problem}\n\nRevise:\n\n",
    "injected_line": "> " + PREVIOUS_STEP + "\n",
}


def steps_of(solution):
    return [s.strip() for s in solution.split(STEP_DELIMITER) if s.strip()]


def interleaved_prompt(problem):
    """The prompt's text after <bos>."""
    return REVISION_INTERLEAVED["prompt"][len(BOS):].replace("{problem}", problem)


def injected_line(previous_steps, k):
    """The forced line before the model's step k (0-based): the previous attempt's step k, or an empty one."""
    step = previous_steps[k] if k < len(previous_steps) else ""
    return REVISION_INTERLEAVED["injected_line"].replace(PREVIOUS_STEP, step)


def interleaved_segments(problem, previous_solution, solution):
    """One training sequence after <bos>, as (text, trained) pieces: the prompt and the injected lines
    are context; each of the model's own steps is trained with the delimiter that ends it (the last
    step is followed by <eos>, which the caller adds and trains)."""
    previous, steps = steps_of(previous_solution), steps_of(solution)
    segments = [(interleaved_prompt(problem), False)]
    for k, step in enumerate(steps):
        segments.append((injected_line(previous, k), False))
        segments.append((step + (STEP_DELIMITER if k < len(steps) - 1 else ""), True))
    return segments


def masked_ids(segments, encode, bos_id, eos_id):
    """Token ids <bos> segments <eos>, and per token whether the loss is taken where it is predicted."""
    ids, trained = [bos_id], [False]
    for text, is_trained in segments:
        tokens = encode(text)
        ids += tokens
        trained += [is_trained] * len(tokens)
    return ids + [eos_id], trained + [True]


class ForcedLines:
    """Per-row queues of forced tokens for batched sampling in the interleaved layout. Row b starts
    with its first injected line queued; whenever the tokens it generated since its last injection
    end with the step delimiter, its next line is queued. A row with a queued token takes it instead
    of a sampled one."""

    def __init__(self, lines, empty_line, delimiter):
        """lines[b]: token ids of row b's injected lines in order; `empty_line` once they run out;
        `delimiter`: the step delimiter's token ids."""
        self.lines, self.empty_line, self.delimiter = lines, empty_line, list(delimiter)
        self.fed = [0] * len(lines)
        self.queues = [[] for _ in lines]
        self.since_injection = [[] for _ in lines]
        for b in range(len(lines)):
            self._queue_next_line(b)

    def _queue_next_line(self, b):
        k = self.fed[b]
        self.queues[b] = list(self.lines[b][k] if k < len(self.lines[b]) else self.empty_line)
        self.fed[b] += 1
        self.since_injection[b] = []

    def pop(self, b):
        """Row b's next forced token, or None when it samples."""
        return self.queues[b].pop(0) if self.queues[b] else None

    def generated(self, b, token):
        """Row b generated `token` (sampled, not forced)."""
        tail = self.since_injection[b]
        tail.append(token)
        if tail[-len(self.delimiter):] == self.delimiter:
            self._queue_next_line(b)
