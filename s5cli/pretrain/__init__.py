"""S4P: FixMatch semi-supervised segmentation pre-training (`s5 pretrain`)."""
