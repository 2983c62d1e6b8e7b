"""The paper's four task formats through the network: heads, LM loss, speed levers, learning, towers.

- each head against a NumPy reference computed from the body's hidden states (it would catch a
  similarity head that reads one order only, or a classifier at the wrong token);
- the LM loss of every format against a NumPy reference (it would catch the loss on the wrong positions);
- every speed lever against the padded, full-head reference, per format (outputs and gradients, 1e-5);
- a tiny model learns an invented learnable task of each format (loss falls, the metric rises);
- towers == one tower for a non-ROCStories format (train.py, entailment).
"""
import os
import tempfile

import numpy as np
import tensorflow as tf

from helpers import (N_CTX, N_VOCAB, assert_same_step, final_checkpoint_arrays, forward_and_grads, randomised,
                     run_train)
from gpt1_tf import metrics
from gpt1_tf.network.config import ModelConfig, OptConfig, StepConfig
from gpt1_tf.network.model import TransformerModel
from gpt1_tf.data.rows import Example
from gpt1_tf.train.trainer import Trainer, trim_to_longest
from gpt1_tf.data.transforms import transform_task

TOL = 1e-5
# (task format, n_classes): the head each dataset gets (SST-2, MNLI, STS-B, MRPC, RACE)
HEADS = (("classification", 2), ("entailment", 3), ("similarity", 0), ("similarity", 2), ("multiple_choice", 0))
N_CHOICES = 3


def config(task_format, n_classes, pdrop=0.0, **kw):
    kw = dict(dict(n_embd=16, n_head=2, n_layer=2), **kw)
    return ModelConfig(n_vocab=N_VOCAB, n_ctx=N_CTX, embd_pdrop=pdrop, attn_pdrop=pdrop, resid_pdrop=pdrop,
                       clf_pdrop=pdrop, task_format=task_format, n_classes=n_classes, **kw)


def random_examples(rng, task_format, n_classes, n):
    """Examples of random token ids of unequal lengths, labelled at random."""
    def text(lo=1, hi=5):
        return list(rng.randint(0, N_VOCAB, rng.randint(lo, hi)))
    examples = []
    for _ in range(n):
        if task_format == "multiple_choice":
            examples.append(Example((text(),), label=int(rng.randint(N_CHOICES)),
                                    choices=tuple(text(1, 3) for _ in range(N_CHOICES))))
        else:
            texts = (text(),) if task_format == "classification" else (text(), text())
            label = float(rng.uniform(0, 5)) if n_classes == 0 else int(rng.randint(n_classes))
            examples.append(Example(texts, label=label))
    return examples


def make_model(task_format, n_classes, pdrop=0.0):
    """A model with large random parameters; a regression head's scaled down, so its float32 gradients stay ~1."""
    model = randomised(TransformerModel(config(task_format, n_classes, pdrop)))
    if task_format == "similarity" and n_classes == 0:
        model.clf.w.assign(model.clf.w * 0.05)
    return model


def batch(rng, task_format, n_classes, n=4):
    examples = random_examples(rng, task_format, n_classes, n)
    X, M = transform_task(task_format, examples, n_ctx=N_CTX, n_vocab=N_VOCAB)
    Y = np.asarray([e.label for e in examples], np.float32 if n_classes == 0 and task_format == "similarity"
                   else np.int32)
    return X, M, Y


def reference_heads(model, X, M):
    """NumPy: the head's logits and the LM losses from the body's hidden states, as the paper defines them."""
    cfg = model.cfg
    B, K, T = X.shape[:3]
    h, we = model.transformer.hidden(tf.reshape(X, [-1, T, 2]))
    h, we = h.numpy().astype(np.float64), we.numpy().astype(np.float64)
    Xs, Ms = X.reshape(-1, T, 2), M.reshape(-1, T)
    first_clf = [int(np.argmax(x[:, 0] == cfg.clf_token)) for x in Xs]
    pooled = np.stack([h[s, t] for s, t in enumerate(first_clf)]).reshape(B, K, -1)
    w, b = model.clf.w.numpy().astype(np.float64), model.clf.b.numpy().astype(np.float64)
    if cfg.task_format == "multiple_choice":
        logits = (pooled @ w)[..., 0] + b[0]  # one score per choice
    elif cfg.task_format == "similarity":
        logits = (pooled[:, 0] + pooled[:, 1]) @ w + b  # both orders, added
    else:
        logits = pooled[:, 0] @ w + b
    # LM: position t predicts token t + 1, counted where M[t + 1] is 1
    z = h[:, :-1] @ we.T
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, Xs[:, 1:, 0:1].astype(np.int64), -1)[..., 0]
    lm = (nll * Ms[:, 1:]).sum(1) / Ms[:, 1:].sum(1)
    return logits, lm


def each_head(test, seed):
    """(task format, n_classes, model, X, M, Y) of each head, each in a subTest."""
    rng = np.random.RandomState(seed)
    for task_format, n_classes in HEADS:
        with test.subTest(task_format=task_format, n_classes=n_classes):
            yield (task_format, n_classes, make_model(task_format, n_classes), *batch(rng, task_format, n_classes))


class HeadTest(tf.test.TestCase):

    def test_each_head_and_the_lm_loss_match_the_paper(self):
        for task_format, n_classes, model, X, M, Y in each_head(self, 0):
            logits, clf_losses, lm_losses = model(X, M, Y, lm_head="full")
            want_logits, want_lm = reference_heads(model, X, M)
            self.assertAllClose(logits, want_logits, atol=TOL, rtol=0)
            self.assertAllClose(lm_losses, want_lm, atol=TOL, rtol=0)
            self.assertEqual(lm_losses.shape[0], X.shape[0] * X.shape[1])  # every sequence, both orders
            if task_format == "similarity" and n_classes == 0:
                self.assertAllClose(clf_losses, (want_logits[:, 0] - Y) ** 2, atol=1e-4, rtol=0)
            else:
                z = want_logits - want_logits.max(1, keepdims=True)
                nll = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(len(Y)), Y]
                self.assertAllClose(clf_losses, nll, atol=TOL, rtol=0)

    def test_the_similarity_head_reads_both_orders(self):
        # changing only the second order's tokens (b, a) must change the logits
        model = randomised(TransformerModel(config("similarity", 2)))
        X, M, Y = batch(np.random.RandomState(1), "similarity", 2)
        other = X.copy()
        other[:, 1, 1, 0] = (other[:, 1, 1, 0] + 1) % N_VOCAB  # the first token of b in (b, a)
        self.assertGreater(np.min(np.abs(model(X, M)[0] - model(other, M)[0])), 1e-4)

    def test_keras_file_round_trip_keeps_the_head(self):
        import keras
        for task_format, n_classes, model, X, M, Y in each_head(self, 6):
            path = os.path.join(tempfile.mkdtemp(), "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
            self.assertIs(type(loaded.clf), type(model.clf))
            self.assertEqual((loaded.cfg.task_format, loaded.cfg.n_classes), (task_format, n_classes))
            self.assertAllEqual(loaded(X, M)[0], model(X, M)[0])

    def test_head_shapes(self):
        for (task_format, n_classes), ny in zip(HEADS, (2, 3, 1, 2, 1)):
            cfg = config(task_format, n_classes)
            self.assertEqual(TransformerModel(cfg).clf.w.shape, (16, ny))
            self.assertEqual(cfg.n_clf_out, ny)


class LeverPerFormatTest(tf.test.TestCase):
    """Every speed lever, for every format, against the padded full-head reference (outputs and gradients)."""

    def levers(self):
        def trimmed(m, X, M, Y, **kw):
            Xt, Mt = trim_to_longest(X, M)
            self.assertLess(Xt.shape[2], X.shape[2])
            return forward_and_grads(m, Xt, Mt, Y, **kw, lm_head="masked", packed=True)
        return {"masked LM head": lambda m, X, M, Y, **kw: forward_and_grads(m, X, M, Y, **kw, lm_head="masked"),
                "packed (shared prefix without dropout)":
                    lambda m, X, M, Y, **kw: forward_and_grads(m, X, M, Y, **kw, lm_head="masked", packed=True),
                "trimmed and packed": trimmed}

    def test_levers(self):
        rng = np.random.RandomState(2)
        for task_format, n_classes in HEADS:
            for pdrop in (0.0, 0.2):
                model = make_model(task_format, n_classes, pdrop)
                X, M, Y = batch(rng, task_format, n_classes)
                seed = tf.constant([5, 9], tf.int64) if pdrop else None
                want = forward_and_grads(model, X, M, Y, training=True, seed=seed, lm_head="full", packed=False)
                for name, lever in self.levers().items():
                    with self.subTest(task_format=task_format, n_classes=n_classes, pdrop=pdrop, lever=name):
                        got = lever(model, X, M, Y, training=True, seed=seed)
                        for i, (g, w) in enumerate(zip(got, want)):
                            self.assertAllClose(g, w, atol=TOL, rtol=0, msg=f"output {i}")

    def test_pool_only_evaluation(self):
        for _, _, model, X, M, Y in each_head(self, 3):
            want = model(X, M, Y, compute_lm=False, packed=False)
            for packed in (False, True):
                got = model(X, M, Y, compute_lm=False, packed=packed, pool_only=True)
                self.assertAllClose(got[0], want[0], atol=TOL, rtol=0)
                self.assertAllClose(got[1], want[1], atol=TOL, rtol=0)

    def test_trainer_default_path_equals_the_original_mode(self):
        rng = np.random.RandomState(4)
        opt_cfg = OptConfig(t_total=10)
        strategy = tf.distribute.get_strategy()
        for task_format, n_classes in HEADS:
            with self.subTest(task_format=task_format, n_classes=n_classes):
                cfg = config(task_format, n_classes, 0.1)
                ref = Trainer(cfg, opt_cfg, StepConfig(exact=True), strategy=strategy, lm_coef=0.5)
                fast = Trainer(cfg, opt_cfg, StepConfig(), strategy=strategy, lm_coef=0.5)
                for p, q in zip(ref.params, make_model(task_format, n_classes, 0.1).params_in_order()):
                    p.assign(q)
                for p, q in zip(fast.params, ref.params):
                    p.assign(q)
                X, M, Y = batch(rng, task_format, n_classes)
                assert_same_step(self, ref, fast, X, M, Y, tol=TOL)


    def test_xla_step_equals_the_original_mode(self):
        # without dropout: XLA's Philox masks differ from TensorFlow's (tests/test_perf_levers.py)
        rng = np.random.RandomState(7)
        strategy = tf.distribute.get_strategy()
        for task_format, n_classes in (("classification", 2), ("multiple_choice", 0)):
            with self.subTest(task_format=task_format):
                cfg = config(task_format, n_classes, n_layer=1)
                ref = Trainer(cfg, OptConfig(t_total=10), StepConfig(exact=True), strategy=strategy, lm_coef=0.5)
                xla = Trainer(cfg, OptConfig(t_total=10), StepConfig(xla=True), strategy=strategy, lm_coef=0.5)
                for p, q in zip(xla.params, ref.params):
                    p.assign(q)
                X, M, Y = batch(rng, task_format, n_classes)
                for a, b in zip(xla.compute_gradients(X, M, Y, 0)[0], ref.compute_gradients(X, M, Y, 0)[0]):
                    self.assertAllClose(a, b, atol=TOL, rtol=0)
                self.assertAllClose(xla.eval_batch(X, M, Y)[0], ref.eval_batch(X, M, Y)[0], atol=TOL, rtol=0)


def learnable_examples(rng, task_format, n_classes, n):
    """An invented task a tiny model can learn: the label is carried by a cue token, with filler around it."""
    def filler(k):
        return list(rng.randint(10, N_VOCAB, k))
    examples = []
    for _ in range(n):
        if task_format == "multiple_choice":
            label = int(rng.randint(N_CHOICES))
            choices = tuple([1] + filler(1) if k == label else [2] + filler(1) for k in range(N_CHOICES))
            examples.append(Example((filler(3),), label=label, choices=choices))
        elif n_classes == 0:  # a score: how many of three cue tokens the pair holds
            k = int(rng.randint(4))
            examples.append(Example(([1] * k + filler(3 - k), filler(3)), label=float(k)))
        else:
            label = int(rng.randint(n_classes))
            texts = ([label + 1] + filler(3),) + ((filler(3),) if task_format != "classification" else ())
            examples.append(Example(texts, label=label))
    return examples


def learn(task_format, n_classes, compute_dtype="float32", seed=5):
    """Train a 1-layer model from scratch on a format's invented task: its (loss, score) before and after."""
    examples = learnable_examples(np.random.RandomState(seed), task_format, n_classes, 64)
    X, M = transform_task(task_format, examples, n_ctx=N_CTX, n_vocab=N_VOCAB)
    cfg = config(task_format, n_classes, 0.0, n_layer=1, compute_dtype=compute_dtype)
    Y = np.asarray([e.label for e in examples], np.float32 if cfg.regression else np.int32)
    tf.random.set_seed(0)
    trainer = Trainer(cfg, OptConfig(lr=1e-2, lr_warmup=0.05, t_total=60, lr_schedule="warmup_constant"),
                      strategy=tf.distribute.get_strategy(), lm_coef=0.1)  # from scratch, LM losses (~4) dwarf the task's
    name = metrics.metric_names("x", cfg.regression)[0]

    def evaluate():
        logits, losses = trainer.eval_batch(X, M, Y)
        return float(np.mean(losses)), metrics.score(name, Y, metrics.predictions(logits, cfg.regression))
    before = evaluate()
    for step in range(60):
        at = slice(16 * (step % 4), 16 * (step % 4 + 1))
        trainer.train_step(X[at], M[at], Y[at], step)
    return before, evaluate()


class LearningTest(tf.test.TestCase):
    """A tiny model learns each format's invented task, in float32 and in bfloat16 (mixed precision):
    the loss falls and the metric rises. `benchmarks/bf16_accuracy.py` prints the two side by side."""

    def test_each_format_learns(self):
        for task_format, n_classes in HEADS:
            for dtype in ("float32", "bfloat16"):
                with self.subTest(task_format=task_format, n_classes=n_classes, dtype=dtype):
                    (loss0, score0), (loss1, score1) = learn(task_format, n_classes, dtype)
                    self.assertLess(loss1, 0.5 * loss0)
                    self.assertGreater(score1, score0)
                    self.assertGreater(score1, 90)


class TowersTest(tf.test.TestCase):
    """Two towers of 2 examples give the run of one tower of 4 (no dropout), for an entailment task."""

    def test_towers_equal_one_tower(self):
        root = tempfile.mkdtemp()
        data = write_rte(os.path.join(root, "data"))
        flags = ["--dataset", "rte", "--data_dir", data, "--n_transfer", "-1", "--n_layer", "1", "--n_embd", "16",
                 "--n_head", "2", "--n_iter", "2", "--lr", "1e-3", "--lr_warmup", "0.1", "--embd_pdrop", "0",
                 "--attn_pdrop", "0", "--resid_pdrop", "0", "--clf_pdrop", "0"]
        for name, towers in (("one", ["--n_gpu", "1", "--n_batch", "4"]), ("two", ["--n_gpu", "2", "--n_batch", "2"])):
            os.makedirs(os.path.join(root, name))
            run_train(os.path.join(root, name), *flags, *towers)
        one, two = final_checkpoint_arrays(os.path.join(root, "one"), "rte"), final_checkpoint_arrays(
            os.path.join(root, "two"), "rte")
        self.assertEqual(sorted(one), sorted(two))
        moved = 0
        for k in one:
            self.assertAllClose(one[k], two[k], atol=1e-5, rtol=0, msg=k)
            moved += "clf" in k and "optimizer" not in k.lower()
        self.assertGreater(moved, 0)


def write_rte(folder, n_train=16, n_dev=8, n_test=4):
    """A tiny RTE folder in GLUE's format (index, sentence1, sentence2, label)."""
    os.makedirs(folder, exist_ok=True)
    words = ["the cat sat", "a dog ran home", "rain fell", "she reads books", "he cooks"]
    labels = ("entailment", "not_entailment")
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        rows = ["index\tsentence1\tsentence2" + ("" if split == "test" else "\tlabel")]
        for i in range(n):
            a, b = words[i % 5], words[(i * 3 + 1) % 5]
            rows.append(f"{i}\t{a} today\t{b}" + ("" if split == "test" else f"\t{labels[i % 2]}"))
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
    return folder


if __name__ == "__main__":
    tf.test.main()
