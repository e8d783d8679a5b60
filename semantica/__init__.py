"""Semantica: mine image pairs from web crawls and train a diffusion model on them that
makes diverse, faithful variations of any image."""
__version__ = "0.2.1"

