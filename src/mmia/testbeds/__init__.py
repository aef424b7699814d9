"""Testbeds with known membership, trained here in transformers architectures."""
