"""The token layout: the one place that knows where special tokens and positions sit.

GPT-1 has one embedding table `we` whose rows are, in order (the original `train.py`):

    [0, n_vocab)                                the BPE vocabulary (`encoder_bpe_40000.json`)
    [n_vocab, n_vocab + N_SPECIAL)              _start_, _delimiter_, _classify_
    [n_vocab + N_SPECIAL, ... + n_ctx)          positions 0 .. n_ctx - 1

Model inputs X [..., T, 2] hold (token id, position id) pairs, both indexing that table. Every
reader, transform, model and tool takes the layout from here. Plain Python: no NumPy, no TensorFlow.
"""

SPECIAL_TOKENS = ("_start_", "_delimiter_", "_classify_")  # appended after the BPE vocabulary, in this order
N_SPECIAL = len(SPECIAL_TOKENS)


def special_ids(n_vocab):
    """Ids of the special tokens: {'_start_': n_vocab, '_delimiter_': n_vocab + 1, '_classify_': n_vocab + 2}."""
    return {name: n_vocab + i for i, name in enumerate(SPECIAL_TOKENS)}


def start_id(n_vocab):
    return n_vocab + SPECIAL_TOKENS.index("_start_")


def delimiter_id(n_vocab):
    return n_vocab + SPECIAL_TOKENS.index("_delimiter_")


def clf_id(n_vocab):
    """Id of `_classify_`, where the classifier reads the hidden state."""
    return n_vocab + SPECIAL_TOKENS.index("_classify_")


def position_id(n_vocab, position, n_special=N_SPECIAL):
    """Table row of `position` (0-based): the positions follow the vocabulary and the special rows."""
    return n_vocab + n_special + position


def n_table(n_vocab, n_ctx, n_special=N_SPECIAL):
    """Rows of the embedding table: vocabulary, special tokens, positions."""
    return n_vocab + n_special + n_ctx
