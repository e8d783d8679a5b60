"""Generating variations and scoring them (few-shot FID / precision / recall)."""
