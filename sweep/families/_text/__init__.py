"""Shared parts of the language-model families: corpus and tokenisation (``corpus``), the shared
spec fields (``spec``), the family base with text metrics and events (``family``), batched n-gram
counts (``ngram_counts``), text statistics (``stats``) and, imported only by the transformer
family, the batched torch model and decoding (``torch_model``, ``decoding``) and a pretrained
Hugging Face model from a local folder (``hf``)."""
