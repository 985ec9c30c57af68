"""Train a Ridge regression on the diabetes data (runs standalone or under `shipyard run`)."""

import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

import shipyard


def main() -> None:
    with shipyard.start_run(name="train"):
        params = shipyard.parameters(alpha=0.5, test_size=0.2, seed=42)
        df = pd.read_csv(shipyard.input_path("data", "data/diabetes.csv"))
        X, y = df.drop(columns="target"), df["target"]
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=params["test_size"], random_state=params["seed"]
        )
        model = Ridge(alpha=params["alpha"]).fit(X_train.to_numpy(), y_train)
        pred = model.predict(X_test.to_numpy())
        shipyard.log_metric("mse", float(mean_squared_error(y_test, pred)))
        shipyard.log_metric("r2", float(r2_score(y_test, pred)))
        # How many rows the metrics were computed on: the gate refuses fewer than gate.min_eval_rows.
        shipyard.log_metric("eval_rows", len(y_test))
        # Its signature comes from the example: the served model's input is 10 numbers a row.
        shipyard.log_model(model, "model", input_example=X_train.to_numpy()[:5])


if __name__ == "__main__":
    main()
