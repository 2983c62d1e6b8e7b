"""Running GPT-1's training: the trainer core, the fine-tuning and pretraining runs, and what they share.

core (the trainer core and the run skeleton both runs stand on), trainer (the tower step of the
original's `mgpu_train`), finetune (the fine-tuning run, `RunConfig`), pretraining (the LM step and
the pretraining run, `PretrainConfig`), devices (where fine-tuning's towers go), cluster (TF_CONFIG,
pretraining's strategies), checkpoints, logs (the run log), evaluate, interrupts (Ctrl-C), memory
(estimate before building), analysis (the original's report of a submission), curves (a log's
learning curves as a PNG, matplotlib loaded only there).
"""
