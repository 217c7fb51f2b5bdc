"""Helpers of the neural families (``vae``, ``wgan``): data, batched layers, the digit
classifier, image metrics and sample grids.

Only :mod:`.data`, :mod:`.spec` and :mod:`.images` are importable without torch; every other
module imports torch at the top and is imported by the families only inside their methods, so
``import sweep`` (and the statistical families) never import torch.
"""
