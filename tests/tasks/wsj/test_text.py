"""WSJ speech task: alphabet, .dot normalisation, CTC greedy decoding and feasibility, scoring."""

from __future__ import annotations

import jiwer
import pytest
import torch

from tasks.wsj.ctc import ctc_loss, frames_needed, greedy_decode
from tasks.wsj.scoring import Transcript, error_rates
from tasks.wsj.text import BLANK, NUM_CLASSES, SYMBOLS, decode, encode, outside_alphabet
from tasks.wsj.wsj_text import is_bad_recording, normalize_wsj, parse_dot_line


def test_alphabet_is_deepspeechs_29_symbols():
    assert NUM_CLASSES == 29
    assert SYMBOLS[BLANK] == "_"
    assert set(SYMBOLS[1:]) == set(" abcdefghijklmnopqrstuvwxyz'")
    assert decode(encode("don't stop")) == "don't stop"
    assert outside_alphabet("at&t 5 Cats") == {"&", "5", "C"}
    with pytest.raises(ValueError, match="outside the alphabet"):
        encode("route 66")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Kaldi's own examples: escapes, case, noise markers
        (
            "Of course there isn\\'t any guarantee the company will keep its hot hand [misc_noise]",
            "of course there isn't any guarantee the company will keep its hot hand",
        ),
        (
            "[loud_breath] And new hardware such as I\\. B\\. M\\. introduced last week [door_slam]",
            "and new hardware such as i b m introduced last week",
        ),
        # overlap and span markers, pause and truncation marks
        ("a [<door_slam] b [phone_ring/] c [/phone_ring] d [door_slam>] e . f ~", "a b c d e f"),
        # verbal deletions are spoken: kept without brackets
        ("<uh> i said <and> then", "uh i said and then"),
        # mispronunciations, fragments with their unspoken part, hyphenated words
        ("the *cor-po-rate* tri(ple)- (in)complete forty-two", "the cor po rate tri complete forty two"),
        # verbalized punctuation: the spoken name
        (
            'yes \\,COMMA he said "DOUBLE-QUOTE hi "END-QUOTE .PERIOD up %PERCENT (LEFT-PAREN --DASH',
            "yes comma he said double quote hi end quote period up percent left paren dash",
        ),
        ("three .POINT five 'SINGLE-QUOTE 'em", "three point five single quote 'em"),
        ("~~", ""),
        # characters without a label stay, so the dataset can filter and count them
        ("AT\\&T rose 5", "at&t rose 5"),
    ],
)
def test_wsj_normalisation(raw, expected):
    assert normalize_wsj(raw) == expected


def test_dot_lines_and_bad_recordings():
    assert parse_dot_line("The dog barked (4k0c0301)") == ("4k0c0301", "The dog barked")
    assert parse_dot_line("  ") is None
    with pytest.raises(ValueError, match=r"not a \.dot transcript line"):
        parse_dot_line("no utterance id here")
    assert is_bad_recording("[bad_recording] the dog")
    assert not is_bad_recording("[loud_breath] the dog")


def _logits(path: list[int]) -> torch.Tensor:
    """One-hot-ish logits whose argmax per frame is ``path``."""
    logits = torch.zeros(len(path), NUM_CLASSES)
    logits[torch.arange(len(path)), torch.tensor(path)] = 5.0
    return logits


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    h, i, sp, l_, o = encode("h")[0], encode("i")[0], encode(" ")[0], encode("l")[0], encode("o")[0]
    b = BLANK
    paths = [
        [b, h, h, b, i, i, sp, sp, b],  # "hi "
        [h, b, l_, l_, b, l_, o, b, b],  # repeats collapse, a blank separates the double l
        [b, b, b, b, b, b, b, b, b],  # all blank: empty
    ]
    logits = torch.stack([_logits(p) for p in paths])
    lengths = torch.tensor([9, 7, 9])
    assert greedy_decode(logits, lengths) == ["hi ", "hllo", ""]
    # frames past an utterance's length are ignored
    assert greedy_decode(logits[1:2], torch.tensor([4])) == ["hl"]


def test_ctc_feasibility_counts_repeats():
    assert frames_needed(encode("hello")) == 6  # the double l needs a blank between
    assert frames_needed(encode("abc")) == 3
    assert frames_needed([]) == 0


def test_ctc_loss_is_per_utterance_sum_averaged_over_batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 12, NUM_CLASSES)
    lengths = torch.tensor([12, 9])
    targets = torch.tensor(encode("abc") + encode("de"))
    target_lengths = torch.tensor([3, 2])
    per_utt = torch.nn.functional.ctc_loss(
        logits.log_softmax(-1).transpose(0, 1), targets, lengths, target_lengths, reduction="none"
    )
    assert torch.allclose(ctc_loss(logits, lengths, targets, target_lengths), per_utt.mean())
    # an infeasible utterance gives inf, never a silent zero (zero_infinity=False)
    short = ctc_loss(logits[:1], torch.tensor([2]), torch.tensor(encode("abc")), torch.tensor([3]))
    assert torch.isinf(short)


def test_error_rates_equal_jiwers_on_the_same_pairs():
    refs = ["the cat sat", "on the mat", "a b c d"]
    hyps = ["the cat sad", "on mat", ""]
    rates = error_rates(refs, hyps)
    assert rates["wer"] == pytest.approx(100 * jiwer.wer(refs, hyps))
    assert rates["cer"] == pytest.approx(100 * jiwer.cer(refs, hyps))
    assert rates["wer"] == pytest.approx(100 * 6 / 10)  # 1 sub + 1 del + 4 del over 10 words
    assert error_rates(["same words"], ["same words"]) == {"wer": 0.0, "cer": 0.0}
    assert Transcript("u1", "a", "b").reference == "a"
