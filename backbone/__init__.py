"""Diffusion backbone(s) behind one interface (``tools.backbone``), and the labelled classical fallback.

- ``classical``: the no-weights default (``harmonize`` seam blending, ``fill`` hole filling);
- ``diffusion``: diffusers pipelines of the kinds in ``pipelines``, LoRA experts from ``adapters``;
- ``pixels``: working sizes and the exact keep-mask composite both share;
- ``tools``: the ``refine`` tool; ``tiny``: tiny random pipelines for tests and dry runs.
"""
