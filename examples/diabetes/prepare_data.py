"""Write data/diabetes.csv (scikit-learn's diabetes data) and data/reference_stats.json.

Run once from anywhere: `python examples/diabetes/prepare_data.py`. Both outputs are committed,
so the example works without re-running this script.
"""

from pathlib import Path

from sklearn.datasets import load_diabetes

from shipyard.data import write_reference_stats

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Write the dataset and its reference statistics next to this script."""
    df = load_diabetes(as_frame=True).frame  # 10 scaled float features + `target`
    data_dir = HERE / "data"
    data_dir.mkdir(exist_ok=True)
    df.to_csv(data_dir / "diabetes.csv", index=False)
    write_reference_stats(df, data_dir / "reference_stats.json", source="sklearn.datasets.load_diabetes")
    print(f"wrote {len(df)} rows to {data_dir / 'diabetes.csv'} and reference_stats.json")


if __name__ == "__main__":
    main()
