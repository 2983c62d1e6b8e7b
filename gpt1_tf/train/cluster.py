"""Where a pretraining run's replicas go: one process per worker of TF_CONFIG, or this machine's devices.

`cluster_strategy`: `MultiWorkerMirroredStrategy` under `TF_CONFIG` (the standard cluster spec;
each worker reads its own slice of every global batch, `gpt1_tf.data.corpus.batches`),
`MirroredStrategy` over several GPUs on one machine, otherwise the default strategy (one device).
Before TensorFlow's servers start, `wait_for_cluster` checks every TF_CONFIG address and waits, with
a limit, for every worker (TensorFlow's own wait has none); `cluster_failure` says in one line which
worker stopped. Fine-tuning's towers are `gpt1_tf.train.devices`.
"""
import json
import os
import socket
import time

import tensorflow as tf

from gpt1_tf.errors import Gpt1Error


def cluster_strategy(collective_timeout=None):
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


def task_of(tf_config):
    """(this task's position, the number of tasks) in TF_CONFIG's cluster: every job's tasks, in the spec's order."""
    me, others = cluster_of(tf_config)
    addresses = [a for job in json.loads(tf_config)["cluster"].values() for a in job]
    return addresses.index(me), 1 + len(others)


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


def cluster_failure(err):
    """One line for a TensorFlow error of a distributed run: which worker stopped, where TensorFlow says it."""
    import re
    text = str(getattr(err, "message", err))
    tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", text.split("unhealthy", 1)[-1])))
    if "unhealthy" in text or "heartbeat" in text:
        return f"a worker of the cluster stopped ({', '.join(tasks) or 'unknown'} stopped sending heartbeats)"
    first = re.sub(r"\{\{[^}]*\}\}", "", text).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''} (a worker of the cluster stopped or is unreachable?)"
