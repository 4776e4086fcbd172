"""Training machinery shared by pretrain and finetune: distributed, loop, optimiser, logs, run dirs."""
