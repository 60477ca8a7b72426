"""`python -m foresight.bench`: the prediction-stage bench (foresight/bench/prediction.py)."""

from foresight.bench.prediction import main

main()
