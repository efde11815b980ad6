"""Diffusion backbone(s) behind one interface."""
