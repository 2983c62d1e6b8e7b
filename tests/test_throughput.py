"""Tokens/s and MFU (gpt1_tf.train.throughput): the FLOP count, the meter, the cached matmul peak, train.py's log.

pretrain.py's log is checked in test_pretrain.LogTest. Every run here takes its peak from the prepared
cache of conftest.py (PREPARED_PEAK); the cache tests below use folders of their own.
"""
import io
import json
import os
import tempfile
import unittest
from contextlib import redirect_stderr
from unittest import mock

import tensorflow as tf
from tqdm import tqdm

from helpers import PREPARED_PEAK, TINY, run_main_in, write_tiny_cloze
from gpt1_tf.network.config import ModelConfig
from gpt1_tf.train import logs, throughput


class FlopsTest(unittest.TestCase):
    def test_a_tiny_config_by_hand(self):
        cfg = ModelConfig(n_vocab=60, n_ctx=16, n_embd=16, n_head=2, n_layer=1)
        table = (60 + 3 + 16) * 16  # we: tokens | specials | positions
        layer = 16 * 48 + 16 * 16 + 16 * 64 + 64 * 16  # c_attn, attn c_proj, c_fc, mlp c_proj
        attention = 12 * 1 * 16 * 16  # 12 L n_embd T
        self.assertEqual(throughput.flops_per_token(cfg), 6 * (table + layer) + attention)
        self.assertEqual(throughput.flops_per_token(cfg, lm_head=False), 6 * layer + attention)
        self.assertEqual(throughput.flops_per_token(cfg, n_ctx=8), 6 * (table + layer) + 12 * 16 * 8)


class MeterTest(unittest.TestCase):
    def test_the_first_update_is_apart_and_the_rates_are_tokens_over_seconds(self):
        meter = throughput.Meter(flops_per_token=10, peak=1000.0, window=2)
        self.assertEqual(meter.postfix(), {})
        meter.update(100, 5.0)  # the compiling update
        self.assertEqual(meter.first_seconds, 5.0)
        self.assertEqual(meter.recent(), (None, None))
        for tokens, seconds in ((20, 1.0), (40, 1.0), (60, 1.0)):
            meter.update(tokens, seconds)
        self.assertEqual(meter.recent(), (50.0, 0.5))  # the last 2: 100 tokens in 2 s, 500 of 1000 FLOP/s
        self.assertEqual(meter.postfix(), {"tok/s": "50", "mfu": "50%"})
        self.assertEqual(meter.interval(), (40.0, 0.4))  # all 3 since the start: 120 tokens in 3 s
        self.assertEqual(meter.interval(), (None, None))  # none since
        meter.update(30, 2.0)
        self.assertEqual(meter.interval(), (15.0, 0.15))

    def test_no_peak_no_mfu(self):
        meter = throughput.Meter(flops_per_token=10)
        meter.update(1, 1.0)
        meter.update(8, 2.0)
        self.assertEqual(meter.recent(), (4.0, None))
        self.assertEqual(meter.postfix(), {"tok/s": "4"})
        self.assertEqual(throughput.rate_text(4.0, None), "4 tok/s")
        self.assertEqual(throughput.rate_text(1234.4, 0.413), "1234 tok/s, mfu 41%")
        self.assertEqual(throughput.rate_text(None, None), "")


class PeakCacheTest(tf.test.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        patch = mock.patch.dict(os.environ, {throughput.CACHE_ENV: self.folder})
        patch.start()
        self.addCleanup(patch.stop)
        self.calls = []

    def measure(self, dtype):
        self.calls.append(dtype)
        return 5e10

    def peak(self, dtype="float32"):
        err = io.StringIO()
        with redirect_stderr(err), mock.patch.object(throughput, "measure_matmul_peak", self.measure):
            peak = throughput.cpu_peak(dtype)
        return peak, err.getvalue().splitlines()

    def test_measured_once_then_read_per_dtype(self):
        self.assertEqual(self.peak(), (5e10, []))
        self.assertEqual(self.peak(), (5e10, []))
        self.assertEqual(self.calls, ["float32"])
        self.assertEqual(self.peak("bfloat16"), (5e10, []))
        self.assertEqual(self.calls, ["float32", "bfloat16"])
        with open(os.path.join(self.folder, throughput.CACHE_FILE)) as f:
            self.assertEqual(sorted(json.load(f)), sorted(throughput.peak_cache_key(d) for d in ("float32", "bfloat16")))

    def test_a_corrupt_cache_is_measured_again_with_one_warning(self):
        path = throughput.peak_cache_path()
        # not JSON, not an object (one warning each), an entry that is no number (measured again)
        for damage, n_warnings in (('{"half', 1), ("[1, 2]", 1), ('{"%s": "fast"}' % throughput.peak_cache_key("float32"), 0)):
            with self.subTest(damage=damage):
                with open(path, "w") as f:
                    f.write(damage)
                peak, warnings = self.peak()
                self.assertEqual(peak, 5e10)
                self.assertLen(warnings, n_warnings)
                self.assertEqual(self.peak(), (5e10, []))  # rewritten whole
        self.assertEqual(len(self.calls), 3)

    def test_an_unwritable_cache_warns_once_and_the_run_goes_on(self):
        blocker = os.path.join(self.folder, "a_file")
        open(blocker, "w").close()
        with mock.patch.dict(os.environ, {throughput.CACHE_ENV: os.path.join(blocker, "cache")}):
            peak, warnings = self.peak()
        self.assertEqual(peak, 5e10)
        self.assertEqual(len(warnings), 1)
        self.assertIn("cannot write", warnings[0])

    def test_the_measurement_itself(self):
        self.assertGreater(throughput.measure_matmul_peak("float32", n_max=256, repeats=2), 0)


class TrainLogTest(tf.test.TestCase):
    def test_evaluation_records_hold_the_throughput(self):
        root = tempfile.mkdtemp()
        data = write_tiny_cloze(os.path.join(root, "data"))
        lines = []  # what train.py writes through tqdm.write: the evaluation lines
        with mock.patch.object(tqdm, "write", side_effect=lambda line, *_, **__: lines.append(line)), \
                mock.patch.object(throughput, "measure_matmul_peak", side_effect=AssertionError("not cached")):
            code, errors = run_main_in(root, TINY + ["--data_dir", data, "--n_gpu", "1", "--n_batch", "4"])
        self.assertEqual(code, 0, errors)
        with open(os.path.join(root, "log", "rocstories.jsonl")) as f:
            records = [json.loads(line) for line in f][1:]
        self.assertEqual([r["n_updates"] for r in records], [4, 8])
        ratios = []
        for r in records:
            self.assertEqual(list(r)[-3:], [*logs.THROUGHPUT_KEYS, "time"])
            self.assertGreater(r["tokens_per_s"], 0)
            ratios.append(r["mfu"] / r["tokens_per_s"])  # flops_per_token / PREPARED_PEAK, the same each time
        self.assertAllClose(ratios[0], ratios[1])
        self.assertGreater(ratios[0] * PREPARED_PEAK, 6 * 12 * 16 * 16)  # more than the layer's weights alone
        self.assertLen(lines, 2)  # the original's evaluation lines, without the rates
        self.assertFalse(any("tok/s" in line for line in lines), lines)


if __name__ == "__main__":
    unittest.main()
