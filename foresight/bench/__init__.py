"""Benchmarks: prediction stages (prediction.py, also `python -m foresight.bench`), training steps
through the trainer (training.py) and the data path (data.py). Each writes JSON; BENCHMARKS.md has
the measured numbers with their commands."""
