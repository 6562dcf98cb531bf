"""Flickr-8K image captioning with a NeuralTalk-style CNN + LSTM, scored by BLEU (paper, Table 5).

Modules, one job each: ``text`` (tokens and vocabulary), ``corpus`` (the dataset files),
``standin`` (the digits stand-in in the same files), ``features`` (the frozen image encoder and
its on-disk cache), ``model`` (NeuralTalk, greedy and beam decoding), ``bleu`` (sacrebleu corpus
BLEU-1..4), ``adapter`` (the suite's interface), ``figures`` (the paper's Figure 3 analog).
"""
