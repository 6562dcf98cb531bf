"""NeuralTalk (Karpathy & Fei-Fei, 2015) as the DSD paper trains it, and its decoders.

The image feature is projected to 256 (``image_projection``, NeuralTalk's ``We``) and fed to a
one-layer LSTM (hidden 256) as its first input step; then the ``<start>`` token and the caption's
words, embedded in 256 dimensions (``embedding``, ``Ws``), follow one per step (teacher forcing).
The output after the image step is ignored; each later output predicts the next word through
a linear softmax layer over the vocabulary (``output``, ``Wd`` / ``bd``). Dropout 0.5 acts on the
LSTM's inputs and outputs, as NeuralTalk's encoder / decoder dropout. Weights start uniform in
[-0.1, 0.1] as NeuralTalk's ``initw``; the output bias starts at the log word frequencies.

Differences from NeuralTalk's numpy LSTM, for the record: PyTorch's LSTM applies tanh to the cell
before the output gate (NeuralTalk's default ``tanhC_version=0`` does not) and has two bias
vectors (the second starts at zero, so the sum is NeuralTalk's single bias row).

Decoding: ``greedy`` (the paper's, beam 1) and ``beam_search``; both score a caption by its total
log-probability under the model's full softmax, ``<end>`` included, with no length penalty
(NeuralTalk's rule), and stop at ``<end>`` or ``max_length`` words.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsd.errors import ConfigError
from tasks.flickr8k.text import END_ID, PAD_ID, START_ID

INIT_RANGE = 0.1

State = tuple[torch.Tensor, torch.Tensor]


class NeuralTalk(nn.Module):
    """Image feature -> caption word logits; see the module docstring."""

    def __init__(
        self,
        feature_dim: int,
        vocab_size: int,
        embed_size: int = 256,
        hidden_size: int = 256,
        dropout: float = 0.5,
        output_bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.image_projection = nn.Linear(feature_dim, embed_size)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.lstm = nn.LSTM(embed_size, hidden_size, batch_first=True)
        self.output = nn.Linear(hidden_size, vocab_size)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters(output_bias)

    @torch.no_grad()
    def reset_parameters(self, output_bias: torch.Tensor | None = None) -> None:
        for name, param in self.named_parameters():
            if name.endswith("weight") or name.startswith("lstm.weight") or name == "lstm.bias_ih_l0":
                param.uniform_(-INIT_RANGE, INIT_RANGE)
            else:
                param.zero_()
        if output_bias is not None:
            self.output.bias.copy_(output_bias)

    # ------------------------------------------------------------------ training
    def forward(self, features: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, V]``: after ``inputs[:, t]`` (``<start>``, w1, ...), the next word."""
        image = self.image_projection(features).unsqueeze(1)
        steps = torch.cat([image, self.embedding(inputs)], dim=1)
        hidden, _ = self.lstm(self.dropout(steps))
        return self.output(self.dropout(hidden[:, 1:]))

    # ------------------------------------------------------------------ decoding, one step at a time
    def initial_state(self, features: torch.Tensor) -> State:
        """The LSTM state after the image step."""
        _, (h, c) = self.lstm(self.dropout(self.image_projection(features)).unsqueeze(1))
        return h, c

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Log-probabilities ``[N, V]`` of the word after ``tokens`` ``[N]``, and the new state."""
        hidden, state = self.lstm(self.dropout(self.embedding(tokens)).unsqueeze(1), state)
        return F.log_softmax(self.output(self.dropout(hidden[:, 0])).float(), dim=-1), state


def caption_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per predicted word (``<end>`` included, padding excluded)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=PAD_ID
    )


def _never(logprobs: torch.Tensor) -> torch.Tensor:
    """Forbid the tokens a caption never contains (padding, ``<start>``)."""
    logprobs[..., PAD_ID] = float("-inf")
    logprobs[..., START_ID] = float("-inf")
    return logprobs


@torch.no_grad()
def greedy(model: NeuralTalk, features: torch.Tensor, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Most likely next word at every step. Returns ids ``[B, L]`` (``<end>`` then padding)
    and each caption's log-probability ``[B]``."""
    batch = features.shape[0]
    state = model.initial_state(features)
    tokens = torch.full((batch,), START_ID, dtype=torch.long, device=features.device)
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    score = torch.zeros(batch, device=features.device)
    out = []
    for _ in range(max_length):
        logprobs, state = model.step(tokens, state)
        best, tokens = _never(logprobs).max(dim=-1)
        tokens = tokens.masked_fill(done, PAD_ID)
        score += best.masked_fill(done, 0.0)
        out.append(tokens)
        done |= tokens == END_ID
        if bool(done.all()):
            break
    return torch.stack(out, dim=1), score


@torch.no_grad()
def beam_search(
    model: NeuralTalk, features: torch.Tensor, max_length: int, beam: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam`` best partial captions per image; return the best finished one.

    A caption that has emitted ``<end>`` stays in the beam with its score frozen. Same
    returns as ``greedy``; ``beam=1`` is greedy decoding.
    """
    if beam < 1:
        raise ConfigError(f"beam size must be at least 1, got {beam}")
    batch, device = features.shape[0], features.device
    h, c = model.initial_state(features)
    h, c = h.repeat_interleave(beam, dim=1), c.repeat_interleave(beam, dim=1)
    tokens = torch.full((batch * beam,), START_ID, dtype=torch.long, device=device)
    scores = torch.full((batch, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis to start from
    done = torch.zeros(batch, beam, dtype=torch.bool, device=device)
    seqs = torch.empty(batch, beam, 0, dtype=torch.long, device=device)
    offsets = (torch.arange(batch, device=device) * beam).unsqueeze(1)
    for _ in range(max_length):
        logprobs, (h, c) = model.step(tokens, (h, c))
        logprobs = _never(logprobs.view(batch, beam, -1))
        vocab = logprobs.shape[-1]
        # a finished caption extends only by padding, at no cost
        frozen = torch.full_like(logprobs[0, 0], float("-inf"))
        frozen[PAD_ID] = 0.0
        logprobs = torch.where(done.unsqueeze(-1), frozen, logprobs)
        candidates = (scores.unsqueeze(-1) + logprobs).view(batch, -1)
        scores, flat = candidates.topk(beam, dim=-1)
        parent, word = flat // vocab, flat % vocab
        seqs = torch.cat(
            [seqs.gather(1, parent.unsqueeze(-1).expand(-1, -1, seqs.shape[-1])), word.unsqueeze(-1)], dim=-1
        )
        done = done.gather(1, parent) | (word == END_ID)
        rows = (offsets + parent).view(-1)
        h, c = h[:, rows], c[:, rows]
        tokens = word.view(-1)
        if bool(done.all()):
            break
    best = scores.argmax(dim=-1)
    picked = seqs[torch.arange(batch, device=device), best]
    return picked, scores[torch.arange(batch, device=device), best]


def decode(
    model: NeuralTalk, features: torch.Tensor, max_length: int, beam: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy for ``beam == 1`` (the paper's), else beam search."""
    return (
        greedy(model, features, max_length) if beam == 1 else beam_search(model, features, max_length, beam)
    )


@torch.no_grad()
def sequence_logprob(model: NeuralTalk, features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Total log-probability of each caption ``ids`` ``[B, L]`` (padding after ``<end>`` ignored)."""
    inputs = torch.cat([torch.full_like(ids[:, :1], START_ID), ids[:, :-1].clamp_min(0)], dim=1)
    inputs = inputs.masked_fill(inputs == END_ID, PAD_ID)
    logprobs = F.log_softmax(model(features, inputs).float(), dim=-1)
    picked = logprobs.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(ids == PAD_ID, 0.0).sum(dim=1)
