"""Stage 1 of UME-R1 training: cold-start SFT (see `model.train.sft`)."""
