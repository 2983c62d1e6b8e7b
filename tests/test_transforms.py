"""The paper's four input transformations: exact token layouts, truncation, both similarity orders."""
import unittest

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt1_tf.network import tokens
from gpt1_tf.data.rows import Example
from gpt1_tf.data.transforms import (N_FIELDS, max_field_len, task_n_ctx, transform_roc, transform_task)

V = 10  # vocabulary: _start_ 10, _delimiter_ 11, _classify_ 12, positions from 13
S, D, E = 10, 11, 12


def rows(X, M):
    """The token ids of each sequence, up to its mask."""
    return [[list(X[i, k, :int(M[i, k].sum()), 0]) for k in range(X.shape[1])] for i in range(len(X))]


class LayoutTest(unittest.TestCase):

    def test_the_special_ids_are_the_layouts(self):
        self.assertEqual((S, D, E), (tokens.start_id(V), tokens.delimiter_id(V), tokens.clf_id(V)))

    def test_classification(self):
        X, M = transform_task("classification", [Example(texts=([1, 2, 3],), label=0)], n_ctx=8, n_vocab=V)
        self.assertEqual(rows(X, M), [[[S, 1, 2, 3, E]]])
        self.assertEqual(list(X[0, 0, :, 1]), list(range(13, 21)))  # positions follow the specials
        self.assertEqual(list(M[0, 0]), [1] * 5 + [0] * 3)

    def test_entailment(self):
        X, M = transform_task("entailment", [Example(texts=([1, 2], [3]), label=1)], n_ctx=8, n_vocab=V)
        self.assertEqual(rows(X, M), [[[S, 1, 2, D, 3, E]]])

    def test_similarity_has_both_orders(self):
        X, M = transform_task("similarity", [Example(texts=([1, 2], [3]), label=2.5)], n_ctx=8, n_vocab=V)
        self.assertEqual(rows(X, M), [[[S, 1, 2, D, 3, E], [S, 3, D, 1, 2, E]]])

    def test_multiple_choice(self):
        e = Example(texts=([1, 2], [3]), choices=([4], [5, 6], [7], [8]), label=1)
        X, M = transform_task("multiple_choice", [e], n_ctx=10, n_vocab=V)
        self.assertEqual(rows(X, M), [[[S, 1, 2, 3, D, 4, E], [S, 1, 2, 3, D, 5, 6, E],
                                       [S, 1, 2, 3, D, 7, E], [S, 1, 2, 3, D, 8, E]]])

    def test_multiple_choice_with_two_endings_is_transform_roc(self):
        rng = np.random.RandomState(0)
        stories = [list(rng.randint(0, V, rng.randint(1, 30))) for _ in range(6)]
        endings = [[list(rng.randint(0, V, rng.randint(1, 12))) for _ in range(2)] for _ in range(6)]
        for n_ctx in (16, 33, 77):
            with self.subTest(n_ctx=n_ctx):
                max_len = n_ctx // 2 - 2  # the original's rule
                want = transform_roc(stories, [e[0] for e in endings], [e[1] for e in endings], n_ctx=n_ctx,
                                     max_len=max_len, n_vocab=V)
                examples = [Example(texts=(s,), choices=tuple(e), label=0) for s, e in zip(stories, endings)]
                got = transform_task("multiple_choice", examples, n_ctx=n_ctx, n_vocab=V)
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])

    def test_examples_with_different_numbers_of_choices_are_refused(self):
        examples = [Example(texts=([1],), choices=([2], [3])), Example(texts=([1],), choices=([2], [3], [4]))]
        with self.assertRaisesRegex(ValueError, "numbers of sequences"):
            transform_task("multiple_choice", examples, n_ctx=8, n_vocab=V)


class TruncationTest(unittest.TestCase):

    def test_the_original_rule_for_two_fields(self):
        self.assertEqual(max_field_len(512, 2), 512 // 2 - 2)
        self.assertEqual(max_field_len(77, 2), 77 // 2 - 2)

    @settings(max_examples=60, deadline=None)
    @given(fmt=st.sampled_from(sorted(N_FIELDS)), n_ctx=st.integers(8, 64),
           lengths=st.lists(st.integers(0, 80), min_size=4, max_size=4))
    def test_every_sequence_fits_keeps_its_first_tokens_and_ends_in_classify(self, fmt, n_ctx, lengths):
        a, b, c1, c2 = ([1 + (i % 9) for i in range(n)] for n in lengths)
        example = Example(texts=(a, b) if N_FIELDS[fmt] == 2 and fmt != "multiple_choice" else (a,),
                          choices=(c1, c2) if fmt == "multiple_choice" else ())
        X, M = transform_task(fmt, [example], n_ctx=n_ctx, n_vocab=V)
        max_len = max_field_len(n_ctx, N_FIELDS[fmt])
        for seq in rows(X, M)[0]:
            self.assertLessEqual(len(seq), n_ctx)
            self.assertEqual((seq[0], seq[-1]), (S, E))
            fields, field = [], []
            for t in seq[1:-1]:
                if t == D:
                    fields.append(field)
                    field = []
                else:
                    field.append(t)
            fields.append(field)
            originals = {"classification": [a], "entailment": [a, b], "similarity": [[a, b], [b, a]],
                         "multiple_choice": None}[fmt]
            if fmt == "classification" or fmt == "entailment":
                self.assertEqual(fields, [f[:max_len] for f in originals])
            for f in fields:
                self.assertLessEqual(len(f), max_len)

    def test_n_ctx_is_what_the_longest_example_needs(self):
        split = [Example(texts=([1] * 5, [2] * 3)), Example(texts=([1] * 2, [2] * 9))]
        self.assertEqual(task_n_ctx("entailment", [split], 512), 9 + 2 + 3)
        self.assertEqual(task_n_ctx("entailment", [split], 12), 4 + 3 + 3)  # fields cut to 12 // 2 - 2 = 4


if __name__ == "__main__":
    unittest.main()
