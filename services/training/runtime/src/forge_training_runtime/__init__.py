"""Forge training runtime: builds a local base model, fine-tunes it with LoRA and evaluates it.

Run it as a process (`python -m forge_training_runtime`, see `cli`), or call `base_model.build_base_model`,
`lora_sft.train_lora_sft` and `evaluation.evaluate`. This module imports nothing heavy, so the CLI can
refuse a bad spec without loading torch.
"""
