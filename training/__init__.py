"""Training the conditional diffusion model (Ray Train + diffusers)."""
