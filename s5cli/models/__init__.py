"""The S5 network: ViT backbone, simple FPN, UperNet, MoE-MDF experts, heads and checkpoints."""
