"""WSJ speech recognition with DeepSpeech 1 / DeepSpeech 2 style CTC models, scored by WER
(paper, Tables 7 and 9: D-S-D-S-D with 50 % then 25 % sparsity).

Modules, one job each: ``text`` (the 29 output symbols), ``wsj_text`` (normalising WSJ's
``.dot`` transcripts), ``manifest`` (the JSON-lines format every corpus is prepared into),
``audio`` (reading WAV / FLAC, NIST SPHERE via sph2pipe, resampling), ``prepare`` (WSJ and
LibriSpeech into manifests), ``standin`` + ``espeak_worker`` (the eSpeak NG stand-in corpus),
``features`` (log spectrograms), ``data`` (dataset, filters, batches), ``models`` (DS1, DS2),
``ctc`` (loss, greedy decoding, feasibility), ``scoring`` (WER / CER with jiwer), ``adapter``
(the suite's interface).
"""
