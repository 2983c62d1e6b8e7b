"""The paper's unsupervised stage: GPT-1's language model trained on raw text, on tf.distribute.

Where it runs (`make_strategy`):
- `TF_CONFIG` set (the standard cluster spec): `MultiWorkerMirroredStrategy`, one process per
  worker; each worker reads its own slice of every global batch (`gpt1_tf.data.corpus.batches`);
- several GPUs on one machine: `MirroredStrategy` over them;
- otherwise the default strategy (one device).

The step (`LMTrainer.train_step`): each replica's mean next-token loss over its windows (the
tied head over the token rows, `heads.next_token_losses`) and its gradients; the replicas'
gradients averaged (an all-reduce across workers), then, once, clipped by global norm and applied
by the original Adam, as the fine-tuning Trainer does. Dropout masks are stateless, seeded by
(seed, update, replica). Without dropout the same global batch gives the same update at any number
of workers; with dropout the masks depend on the replica, so the split changes the run.
"""
import json
import os
import socket
import time

import numpy as np
import tensorflow as tf

from gpt1_tf.errors import Gpt1Error
from gpt1_tf.network.heads import next_token_losses
from gpt1_tf.network.model import TransformerModel, with_positions
from gpt1_tf.network.opt import OpenAIAdam


def make_strategy(collective_timeout=None):
    """MultiWorkerMirroredStrategy under TF_CONFIG, MirroredStrategy over several GPUs, else the default."""
    if os.environ.get("TF_CONFIG"):
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()


def cluster_of(tf_config):
    """(this task's address, every other task's) of a TF_CONFIG string; Gpt1Error when it is not a cluster spec."""
    try:
        config = json.loads(tf_config)
        addresses = [a for job in config["cluster"].values() for a in job]
        me = config["cluster"][config["task"]["type"]][config["task"]["index"]]
    except (ValueError, KeyError, TypeError, IndexError):
        raise Gpt1Error("TF_CONFIG is not a cluster spec: {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                        "\"task\": {\"type\": \"worker\", \"index\": i}}") from None
    for address in addresses:
        _address(address)  # each one checked before any socket is opened
    return me, [a for a in addresses if a != me]


def _address(text):
    """(host, port) of a TF_CONFIG address `host:port` ([v6]:port too); Gpt1Error naming it otherwise."""
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 < int(port) < 2 ** 16:
        raise Gpt1Error(f"TF_CONFIG: {text!r} is not a host:port address with a port in 1..65535")
    return host.strip("[]"), int(port)


def wait_for_cluster(tf_config, timeout):
    """Return once every task of TF_CONFIG is up, or raise Gpt1Error naming those that are not after `timeout` s.

    Before TensorFlow starts its servers (its own wait has no useful limit), each task listens on
    its TF_CONFIG address and connects to every other one; it is done when it has reached them all
    and each of them has reached it. Then the sockets close and TensorFlow takes the ports.
    """
    me, peers = cluster_of(tf_config)
    try:
        server = socket.create_server(("", _address(me)[1]), reuse_port=False)
    except OSError as err:
        raise Gpt1Error(f"TF_CONFIG: this worker cannot listen on {me} ({os.strerror(err.errno)}): another program may "
                        "hold the port; choose a free one") from None
    server.settimeout(0.1)
    heard, reached, deadline = set(), set(), time.time() + timeout
    try:
        while not (reached >= set(peers) and heard >= set(peers)) and time.time() < deadline:
            heard |= _accept_one(server)
            for peer in set(peers) - reached:
                try:
                    with socket.create_connection(_address(peer), timeout=0.2) as conn:
                        conn.sendall(me.encode())
                    reached.add(peer)
                except OSError:
                    pass
    finally:
        server.close()
    missing = sorted(set(peers) - (reached & heard))
    if missing:
        raise Gpt1Error(f"the cluster did not come up within {timeout:g} s: no answer from {', '.join(missing)} "
                        "(TF_CONFIG); start every worker, or check the addresses and --cluster_timeout")


def _accept_one(server):
    """The address a peer sent, if one connected within the server's timeout."""
    try:
        conn, _ = server.accept()
    except socket.timeout:
        return set()
    with conn:
        conn.settimeout(2)
        try:
            return {conn.recv(256).decode(errors="replace")}
        except OSError:
            return set()


def is_chief(strategy):
    """Whether this process writes the checkpoints, logs and shards: the chief, or worker 0 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def describe(strategy):
    """One line: how the replicas run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    n = strategy.num_replicas_in_sync
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        workers = len(resolver.cluster_spec().as_dict().get("worker", [])) + ("chief" in resolver.cluster_spec().jobs)
        return f"replicas: {n} on {workers} workers ({resolver.task_type} {resolver.task_id} here)"
    if n > 1:
        return f"replicas: {n} devices on this machine (MirroredStrategy)"
    return "replicas: 1 (this machine)"


class LMTrainer:
    """The body (`TransformerModel`'s transformer), the original Adam, and the compiled LM step."""

    def __init__(self, model_cfg, opt_cfg, strategy, seed=42):
        self.cfg, self.strategy, self.seed = model_cfg, strategy, seed
        with strategy.scope():
            self.model = TransformerModel(model_cfg)
            self.params = self.model.transformer.params_in_order()  # the classifier is not trained
            self.optimizer = OpenAIAdam(opt_cfg)
            self.optimizer.build(self.params)
        self._grads_fn = tf.function(self._grads)
        self._apply_fn = tf.function(lambda grads: self.optimizer.apply(grads, self.params))
        self._loss_fn = tf.function(self.loss)

    def loss(self, ids, seed=None):
        """Mean next-token cross-entropy of ids [B, T] (nats), dropout seeded by `seed` ([2] or None)."""
        h, we = self.model.transformer.hidden(with_positions(ids, self.cfg), seed=seed)
        return tf.reduce_mean(next_token_losses(h, we, ids, self.cfg.n_vocab))

    def _replica(self, ids, step_seed):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(step_seed, replica) if self.cfg.has_dropout else None
        with tf.GradientTape() as tape:
            loss = self.loss(ids, seed)
        return tape.gradient(loss, self.params), loss

    def _grads(self, dist_ids, step_seed):
        grads, losses = self.strategy.run(self._replica, args=(dist_ids, step_seed))
        mean = tf.distribute.ReduceOp.MEAN
        grads = [self.strategy.reduce(mean, g, axis=None) for g in grads]  # all-reduce across workers
        return grads, self.strategy.reduce(mean, losses, axis=None)

    def train_step(self, dist_ids):
        """One update on a distributed global batch; (loss, gradient norm, learning rate)."""
        step_seed = tf.constant([self.seed, self.n_updates], tf.int64)
        grads, loss = self._grads_fn(dist_ids, step_seed)
        loss, norm = float(loss), float(tf.linalg.global_norm(grads))
        if not (np.isfinite(loss) and np.isfinite(norm)):
            raise Gpt1Error(f"update {self.n_updates + 1}: the loss or gradient is not finite (loss {loss}, "
                            f"norm {norm}); lower --lr, or --resume from the last checkpoint")
        lr = float(self.optimizer.scheduled_rate())
        self._apply_fn(grads)
        return loss, norm, lr

    def evaluate(self, windows, batch=8):
        """Mean next-token loss over held-out windows [n, n_ctx] (no dropout), on this process's devices."""
        total = 0.0
        for start in range(0, len(windows), batch):
            ids = tf.constant(windows[start:start + batch])
            total += float(self._loss_fn(ids)) * len(ids)
        return total / len(windows)

    @property
    def n_updates(self):
        return int(self.optimizer.iterations.numpy())
