"""Checks of the interleaved revision layout with plain python3 (no torch):

    python3 models/train/check_revision_layout.py
"""
from revision_layout import ForcedLines, injected_line, interleaved_segments, masked_ids


def encode(text):
    return [ord(c) for c in text]


def check_segments_and_mask():
    segments = interleaved_segments("Compute 2 + 3 * 4.", "3 * 4 = 13\n\n2 + 13 = 15", "3 * 4 = 12\n\n2 + 12 = 14\n\nThe answer is 14")
    text = "".join(t for t, _ in segments)
    assert text == ("Compute 2 + 3 * 4.\n\nRevise:\n\n> 3 * 4 = 13\n3 * 4 = 12\n\n> 2 + 13 = 15\n2 + 12 = 14\n\n"
                    "> \nThe answer is 14"), repr(text)
    ids, trained = masked_ids(segments, encode, 1, 2)
    assert len(ids) == len(trained) and ids[0] == 1 and ids[-1] == 2 and trained[-1] and not trained[0]
    assert "".join(chr(i) for i, t in zip(ids, trained) if t and i != 2) == "3 * 4 = 12\n\n2 + 12 = 14\n\nThe answer is 14"
    assert injected_line([], 0) == "> \n"


def check_forced_lines_follow_the_delimiter():
    forced = ForcedLines([[encode("> a\n"), encode("> b\n")]], encode("> \n"), encode("\n\n"))
    fed = []
    for token in encode("x\n\ny\n\nz"):
        while (queued := forced.pop(0)) is not None:
            fed.append(queued)
        fed.append(token)
        forced.generated(0, token)
    assert "".join(map(chr, fed)) == "> a\nx\n\n> b\ny\n\n> \nz", repr("".join(map(chr, fed)))


if __name__ == "__main__":
    check_segments_and_mask()
    check_forced_lines_follow_the_delimiter()
    print("revision layout: ok")
