"""The data half: readers (files -> examples), input transformations (examples -> arrays), batching, splits.

Readers, one module a source: rocstories (Story Cloze), glue (GLUE and SciTail), snli, race,
generic (a user's CSV, TSV or JSONL files), corpus (raw text for pretraining); rows what they
share (`Example`, numbered lines and records), tasks the named tasks' shapes and files. text_utils
is the original's BPE encoder (vocab/: its vocabulary, MIT, OpenAI); transforms the paper's input
transformations; batching the original's `iter_data`; splits its seeded train/valid split; inputs
what a fine-tuning run reads (its splits as model arrays). No TensorFlow.
"""
