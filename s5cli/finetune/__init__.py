"""MoE-MDF multi-dataset fine-tuning (`s5 finetune`): shared backbone, one expert and one head per dataset."""
