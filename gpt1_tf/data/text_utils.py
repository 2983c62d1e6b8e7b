"""GPT-1's byte-pair-encoding text encoder (the original `text_utils.py`), without TensorFlow.

Pipeline per text, as in openai/finetune-transformer-lm: `ftfy.fix_text` -> `text_standardize` ->
spaCy's English tokenizer (tokenizer only) -> lowercase each token -> BPE -> ids (unknown piece -> 0).
The ids are pinned by `tests/fixtures/tokenizer.json`, produced by the original code.
"""

import json
import os
import re

import ftfy
import spacy
from spacy.attrs import ORTH
from tqdm import tqdm

from gpt1_tf.network import tokens
from gpt1_tf.errors import DataError
from gpt1_tf.files import read_text

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab")
DEFAULT_ENCODER_PATH = os.path.join(DATA_DIR, "encoder_bpe_40000.json")
DEFAULT_BPE_PATH = os.path.join(DATA_DIR, "vocab_40000.bpe")

# The original's punctuation rule: runs of - ~ ! " ; ? + , ) ( / * [ ] } { | _ become separate,
# space-delimited tokens. Its pattern alternated one `c+` per character; a class plus a backreference
# (`([...])\1*`, a run of one repeated character) matches the same runs, about 4x faster.
# The original's pattern was a plain (not raw) string, so its `\\+` alternative reached `re` as `\+`
# (a literal '+', already covered): backslashes are NOT spaced out. The golden ids confirm this.
_PUNCT_RUN = re.compile(r"""([-~!";?+,)(/*\[\]}{|_])\1*""")
_NEWLINE = re.compile(r"\s*\n\s*")
_SPACES = re.compile(r"[^\S\n]+")

# Text made only of these characters passes through ftfy.fix_text unchanged: its fixes (mojibake,
# HTML entities, terminal escapes, line breaks, control characters, widths, quotes) all need '&',
# '\r', another control character or non-ASCII. So `encode` skips ftfy's per-text cost (most of
# the encoding time) for such text; tests/test_fuzz.py checks the claim on arbitrary ASCII.
_FTFY_INVARIANT = re.compile(r"[\t\n\x20-\x25\x27-\x7e]*")


def get_pairs(word):
    """Return the set of adjacent symbol pairs in `word` (a tuple of symbols)."""
    return set(zip(word[:-1], word[1:]))


def text_standardize(text):
    """Normalise dashes, ellipses and accents; space out punctuation runs; collapse whitespace."""
    text = text.replace("—", "-")
    text = text.replace("–", "-")
    text = text.replace("―", "-")
    text = text.replace("…", "...")
    text = text.replace("´", "'")
    text = _PUNCT_RUN.sub(r" \g<0> ", text)
    if "\n" in text:  # the substitution is a no-op otherwise, and scanning for it is not free
        text = _NEWLINE.sub(" \n ", text)
    text = _SPACES.sub(" ", text)
    return text.strip()


def fix_text(text):
    """`ftfy.fix_text`, skipped for plain ASCII text that ftfy would return unchanged.

    Lone UTF-16 surrogates (which spaCy cannot hash) need no extra care: ftfy's `fix_surrogates`
    joins valid pairs and turns lone ones into U+FFFD, as in the original.
    """
    if _FTFY_INVARIANT.fullmatch(text):
        return text
    return ftfy.fix_text(text)


def load_encoder(path):
    """Read the BPE token -> id JSON and check it maps str to the ids 0..N-1, each once."""
    text = read_text(path, "BPE vocabulary")
    try:
        encoder = json.loads(text)
    except ValueError as err:
        raise DataError(path, f"not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(encoder, dict) or not encoder:
        raise DataError(path, "expected a non-empty JSON object mapping BPE tokens to ids")
    for token, i in encoder.items():
        if not isinstance(i, int) or isinstance(i, bool):
            raise DataError(path, f"id of token {token!r} is {i!r}, not an integer")
    if sorted(encoder.values()) != list(range(len(encoder))):
        raise DataError(path, f"ids must be 0..{len(encoder) - 1}, each exactly once")
    return encoder


def load_bpe_merges(path):
    """Read the merges file: a version header, then one `a b` pair a line, ranked by line order."""
    text = read_text(path, "BPE merges")
    if not text.endswith("\n"):
        # The original drops the last line ([1:-1]): without the final newline that is a merge.
        raise DataError(path, "expected a version header line and a newline at the end of the file",
                        text.count("\n") + 1)
    # The original: read().split('\n')[1:-1] (skip the header; the file ends with a newline).
    lines = text.split("\n")[1:-1]
    merges = []
    for lineno, line in enumerate(lines, start=2):
        pair = tuple(line.split(" "))
        if len(pair) != 2 or not all(pair):
            raise DataError(path, f"expected two space-separated symbols, got {line!r}", lineno)
        merges.append(pair)
    return merges


def _as_texts(texts):
    """`texts` as a list of str; a lone str (or bytes) would be encoded one character a text, so refuse it."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"encode() takes a list of texts, got a {type(texts).__name__}: use encode([text])")
    texts = list(texts)  # a generator is read once, here
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            name = type(text).__name__
            raise TypeError(f"encode() takes a list of texts, but texts[{i}] has type {name}, not str")
    return texts


class TextEncoder:
    """Mostly a wrapper for a public Python BPE tokenizer, as in the original."""

    def __init__(self, encoder_path=None, bpe_path=None):
        self.encoder_path = encoder_path = encoder_path or DEFAULT_ENCODER_PATH
        self.bpe_path = bpe_path = bpe_path or DEFAULT_BPE_PATH
        self.encoder = load_encoder(encoder_path)
        self.decoder = {v: k for k, v in self.encoder.items()}
        merges = load_bpe_merges(bpe_path)
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {}
        # spaCy 3's blank English pipeline is the original's `en` with parser/tagger/ner disabled.
        self.nlp = spacy.blank("en")

    def bpe(self, token):
        """Split `token` into BPE pieces (space-separated, the last ending in `</w>`), cached."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        inf = float("inf")
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, inf))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            # Merge every occurrence of the pair, left to right, without overlaps.
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        if word == "\n  </w>":
            word = "\n</w>"
        self.cache[token] = word
        return word

    def encode(self, texts, verbose=False, batch_size=256):
        """Encode a list of texts to lists of BPE ids (unknown pieces -> 0); `verbose`: a progress bar (programs).

        All texts are fixed and standardized first, then tokenized in batches by spaCy's tokenizer
        alone; a token's ids are looked up once per call (the BPE cache is shared across calls).
        """
        texts = _as_texts(texts)
        prepared = [text_standardize(fix_text(text)) for text in texts]
        docs = self.nlp.tokenizer.pipe(prepared, batch_size=batch_size)
        if verbose:
            docs = tqdm(docs, total=len(prepared), leave=False, ncols=80)
        strings = self.nlp.vocab.strings
        token_ids = {}  # token's ORTH hash -> ids of its lowercased BPE pieces, for this call
        texts_tokens = []
        for doc in docs:
            text_tokens = []
            # Hashes straight from the Doc's array: no Token object per token.
            for orth in doc.to_array(ORTH).tolist():
                ids = token_ids.get(orth)
                if ids is None:
                    pieces = self.bpe(strings[orth].lower()).split(" ")
                    ids = token_ids[orth] = [self.encoder.get(piece, 0) for piece in pieces]
                text_tokens.extend(ids)
            texts_tokens.append(text_tokens)
        return texts_tokens

    def decode(self, ids):
        """Render ids as readable text: pieces joined, `</w>` -> space, special ids by name."""
        n_vocab = len(self.encoder)
        names = {i: name for name, i in tokens.special_ids(n_vocab).items()}
        parts = []
        for i in ids:
            i = int(i)
            if 0 <= i < n_vocab:
                parts.append(self.decoder[i].replace("</w>", " "))
            elif i in names:
                parts.append(names[i] + " ")
            else:
                raise ValueError(
                    f"id {i} is out of range: BPE ids are 0..{n_vocab - 1} and special ids "
                    f"{min(names)}..{max(names)}"
                )
        return "".join(parts).rstrip(" ")
