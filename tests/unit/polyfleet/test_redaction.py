"""Redacting a stream: no split of the text lets a secret through."""

from __future__ import annotations

import itertools

from polyfleet.redaction import Redactor


def _stream(redactor: Redactor, pieces: list[str]) -> str:
    # What ProgressReporter does per message: send the safe part, hold the rest back.
    sent, held = [], ""
    for piece in pieces:
        text = held + piece
        cut = redactor.stream_cut(text)
        sent.append(redactor.text(text[:cut]))
        held = text[cut:]
    sent.append(redactor.text(held))
    return "".join(sent)


def test_overlapping_secrets_never_pass_however_the_text_is_split() -> None:
    secrets = ["abcab", "cabx", "bcabxy"]
    redactor = Redactor(secrets)
    text = "zabcabxyzcabxabcab!"
    for i, j in itertools.combinations(range(1, len(text)), 2):
        out = _stream(redactor, [text[:i], text[i:j], text[j:]])
        assert not any(s in out for s in secrets), (i, j, out)
    assert not any(s in _stream(redactor, list(text)) for s in secrets)


def test_text_that_cannot_begin_a_secret_is_not_held_back() -> None:
    redactor = Redactor(["sk-secret"])
    assert redactor.stream_cut("plain word") == len("plain word")
    assert redactor.stream_cut("plain words") == len("plain word")  # "s" may begin it
    assert redactor.stream_cut("key sk-se") == len("key ")
    assert redactor.stream_cut("key sk-secret") == len("key sk-secret")
    assert Redactor([]).stream_cut("anything s") == len("anything s")
