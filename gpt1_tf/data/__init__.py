"""The data half: readers (files -> examples), input transformations (examples -> arrays), batching.

Readers, one module a source: rocstories (Story Cloze), tasks (GLUE, SNLI, SciTail, RACE, generic
files), corpus (raw text for pretraining). text_utils is the original's BPE encoder; transforms
the input transformations of the paper's four task formats; inputs what a fine-tuning run reads
(its splits as model arrays). vocab/ holds the BPE vocabulary (MIT, OpenAI). No TensorFlow.
"""
