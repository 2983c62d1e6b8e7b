"""GPT-1 as a language model: generation with a key/value cache, and scoring.
"""
