"""Diffusion model loading (hub id or local folder) and tiny random components for tests."""
