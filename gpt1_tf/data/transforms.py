"""Input transformations (encoded examples of the paper's four task formats -> model arrays X, M); NumPy only.

Mirrors the data half of `train.py` in openai/finetune-transformer-lm (`encode_dataset`,
`transform_roc`; its `iter_data` is `gpt1_tf.data.batching`). The readers (files -> examples) are `gpt1_tf.data.rocstories`; the token
layout (special ids, position ids) is `gpt1_tf.network.tokens`.
"""

import dataclasses

import numpy as np

from gpt1_tf.network import tokens
from gpt1_tf.network.config import TASK_FORMATS


def _is_text_field(field):
    """A field to encode is a non-empty list/tuple of str (label arrays pass through)."""
    return isinstance(field, (list, tuple)) and len(field) > 0 and isinstance(field[0], str)


def encode_dataset(splits, *, encoder, verbose=False):
    """Encode every text field of every split with `encoder.encode`; other fields pass through.

    All texts go through one batched `encode` call (one progress bar, one shared BPE cache); the
    result equals encoding each field separately, as the original did, since `encode` is per text.
    """
    texts = [text for split in splits for field in split if _is_text_field(field) for text in field]
    ids = iter(encoder.encode(texts, verbose=verbose))
    encoded_splits = []
    for split in splits:
        fields = []
        for field in split:
            if _is_text_field(field):
                field = [next(ids) for _ in field]
            fields.append(field)
        encoded_splits.append(fields)
    return encoded_splits


def max_len_for(n_ctx):
    """Tokens kept per field: room for story + ending + the special tokens within n_ctx."""
    return n_ctx // 2 - 2  # the original's rule (2 * max_len + N_SPECIAL <= n_ctx - 1)


def compute_n_ctx(splits_X, n_ctx):
    """The context actually needed over all splits (train, valid AND test), capped at the CLI n_ctx.

    `splits_X` is a list of (X1, X2, X3) triples of encoded stories and endings.
    """
    max_len = max_len_for(n_ctx)
    needed = max(sequence_len((x1, ending), max_len)
                 for X1, X2, X3 in splits_X for x1, x2, x3 in zip(X1, X2, X3) for ending in (x2, x3))
    return min(needed, n_ctx)


def transform_roc(X1, X2, X3, *, n_ctx, max_len, n_vocab, n_special=tokens.N_SPECIAL):
    """Build the model inputs: xmb int32 [N, 2, n_ctx, 2] (token, position ids), mmb float32 [N, 2, n_ctx].

    Sequence k of story i is [start] + story[:max_len] + [delimiter] + ending_k[:max_len] + [classify].
    """
    sequences = [[sequence((x1, ending), n_vocab=n_vocab, max_len=max_len) for ending in (x2, x3)]
                 for x1, x2, x3 in zip(X1, X2, X3)]
    return model_arrays(sequences, 2, n_ctx=n_ctx, n_vocab=n_vocab, n_special=n_special)


def model_arrays(sequences, K, *, n_ctx, n_vocab, n_special=tokens.N_SPECIAL):
    """X int32 [N, K, n_ctx, 2] (token, position ids) and M float32 [N, K, n_ctx] of each example's K token lists."""
    X = np.zeros((len(sequences), K, n_ctx, 2), dtype=np.int32)  # [example, sequence, position, token|position]
    M = np.zeros((len(sequences), K, n_ctx), dtype=np.float32)  # [example, sequence, position]
    for i, seqs in enumerate(sequences):
        for k, x in enumerate(seqs):
            assert len(x) <= n_ctx, f"example {i} sequence {k}: {len(x)} tokens exceed n_ctx={n_ctx}"
            X[i, k, :len(x), 0] = x
            M[i, k, :len(x)] = 1
    # Position ids index the rows after the BPE and special rows of the embedding matrix.
    X[..., 1] = tokens.position_id(n_vocab, np.arange(n_ctx), n_special)
    return X, M


# --- the paper's four input transformations (section 3.3, Figure 1 right) -----------------------
# Each example becomes K sequences [_start_] field_1 [_delimiter_] field_2 ... [_classify_]:
#   classification   K = 1: (text)
#   entailment       K = 1: (premise, hypothesis)
#   similarity       K = 2: (a, b) and (b, a): both orders, their `_classify_` states added by the head
#   multiple_choice  K = number of choices: (context, choice_k); the context is the example's texts
#                    joined in order (`choice_context`). Story Cloze is this format with K = 2 (`transform_roc`).
# Truncation, one rule for every format (the original's n_ctx // 2 - 2 for two fields): each field
# keeps its first max_field_len(n_ctx, fields) tokens, and `_classify_` is never cut. A multiple-choice
# context keeps its last text (RACE's question) whole and cuts the earlier ones (the article).
N_FIELDS = dict(zip(TASK_FORMATS, (1, 2, 2, 2)))  # text fields per sequence of each format


def max_field_len(n_ctx, n_fields):
    """Tokens kept per text field: n_ctx // n_fields - 2, the original's n_ctx // 2 - 2 for two fields.

    A sequence holds n_fields texts and n_fields + 1 special tokens, so at most n_ctx - n_fields + 1
    <= n_ctx tokens: each text keeps its first tokens, and `_classify_` is never cut.
    """
    return n_ctx // n_fields - 2


def example_fields(task_format, example, max_len):
    """The fields (lists of token ids) of each of an encoded example's K sequences, each cut to max_len."""
    texts = [list(t)[:max_len] for t in example.texts]
    if task_format == "classification":
        return [(texts[0],)]
    if task_format == "entailment":
        return [(texts[0], texts[1])]
    if task_format == "similarity":
        return [(texts[0], texts[1]), (texts[1], texts[0])]
    if task_format == "multiple_choice":
        context = choice_context(example.texts, max_len)
        return [(context, list(choice)[:max_len]) for choice in example.choices]
    raise ValueError(f"unknown task format {task_format!r}; one of {', '.join(N_FIELDS)}")


def choice_context(texts, max_len):
    """A multiple-choice example's context: its texts in order, at most max_len tokens.

    The last text (RACE's question) keeps its first max_len tokens whole; the earlier ones (RACE's
    article) fill the room left with their first tokens. With one text (Story Cloze) this is the
    original's story[:max_len].
    """
    last = list(texts[-1])[:max_len]
    room = max(max_len - len(last), 0)
    return [i for t in texts[:-1] for i in t][:room] + last


def sequence(fields, *, n_vocab, max_len):
    """[_start_] f_1[:max_len] [_delimiter_] f_2[:max_len] ... [_classify_]."""
    x = [tokens.start_id(n_vocab)]
    for k, field in enumerate(fields):
        if k:
            x.append(tokens.delimiter_id(n_vocab))
        x += list(field[:max_len])
    return x + [tokens.clf_id(n_vocab)]


def sequence_len(fields, max_len):
    """Length of `sequence(fields)`: the truncated fields and their len(fields) + 1 special tokens.

    The fields are sliced as `sequence` slices them (a negative max_len, n_ctx < 4, drops tokens from
    the end, as the original's slices did).
    """
    return sum(len(f[:max_len]) for f in fields) + len(fields) + 1


def encode_examples(examples, *, encoder, verbose=False):
    """The examples with every text and choice encoded to token ids, in one batched `encode` call."""
    texts = [t for e in examples for t in (*e.texts, *e.choices)]
    ids = iter(encoder.encode(texts, verbose=verbose))
    return [dataclasses.replace(e, texts=tuple(next(ids) for _ in e.texts),
                                choices=tuple(next(ids) for _ in e.choices)) for e in examples]


def task_n_ctx(task_format, splits, n_ctx):
    """The context the encoded examples of all `splits` need after truncation, capped at `n_ctx`."""
    max_len = max_field_len(n_ctx, N_FIELDS[task_format])
    needed = max(sequence_len(fields, max_len)
                 for split in splits for e in split for fields in example_fields(task_format, e, max_len))
    return min(needed, n_ctx)


def transform_task(task_format, examples, *, n_ctx, n_vocab, max_len=None):
    """X int32 [N, K, n_ctx, 2] (token, position ids) and M float32 [N, K, n_ctx] of encoded examples."""
    max_len = max_field_len(n_ctx, N_FIELDS[task_format]) if max_len is None else max_len
    sequences = [[sequence(f, n_vocab=n_vocab, max_len=max_len) for f in example_fields(task_format, e, max_len)]
                 for e in examples]
    K = {len(s) for s in sequences}
    if len(K) > 1:
        raise ValueError(f"examples have different numbers of sequences ({sorted(K)}): give every example "
                         "the same number of choices")
    return model_arrays(sequences, K.pop() if K else 1, n_ctx=n_ctx, n_vocab=n_vocab)
