"""The blog's GMM cells, shared by bench_gmm.py (speed) and bench_task_memory.py (memory).

Kept apart from bench_gmm.py so that the memory script can read them without importing
scikit-learn and Ray, which would raise the baseline it measures.
"""

TRUTH = {"weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0]}
# N: (sklearn chains, batched chains); every chain starts from the truth.
PLAN = {100: (10, 2048), 1000: (6, 512), 10000: (2, 96)}
# generations of every chain, on both sides: a chain's later generations fit collapsed data,
# which can take EM more or fewer iterations, so both sides must time the same ones
GENERATIONS = 60
