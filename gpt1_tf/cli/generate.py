"""`python generate.py`: sample text from GPT-1, or score text files (token count, loss, perplexity).

    python generate.py --model_dir model/ --prompt "karen was assigned a roommate" --length 40 --top_p 0.9
    echo "a prompt" | python generate.py --model_dir hf-folder/ --greedy
    python generate.py --model_dir model/ --score a.txt b.txt

The weights: OpenAI's shards or a HuggingFace folder (`--model_dir`), or a fine-tuned
`best_params.jl` (`--params`, with the run's --n_head and --afn when not the defaults). The library
is `gpt1_tf.lm.generation`.
"""
import argparse
import math
import sys

from gpt1_tf.cli.common import check_finite_floats, exits
from gpt1_tf.errors import DataError, Gpt1Error
from gpt1_tf.network.config import ACTIVATIONS, Sampling

WEIGHTS_ADVICE = "or give --model_dir the folder that holds them, or --params a fine-tuned best_params.jl"


def build_parser():
    p = argparse.ArgumentParser(prog="generate.py", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--model_dir", default="model/", help="OpenAI's shards or a HuggingFace openai-gpt folder")
    p.add_argument("--params", default=None, help="a fine-tuned best_params.jl instead of --model_dir")
    p.add_argument("--n_head", type=int, default=None, help="for shards and --params (default 12)")
    p.add_argument("--afn", choices=ACTIVATIONS, default=None, help="for shards and --params (default gelu)")
    p.add_argument("--prompt", default=None, help="the text to continue (default: read from stdin)")
    p.add_argument("--length", type=int, default=40, help="new tokens per sample")
    p.add_argument("--n_samples", type=int, default=1)
    p.add_argument("--greedy", action="store_true", help="the most likely token each step (no sampling)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_k", type=int, default=0, help="sample from the k most likely tokens (0: all)")
    p.add_argument("--top_p", type=float, default=1.0, help="sample from the smallest set of this mass (nucleus)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--xla", action="store_true", help="compile the decoding loop with XLA")
    p.add_argument("--score", nargs="+", metavar="FILE", default=None,
                   help="score these UTF-8 text files instead: tokens, mean loss (nats) and perplexity")
    p.add_argument("--stride", type=int, default=None,
                   help="--score: texts longer than the context are scored in windows of n_ctx tokens that "
                        "advance by this many (default n_ctx // 2; at most n_ctx - 1, so that each window's first "
                        "scored token has one before it); each token is scored once")
    return p


def validate(args):
    check_finite_floats(build_parser(), args)
    for name in ("length", "n_samples"):
        if getattr(args, name) < 1:
            raise Gpt1Error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.stride is not None and args.stride < 1:
        raise Gpt1Error(f"--stride must be at least 1, got {args.stride}")
    return Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)


def load_model(args):
    """The TransformerModel of --model_dir or --params (all the positions the weights have, at most 512)."""
    from gpt1_tf.weights import formats
    from gpt1_tf.weights.convert import with_flags
    if args.params is None:  # shards or HF; a missing folder gets the weights help, not a format list
        said = formats.said_by(args.model_dir, formats.kind_of(args.model_dir))
        weights = with_flags(formats.read_pretrained(args.model_dir, WEIGHTS_ADVICE), said, n_head=args.n_head,
                             afn=args.afn)
    else:
        weights = formats.read(args.params, n_head=args.n_head, afn=args.afn)
    return formats.build_model(weights, source=args.params or args.model_dir)


def run_generate(args, model, sampling, text_encoder):
    from gpt1_tf.lm.generation import Generator
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    ids = text_encoder.encode([prompt], verbose=False)[0]
    generator = Generator(model, jit_compile=args.xla)
    if generator.room(ids) < 1:
        raise Gpt1Error(f"the prompt has {len(ids)} tokens: GPT-1's context holds {model.cfg.n_ctx}, "
                        "with room for at least one new token")
    length = min(args.length, generator.room(ids))
    out = generator.generate(ids, length, n_samples=args.n_samples, sampling=sampling, seed=args.seed)
    for i, new in enumerate(out):
        print(f"=== sample {i + 1} ===")
        print(text_encoder.decode(list(ids) + list(new)))
    if length < args.length:
        print(f"stopped after {length} new tokens: the prompt and them fill GPT-1's {model.cfg.n_ctx} positions",
              file=sys.stderr)


def run_score(args, model, text_encoder):
    from gpt1_tf.data.corpus import text_ids
    from gpt1_tf.files import read_text
    from gpt1_tf.lm.scoring import token_losses
    texts = [read_text(path, "text to score") for path in args.score]  # every file checked before any work
    for path, text in zip(args.score, texts):
        ids = text_ids(text, text_encoder)  # pretraining's rule for text: its perplexity of the same tokens
        if len(ids) < 2:
            raise DataError(path, f"{len(ids)} tokens: scoring needs at least 2")
        loss = float(token_losses(model, ids, args.stride).mean())
        print(f"{path}\ttokens {len(ids)}\tloss {loss:.4f}\tperplexity {math.exp(loss):.2f}")


@exits
def main(argv=None):
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import quiet_tensorflow
    sampling = validate(args)
    with quiet_tensorflow():
        import tensorflow as tf
        tf.config.list_logical_devices()
    from gpt1_tf.data.text_utils import TextEncoder
    text_encoder = TextEncoder()
    model = load_model(args)
    if args.score:
        run_score(args, model, text_encoder)
    else:
        run_generate(args, model, sampling, text_encoder)


if __name__ == "__main__":
    sys.exit(main())
