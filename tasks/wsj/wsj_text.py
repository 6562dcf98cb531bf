"""WSJ ``.dot`` transcripts normalised into the 29-symbol alphabet (``tasks.wsj.text``).

A ``.dot`` file holds one line per utterance, ``<transcript> (<utterance id>)``, in the CSR
"detailed orthographic transcription" conventions (LDC's ``dot_spec``). Kaldi's WSJ recipe
(``egs/wsj/s5/local/normalize_transcript.pl``) maps them to upper-case words plus a ``<NOISE>``
word for a phone lexicon. A character CTC model has no noise symbol and no punctuation, so we
follow Kaldi where it decides what was *spoken*, and spell what was spoken in ``a-z ' space``.
Rules, applied to each whitespace-separated token in this order:

1. Escapes: backslashes are dropped (``isn\\'t`` -> ``isn't``, ``I\\.`` -> ``I.``); a backquote
   is an apostrophe.
2. Non-speech events in square brackets are dropped: ``[loud_breath]``, ``[door_slam]``, their
   overlap forms ``[<door_slam]`` / ``[door_slam>]`` and span markers ``[phone_ring/]`` /
   ``[/phone_ring]``, hesitation markers such as ``[uh]``. (Kaldi maps the plain ones to
   ``<NOISE>``; we have no symbol for it.) An utterance holding ``[bad_recording]`` is skipped
   entirely (by ``tasks.wsj.prepare``, counted as ``bad_recording``).
3. ``~`` (truncated utterance) and a lone ``.`` (pause) are dropped; a transcript that is just
   ``~~`` (a null waveform) normalises to the empty string and the utterance is skipped.
4. Verbal deletions ``<word>`` (e.g. ``<and>``, ``<uh>``) were spoken and then corrected by the
   reader: like Kaldi we keep the word (``and``, ``uh``), since it is in the audio.
5. Mispronunciation marks ``*word*`` lose their asterisks (the word is kept).
6. Word fragments: the unspoken part in parentheses is removed and the fragment hyphen dropped
   (``tri(ple)-`` -> ``tri``, ``(in)complete`` -> ``complete``): we transcribe what was heard.
7. Verbalized punctuation, read aloud in WSJ's VP prompts and written as punctuation followed
   by an upper-case name (``,COMMA``, ``.PERIOD``, ``"DOUBLE-QUOTE``, ``(LEFT-PAREN``,
   ``--DASH``, ``%PERCENT``, ``.POINT``, ``'SINGLE-QUOTE`` ...): the leading punctuation is
   removed and hyphens become spaces (``comma``, ``double quote``, ``left paren``, ``dash``),
   because the speaker said those words. (A lower-case ``'em`` is a word and keeps its
   apostrophe.)
8. Inside the remaining words: ``!`` and ``:`` (the spec's emphasis and lengthening marks) and
   periods (``I. B. M.`` -> ``i b m``, ``corp.`` -> ``corp``) are removed, hyphens become spaces
   (``forty-two`` -> ``forty two``), and everything is lower-cased.

Anything else outside the alphabet (a stray digit or ``&``) is left in place, so that the
dataset filters that utterance and counts it (``transcript_outside_alphabet``) instead of
training on a silently altered transcript.
"""

from __future__ import annotations

import re

from tasks.wsj.text import clean_spaces

_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")
_BRACKETED_EVENT = re.compile(r"^\[.*\]$")
_VERBAL_DELETION = re.compile(r"^<([^<>]+)>$")
_UNSPOKEN_PART = re.compile(r"\([^()]*\)")
_VERBALIZED_PUNCTUATION = re.compile(r"^[^A-Za-z0-9]+(?P<word>[A-Z][A-Z-]*[A-Z])$")
_DROPPED_TOKENS = {"~", "~~", "."}
BAD_RECORDING = "[bad_recording]"


def parse_dot_line(line: str) -> tuple[str, str] | None:
    """``(utterance id, raw transcript)`` of one ``.dot`` line; None for a blank line."""
    if not line.strip():
        return None
    match = _LINE.match(line.strip())
    if match is None:
        raise ValueError(f"not a .dot transcript line ('<text> (<utterance id>)'): {line.strip()!r}")
    return match["id"].lower(), match["text"]


def is_bad_recording(raw: str) -> bool:
    """Whether the transcriber marked the recording as unusable."""
    return BAD_RECORDING in raw.lower()


def normalize_wsj(raw: str) -> str:
    """A raw ``.dot`` transcript in the 29-symbol alphabet (rules in the module docstring)."""
    words = []
    for token in raw.replace("\\", "").replace("`", "'").split():
        if token in _DROPPED_TOKENS or _BRACKETED_EVENT.match(token):
            continue
        deletion = _VERBAL_DELETION.match(token)
        if deletion:
            token = deletion.group(1)
        token = token.replace("*", "")
        if "(" in token and ")" in token:
            token = _UNSPOKEN_PART.sub("", token)
        punctuation = _VERBALIZED_PUNCTUATION.match(token)
        if punctuation:
            token = punctuation["word"]
        token = token.replace("!", "").replace(":", "").replace(".", "").replace("-", " ")
        words.append(token.lower())
    return clean_spaces(" ".join(words))
