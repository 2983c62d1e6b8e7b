"""Samplers with keras-hub's names: how `GPT1CausalLM.generate` picks each next token.

    get("greedy"), get("random"), get("top_k"), get("top_p"), get("beam")   # by name, defaults as keras-hub's
    TopKSampler(k=10, temperature=0.7, seed=1)                              # or an object with its parameters

Each is a frozen config (hashable: the compiled decoding function is keyed on it) with `temperature`.
The token-by-token ones are a `Sampling` of `gpt1_tf.network.config` (`sampling()`), decoded by
`generation.Generator`'s loop with `generation.filter_logits`; `BeamSampler` by its beam loop.
`seed` (None: a fresh one per call) makes a sampling run reproducible; greedy and beam need none.
No TensorFlow here.
"""
import dataclasses

from gpt1_tf.errors import ConfigError
from gpt1_tf.network.config import Sampling


@dataclasses.dataclass(frozen=True)
class GreedySampler:
    """The most likely token each step (temperature changes nothing)."""
    temperature: float = 1.0

    def sampling(self):
        return Sampling(temperature=self.temperature, greedy=True)


@dataclasses.dataclass(frozen=True)
class RandomSampler:
    """A draw from the whole softmax of logits / temperature."""
    temperature: float = 1.0
    seed: int = None

    def sampling(self):
        return Sampling(temperature=self.temperature)


@dataclasses.dataclass(frozen=True)
class TopKSampler:
    """A draw from the k most likely tokens."""
    k: int = 5
    temperature: float = 1.0
    seed: int = None

    def __post_init__(self):
        if self.k < 1:
            raise ConfigError(f"TopKSampler: k must be at least 1, got {self.k}")

    def sampling(self):
        return Sampling(temperature=self.temperature, top_k=self.k)


@dataclasses.dataclass(frozen=True)
class TopPSampler:
    """A draw from the smallest set of tokens whose mass reaches p (nucleus), after an optional top-k."""
    p: float = 0.1
    k: int = None
    temperature: float = 1.0
    seed: int = None

    def sampling(self):
        return Sampling(temperature=self.temperature, top_k=self.k or 0, top_p=self.p)


@dataclasses.dataclass(frozen=True)
class BeamSampler:
    """Beam search: the num_beams sequences of highest total log-probability (no sampling, no length penalty).

    Each step keeps the num_beams best (beam, token) extensions of the log-softmax of logits /
    temperature; the best beam is returned. A beam that has made a stop token is kept as it is.
    """
    num_beams: int = 5
    temperature: float = 1.0

    def __post_init__(self):
        if self.num_beams < 1:
            raise ConfigError(f"BeamSampler: num_beams must be at least 1, got {self.num_beams}")
        Sampling(temperature=self.temperature)  # the same checks as the others'


SAMPLERS = {"greedy": GreedySampler, "random": RandomSampler, "top_k": TopKSampler, "top_p": TopPSampler,
            "beam": BeamSampler}


def get(sampler):
    """A sampler object of a name of SAMPLERS (with its defaults) or a sampler object itself."""
    if isinstance(sampler, str):
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}, or a sampler object")
        return SAMPLERS[sampler]()
    if not isinstance(sampler, tuple(SAMPLERS.values())):
        raise ConfigError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}, or a sampler object")
    if not isinstance(sampler, BeamSampler):
        sampler.sampling()  # its checks (temperature, p, k), before anything is compiled
    return sampler
