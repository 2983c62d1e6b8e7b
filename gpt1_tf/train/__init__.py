"""Running GPT-1's training: the tower trainer, the fine-tuning and pretraining loops and what they share.

trainer (the tower step of the original's `mgpu_train`), finetune (the fine-tuning run),
pretraining (the language-model trainer and its cluster), devices (where the towers go),
checkpoints, logs (the run log), evaluate, interrupts (Ctrl-C), memory (estimate before
building), analysis (the original's report of a submission).
"""
