"""pytest configuration shared by the test files."""
import json
import os
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of test logs
# the runs' matmul peaks (for the MFU) come from a prepared cache here, in every process a test starts:
# no test measures this machine unless it asks, and none writes to the user's cache
os.environ["GPT1_TF_CACHE"] = tempfile.mkdtemp(prefix="gpt1_tf_cache_")


@pytest.fixture(autouse=True, scope="session")
def prepared_matmul_peaks():
    """The cache file of `gpt1_tf.train.throughput` holding PREPARED_PEAK for this machine in every compute dtype."""
    from helpers import PREPARED_PEAK
    from gpt1_tf.network.config import COMPUTE_DTYPES
    from gpt1_tf.train import throughput
    path = throughput.peak_cache_path()
    with open(path, "w") as f:
        json.dump({throughput.peak_cache_key(dtype): PREPARED_PEAK for dtype in COMPUTE_DTYPES}, f)
    return path


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase defines `test_session`, a deprecated context manager that pytest collects and
    # reports as skipped; it is not a test of this project, so it is deselected rather than skipped.
    keep = [item for item in items if item.name != "test_session"]
    dropped = [item for item in items if item.name == "test_session"]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def reset_op_determinism():
    """Tests that run train.py in-process turn on TensorFlow's op determinism, a process-wide switch
    that selects other kernels (e.g. for sparse softmax cross-entropy); switch it back off after each
    test so that later tests, such as the exact-arithmetic parity ones, see TensorFlow's defaults."""
    yield
    import sys
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config  # the public API has no switch-off
        if config.is_op_determinism_enabled():
            config.disable_op_determinism()
