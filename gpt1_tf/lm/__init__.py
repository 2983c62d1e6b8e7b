"""GPT-1 as a language model: generation (KV-cache decoding, sampling) and scoring (losses, perplexity)."""
