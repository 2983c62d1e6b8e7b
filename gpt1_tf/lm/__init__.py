"""GPT-1 as a language model: generation (KV-cache decoding, sampling, beam search), samplers (keras-hub's names) and scoring (losses, perplexity)."""
