"""The MLflow contract: a bundle that serves an MLflow pyfunc model at MLflow's scoring server routes."""
