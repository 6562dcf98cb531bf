"""The loop of one run and its machinery: state, evaluation, log, hooks, precision, signals."""
