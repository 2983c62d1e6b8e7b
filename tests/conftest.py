"""pytest configuration shared by the test files."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of test logs


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase defines `test_session`, a deprecated context manager that pytest collects and
    # reports as skipped; it is not a test of this project, so it is deselected rather than skipped.
    keep = [item for item in items if item.name != "test_session"]
    dropped = [item for item in items if item.name == "test_session"]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
