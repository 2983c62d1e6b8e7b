"""`GPT1Backbone`: GPT-1's body as a keras-hub backbone, with `from_preset` and `save_to_preset`.

The body is the network's own `Transformer` (`gpt1_tf.network.model`: the one embedding table `we`
and the post-norm blocks), run by its `hidden`: the states are the ones train.py, generate.py and
the exports compute, bit for bit. The backbone adds keras-hub's names and inputs, and nothing
else: no head (task models wrap a backbone), no reader or writer of its own (`models.presets`).
"""
import dataclasses

import keras
import tensorflow as tf

from gpt1_tf.data.text_utils import DEFAULT_BPE_PATH, DEFAULT_ENCODER_PATH
from gpt1_tf.errors import ConfigError
from gpt1_tf.models import embeddings, presets
from gpt1_tf.network import arrays, lora
from gpt1_tf.network.config import ModelConfig, TuningConfig
from gpt1_tf.network.model import Transformer, with_positions
from gpt1_tf.weights import formats, pretrained
from gpt1_tf.weights.convert import from_body, model_config, to_params

FF_MULT = 4  # GPT-1's feed-forward width is 4 x n_embd (`layers.Block`'s MLP): keras-hub's intermediate_dim


def config_of(*, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout,
              max_sequence_length, activation):
    """The ModelConfig of keras-hub's arguments: one `dropout` for the table, attention and residuals."""
    if intermediate_dim is not None and intermediate_dim != FF_MULT * hidden_dim:
        raise ConfigError(f"intermediate_dim {intermediate_dim}: GPT-1's feed-forward layer is {FF_MULT} x "
                          f"hidden_dim = {FF_MULT * hidden_dim}")
    return ModelConfig(n_vocab=vocabulary_size, n_ctx=max_sequence_length, n_embd=hidden_dim, n_head=num_heads,
                       n_layer=num_layers, afn=activation, embd_pdrop=dropout, attn_pdrop=dropout,
                       resid_pdrop=dropout, clf_pdrop=dropout)


def arguments_of(cfg):
    """keras-hub's arguments of a ModelConfig (`config_of`'s inverse); its head fields are the task's, not here."""
    if len({cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop}) > 1 or cfg.compute_dtype != "float32":
        raise ConfigError("a GPT1Backbone has one dropout (embd_pdrop = attn_pdrop = resid_pdrop) and computes "
                          f"in float32; got {cfg.embd_pdrop}, {cfg.attn_pdrop}, {cfg.resid_pdrop}, {cfg.compute_dtype}")
    return {"vocabulary_size": cfg.n_vocab, "num_layers": cfg.n_layer, "num_heads": cfg.n_head,
            "hidden_dim": cfg.n_embd, "intermediate_dim": FF_MULT * cfg.n_embd, "dropout": cfg.resid_pdrop,
            "max_sequence_length": cfg.n_ctx, "activation": cfg.afn}


@keras.saving.register_keras_serializable("gpt1_tf")
class GPT1Backbone(keras.Model):
    """GPT-1's body: token ids [B, T] -> the last block's hidden states [B, T, hidden_dim].

    Arguments are keras-hub's GPT2Backbone's, plus GPT-1's `activation` (gelu, swish, relu):
    `vocabulary_size` counts the BPE tokens (40,478); the table also holds the 3 special tokens and
    `max_sequence_length` (<= 512) position rows (`gpt1_tf.network.tokens`). `backbone.cfg` is the
    network's ModelConfig, `backbone.transformer` the network's body, for task models to share.
    """

    def __init__(self, vocabulary_size=ModelConfig.n_vocab, num_layers=ModelConfig.n_layer,
                 num_heads=ModelConfig.n_head, hidden_dim=ModelConfig.n_embd, intermediate_dim=None,
                 dropout=ModelConfig.resid_pdrop, max_sequence_length=ModelConfig.n_ctx,
                 activation=ModelConfig.afn, **kwargs):
        cfg = config_of(vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
                        hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, dropout=dropout,
                        max_sequence_length=max_sequence_length, activation=activation)
        super().__init__(**kwargs)
        self.cfg = cfg
        self.transformer = Transformer(cfg)
        self.build()

    @classmethod
    def from_model_config(cls, cfg, **kwargs):
        return cls(**arguments_of(cfg), **kwargs)

    def build(self, input_shape=None):
        self.transformer.create_weights()  # as TransformerModel's: the variables read .../we, .../h0/...
        self.transformer.built = True
        self.built = True

    def call(self, inputs, training=False, seed=None):
        """inputs: {"token_ids": int [B, T], "padding_mask": [B, T]} (or the ids alone) -> [B, T, hidden_dim].

        Positions count from 0 at each row's first token, as the original's; attention is causal,
        so a token's state never depends on the padding after it (pad on the right; the mask is
        accepted for keras-hub's inputs and changes nothing). `seed` ([2] int) drives dropout when
        `training`, as `TransformerModel.call`; without it nothing is dropped.
        """
        ids = inputs["token_ids"] if isinstance(inputs, dict) else inputs
        X = with_positions(tf.cast(ids, tf.int32), self.cfg)  # [B, T, 2]: token id, table row of its position
        h, _ = self.transformer.hidden(X, seed=seed if training else None)  # [B, T, n_embd]
        return h

    def embed(self, texts, pooling="last", tokenizer=None, batch_size=32):
        """One float32 vector per text [N, hidden_dim] from the last hidden states (`models.embeddings.embed`).

        pooling "last": the state at each text's last token; "mean": the mean over its tokens.
        Batched texts give what each gives alone; a text longer than the positions is refused.
        """
        return embeddings.embed(self, texts, pooling=pooling, tokenizer=tokenizer, batch_size=batch_size)

    def enable_lora(self, rank, alpha=None, target_names=arrays.LORA_DEFAULT_TARGETS, train_layers=None,
                    freeze_embeddings=False, *, lora_alpha=None):
        """LoRA, as keras-hub's `backbone.enable_lora(rank)`: the body frozen, A and B beside each target weight.

        `network.lora.adapt` with a `TuningConfig` of these arguments: `alpha` (or Keras's name,
        `lora_alpha`) None is the rank (x W + alpha/r x A B, B zero: the outputs are the base's until it
        trains); `target_names` of
        c_attn, c_proj (attention's), c_fc, mlp/c_proj; `train_layers`: only the top K blocks get
        adapters; the special-token rows train apart unless `freeze_embeddings`. A task model's `fit`
        then trains the adapters, those rows and its head; `save` stores the merged weights, and the
        task model's `save_lora_weights` the adapters alone. A bad rank or name: one line, ConfigError.
        """
        if rank is None:
            raise ConfigError("enable_lora needs a rank (an integer >= 1)")
        if alpha is not None and lora_alpha is not None:
            raise ConfigError("enable_lora: give alpha or lora_alpha (the same), not both")
        lora_alpha = alpha if lora_alpha is None else lora_alpha
        targets = (target_names,) if isinstance(target_names, str) else target_names
        tuning = TuningConfig(lora_rank=rank, lora_alpha=lora_alpha, lora_targets=targets,
                              train_layers=train_layers, freeze_embeddings=freeze_embeddings)
        with self.distribute_strategy.scope():  # the adapters' variables where the body's are (mirrored, say)
            lora.adapt(self.transformer, tuning)

    def get_config(self):
        return {**super().get_config(), **arguments_of(self.cfg)}

    # --- weights in and out --------------------------------------------------------------------

    @classmethod
    def from_weights(cls, weights, source="the weights", n_ctx=None):
        """A backbone holding `Weights` already read: n_ctx positions (None: all they have, at most 512).

        The backbone's `formats.build_model`, for a caller that read the weights itself (generate.py).
        """
        backbone = cls.from_model_config(model_config(weights, n_ctx=formats.model_n_ctx(weights, n_ctx, source)))
        backbone.assign_weights(weights, source)
        return backbone

    def assign_weights(self, weights, source="the weights"):
        """Put `Weights` (any source's, `gpt1_tf.weights.convert`) into the body: table and blocks, each shape checked.

        A head in `weights` is left out (the backbone has none); special rows they lack are zeros.
        """
        body = dataclasses.replace(weights, clf=None, head=None)
        params = to_params(body, self.cfg)  # [we] + layers + a zero head of cfg's shape
        pretrained.check_params(params, self.cfg, source)
        variables = self.transformer.params_in_order()
        for variable, array in zip(variables, params[:len(variables)]):
            variable.assign(array)

    def to_weights(self):
        """The body's `Weights` (no head), for any writer of `gpt1_tf.weights.formats`."""
        return from_body(pretrained.get_params(self.transformer), self.cfg)

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """The backbone of any source the project reads: OpenAI's shards folder, a HuggingFace `openai-gpt`
        folder, a `best_params.jl` (its head file beside it), a `.keras` file, a `save_to_preset` folder.

        `kwargs`: the constructor's arguments. The sizes come from the weights (a size given that
        disagrees is refused); `num_heads` and `activation` are for sources that do not say them
        (shards, a params file: else 12, gelu); `max_sequence_length` keeps the first positions
        (default: all, at most 512); `dropout` (default: the preset's, else 0.1). A path that holds
        no source, or bad weights, is a one-line `Gpt1Error` naming the file.
        """
        weights, saved = presets.read(preset, n_embd=kwargs.get("hidden_dim"), n_head=kwargs.get("num_heads"),
                                      n_layer=kwargs.get("num_layers"), afn=kwargs.get("activation"))
        n_ctx = formats.model_n_ctx(weights, kwargs.pop("max_sequence_length", saved and saved.n_ctx), preset,
                                    said_as="max_sequence_length")
        args = {**arguments_of(saved or model_config(weights, n_ctx=n_ctx)), "max_sequence_length": n_ctx}
        backbone = cls(**{**args, **kwargs})
        backbone.assign_weights(weights, preset)
        return backbone

    def save_to_preset(self, preset_dir, tokenizer=None):
        """Write a preset folder that `from_preset` reads back and transformers' `from_pretrained` loads.

        The HuggingFace layout (`gpt1_tf.weights.hf`), `tokenizer`'s vocabulary files (None: the
        packaged ones) and the preset's description (`models.presets`). `preset_dir` must be new,
        empty or an earlier preset; written whole or not at all.
        """
        files = (tokenizer.vocabulary_path, tokenizer.merges_path) if tokenizer else (DEFAULT_ENCODER_PATH,
                                                                                      DEFAULT_BPE_PATH)
        presets.write(self.to_weights(), preset_dir, self.cfg, class_name=type(self).__name__,
                      encoder_path=files[0], bpe_path=files[1])
