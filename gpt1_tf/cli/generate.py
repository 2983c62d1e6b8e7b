"""`python generate.py`: sample text from GPT-1, or score text files (token count, loss, perplexity).

    python generate.py --model_dir model/ --prompt "karen was assigned a roommate" --length 40 --top_p 0.9
    echo "a prompt" | python generate.py --model_dir hf-folder/ --greedy
    python generate.py --model_dir model/ --prompt "tom was hungry ." --prompt "it rained ." --num_beams 4 --stop .
    python generate.py --model_dir model/ --score a.txt b.txt

The weights: OpenAI's shards or a HuggingFace folder (`--model_dir`), or a fine-tuned
`best_params.jl` (`--params`, with the run's --n_head and --afn when not the defaults). A client of
`gpt1_tf.GPT1CausalLM` (its `generate` and `score`).
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
    p.add_argument("--prompt", action="append", default=None,
                   help="a text to continue; repeat for several (default: one, read from stdin)")
    p.add_argument("--length", type=int, default=40, help="new tokens per sample")
    p.add_argument("--n_samples", type=int, default=1)
    p.add_argument("--greedy", action="store_true", help="the most likely token each step (no sampling)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_k", type=int, default=0, help="sample from the k most likely tokens (0: all)")
    p.add_argument("--top_p", type=float, default=1.0, help="sample from the smallest set of this mass (nucleus)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_beams", type=int, default=1,
                   help="beam search with this many beams (no sampling; 1: off)")
    p.add_argument("--stop", action="append", default=None, metavar="TEXT",
                   help="cut each continuation at the first occurrence of this text (repeat for several)")
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
    for name in ("length", "n_samples", "num_beams"):
        if getattr(args, name) < 1:
            raise Gpt1Error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.stride is not None and args.stride < 1:
        raise Gpt1Error(f"--stride must be at least 1, got {args.stride}")
    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)
    if args.num_beams > 1 and (args.greedy or args.top_k or args.top_p < 1 or args.n_samples > 1):
        raise Gpt1Error("--num_beams is beam search, no sampling: without --greedy, --top_k, --top_p or --n_samples")
    return sampling


def sampler_of(args, sampling):
    """The `gpt1_tf.lm.samplers` object of the decoding flags (their Sampling checked by `validate`)."""
    from gpt1_tf.lm import samplers
    if args.num_beams > 1:
        return samplers.BeamSampler(num_beams=args.num_beams, temperature=args.temperature)
    if sampling.greedy:
        return samplers.GreedySampler()
    return samplers.TopPSampler(p=args.top_p, k=args.top_k or None, temperature=args.temperature, seed=args.seed)


def load_lm(args):
    """The GPT1CausalLM of --model_dir or --params (all the positions the weights have, at most 512)."""
    from gpt1_tf.models.backbone import GPT1Backbone
    from gpt1_tf.models.causal_lm import GPT1CausalLM
    from gpt1_tf.weights import formats
    from gpt1_tf.weights.convert import with_flags
    if args.params is None:  # shards or HF; a missing folder gets the weights help, not a format list
        said = formats.said_by(args.model_dir, formats.kind_of(args.model_dir))
        weights = with_flags(formats.read_pretrained(args.model_dir, WEIGHTS_ADVICE), said, n_head=args.n_head,
                             afn=args.afn)
    else:
        weights = formats.read(args.params, n_head=args.n_head, afn=args.afn)
    return GPT1CausalLM(GPT1Backbone.from_weights(weights, args.params or args.model_dir))  # the packaged vocabulary


def run_generate(args, lm, sampler):
    """Each prompt (--prompt, else stdin) continued --n_samples times in one batch, by --length new tokens at most."""
    prompts = args.prompt if args.prompt is not None else [sys.stdin.read()]
    lm.compile(sampler=sampler, jit_compile=args.xla)
    n_ctx = lm.backbone.cfg.n_ctx
    for j, prompt in enumerate(prompts):
        n_prompt = len(lm.tokenizer.tokenize(prompt))
        if n_prompt >= n_ctx:
            raise Gpt1Error(f"prompt {j + 1} has {n_prompt} tokens: GPT-1's context holds {n_ctx}, "
                            "with room for at least one new token")
        length = min(args.length, n_ctx - n_prompt)
        texts = lm.generate([prompt] * args.n_samples, max_length=n_prompt + length, stop=args.stop)
        for i, text in enumerate(texts):
            print(f"=== sample {i + 1} ===" if len(prompts) == 1 else f"=== prompt {j + 1}, sample {i + 1} ===")
            print(text)
        if length < args.length:
            print(f"stopped after {length} new tokens: the prompt and them fill GPT-1's {n_ctx} positions",
                  file=sys.stderr)


def run_score(args, lm):
    from gpt1_tf.files import read_text
    texts = [read_text(path, "text to score") for path in args.score]  # every file checked before any work
    for path, text in zip(args.score, texts):
        try:  # pretraining's rule for text (lines joined by the newline token): its perplexity of the same tokens
            scored = lm.score(text, stride=args.stride)
        except DataError as err:
            raise DataError(path, err.problem) from None
        loss = -float(scored["log_probs"].mean())
        print(f"{path}\ttokens {len(scored['log_probs']) + 1}\tloss {loss:.4f}\tperplexity {math.exp(loss):.2f}")


@exits
def main(argv=None):
    args = build_parser().parse_args(argv)
    from gpt1_tf.runtime import quiet_tensorflow
    sampling = validate(args)
    with quiet_tensorflow():
        import tensorflow as tf
        tf.config.list_logical_devices()
    lm = load_lm(args)
    if args.score:
        run_score(args, lm)
    else:
        run_generate(args, lm, sampler_of(args, sampling))


if __name__ == "__main__":
    sys.exit(main())
