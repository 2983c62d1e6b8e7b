"""Task heads on the shared body's hidden states: the tied LM head and the classifier of each task format.

The LM head has no weights of its own: its logits are the hidden states times the (dropped-out)
embedding table `we`, as in the original. The classifier heads read each sequence's state at its
first `_classify_` token and apply one linear layer `clf` (paper section 3.3):

- multiple choice (`MultipleChoiceHead`, the original's): one score per choice, softmax over the
  K choices of an example (Story Cloze: K = 2 endings; RACE: K = 4 answers);
- classification and entailment (`ClassificationHead`): the one sequence's state -> n_classes;
- similarity (`SimilarityHead`): the states of the two orders (a, b) and (b, a) added, -> n_classes,
  or one real-valued score with the squared error (STS-B).
"""
import keras
import tensorflow as tf

from gpt1_tf.network import ops
from gpt1_tf.network.layers import ClfHead, site_seed

SITE_CLF = 1  # dropout site of the classifier (see `gpt1_tf.network.model`)


def lm_losses_full(h, we, X, M):
    """The original LM head: logits at every position against ALL rows of `we`, masked mean xent."""
    n_embd = ops.shape_list(h)[-1]
    n_seq, T = ops.shape_list(X)[0], ops.shape_list(X)[1]
    lm_h = tf.reshape(h[:, :-1], [-1, n_embd])
    lm_logits = ops.to_dtype(tf.matmul(lm_h, ops.to_dtype(we, lm_h.dtype), transpose_b=True), tf.float32)
    lm_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        logits=lm_logits, labels=tf.reshape(X[:, 1:, 0], [-1]))
    lm_losses = tf.reshape(lm_losses, [n_seq, T - 1])
    return tf.reduce_sum(lm_losses * M[:, 1:], 1) / tf.reduce_sum(M[:, 1:], 1)


def lm_losses_masked(h, we, X, M):
    """Same losses as `lm_losses_full`, but the head is evaluated only where M[:, 1:] != 0.

    Positions the mask zeroes contribute exactly 0 to the original's sum, so skipping them changes
    no number beyond float summation order; it saves most of the 40k-row head on padded batches.
    """
    n_seq = ops.shape_list(X)[0]
    m = M[:, 1:]
    idx = tf.where(tf.not_equal(m, 0))  # [N_real, 2]: (sequence, position)
    lm_h = tf.gather_nd(h[:, :-1], idx)  # [N_real, n_embd]
    labels = tf.gather_nd(X[:, 1:, 0], idx)
    lm_logits = ops.to_dtype(tf.matmul(lm_h, ops.to_dtype(we, lm_h.dtype), transpose_b=True), tf.float32)
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(logits=lm_logits, labels=labels)
    seq = tf.cast(idx[:, 0], tf.int32)
    total = tf.math.unsorted_segment_sum(xent * tf.gather_nd(m, idx), seq, n_seq)
    return total / tf.reduce_sum(m, 1)


LM_HEADS = {"full": lm_losses_full, "masked": lm_losses_masked}


def token_logits(h, we, n_vocab):
    """The language model's logits over the n_vocab BPE rows only (not the special or position rows).

    What generation samples from, scoring measures and pretraining trains: a next token is a
    token. In float32 under mixed precision too. (The fine-tuning LM loss keeps the original's
    head over the whole table.)
    """
    return tf.matmul(ops.to_dtype(h, tf.float32), we[:n_vocab], transpose_b=True)


def next_token_losses(h, we, ids, n_vocab):
    """Cross-entropies [S, T - 1] of ids[:, 1:] given h [S, T, n_embd] (the states of ids), over the token rows."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(logits=token_logits(h[:, :-1], we, n_vocab),
                                                          labels=ids[:, 1:])


def pooled(h, X, clf_token):
    """h [S, T, n_embd] at each sequence's first `_classify_` token: [S, n_embd]."""
    return ops.rows_at(h, ops.pool_index(X, clf_token))


class TaskHead(ClfHead):
    """The linear layer `clf` on the pooled `_classify_` states of an example's K sequences.

    Weights `w` [n_embd, ny], `b` [ny] (the original's names and order); `logits(clf_h, K, seed)`
    maps the pooled states [B*K, n_embd] to the example's logits, `losses(logits, Y)` to a loss per
    example. Subclasses: one per input format of the paper (Figure 1, right).
    """

    def __init__(self, n_embd, *, clf_pdrop, ny=1, **kwargs):
        kwargs.setdefault("name", "clf")
        super().__init__(ny, **kwargs)
        self.n_embd, self.clf_pdrop = n_embd, clf_pdrop

    def _dropout(self, x, seed, noise_shape=None):
        return ops.dropout(x, self.clf_pdrop, site_seed(seed, SITE_CLF), noise_shape=noise_shape)

    @staticmethod
    def losses(logits, Y):
        """Cross-entropy of the right class (or choice) Y [B] under the softmax of logits [B, ny]: [B]."""
        return tf.nn.sparse_softmax_cross_entropy_with_logits(logits=logits, labels=Y)

    def get_config(self):
        config = {**super().get_config(), "n_embd": self.n_embd, "clf_pdrop": self.clf_pdrop}
        return config


@keras.saving.register_keras_serializable("gpt1_tf")
class MultipleChoiceHead(TaskHead):
    """The original `clf`: one score per choice (ny 1), a softmax over an example's K choices.

    One clf dropout mask per example, shared by its K choices, as the original's noise shape [B, 1, n_embd].
    """

    def __init__(self, n_embd, *, clf_pdrop, **kwargs):
        kwargs.pop("ny", None)
        kwargs.pop("n_choices", None)  # K comes from the inputs (a config key of earlier versions)
        super().__init__(n_embd, clf_pdrop=clf_pdrop, ny=1, **kwargs)

    def logits(self, clf_h, K, seed=None):
        """Logits [B, K] of the pooled states [B*K, n_embd]."""
        n_embd = self.n_embd
        clf_h = tf.reshape(ops.to_dtype(clf_h, tf.float32), [-1, K, n_embd])  # [B, K, n_embd]
        if seed is not None:
            noise_shape = tf.stack([tf.shape(clf_h)[0], 1, n_embd])  # same mask for every choice
            clf_h = self._dropout(clf_h, seed, noise_shape)
        clf_h = tf.reshape(clf_h, [-1, n_embd])
        return tf.reshape(self(clf_h), [-1, K])


@keras.saving.register_keras_serializable("gpt1_tf")
class ClassificationHead(TaskHead):
    """Classification and entailment: the one sequence's state -> linear(n_embd -> n_classes)."""

    def logits(self, clf_h, K=1, seed=None):
        clf_h = ops.to_dtype(clf_h, tf.float32)  # [B, n_embd]: K = 1 sequence per example
        return self(self._dropout(clf_h, seed))


@keras.saving.register_keras_serializable("gpt1_tf")
class SimilarityHead(TaskHead):
    """Similarity: the two orders' states added element-wise -> linear(n_embd -> n_classes, or 1 score).

    With one output (`ny` 1, a real-valued score such as STS-B's) the loss is the squared error.
    """

    def logits(self, clf_h, K=2, seed=None):
        clf_h = tf.reshape(ops.to_dtype(clf_h, tf.float32), [-1, 2, self.n_embd])
        clf_h = clf_h[:, 0] + clf_h[:, 1]  # [B, n_embd]: (a, b) + (b, a)
        return self(self._dropout(clf_h, seed))

    def losses(self, logits, Y):
        if self.ny == 1:
            return tf.square(logits[:, 0] - Y)
        return TaskHead.losses(logits, Y)


HEADS = {"classification": ClassificationHead, "entailment": ClassificationHead,
         "similarity": SimilarityHead, "multiple_choice": MultipleChoiceHead}


def make_head(cfg):
    """The `clf` head of a ModelConfig's task format."""
    if cfg.task_format == "multiple_choice":
        return MultipleChoiceHead(cfg.n_embd, clf_pdrop=cfg.clf_pdrop, name="clf")
    return HEADS[cfg.task_format](cfg.n_embd, clf_pdrop=cfg.clf_pdrop, ny=cfg.n_clf_out, name="clf")


def train_loss(clf_losses, lm_losses, lm_coef):
    """mean(clf) + lm_coef * mean(lm); the LM term only when lm_coef > 0, as the original."""
    loss = tf.reduce_mean(clf_losses)
    if lm_coef > 0:
        loss = loss + lm_coef * tf.reduce_mean(lm_losses)
    return loss

