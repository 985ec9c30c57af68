"""Write data/digits.csv (scikit-learn's bundled 8x8 digits: no download) and data/reference_stats.json.

Run once from anywhere: `python examples/digits/prepare_data.py`. Both outputs are committed, so
the example works without re-running this script.
"""

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_digits

from shipyard.data import write_reference_stats

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Write the 1,797 images (columns p0..p63, intensities 0-16) with their `label`."""
    digits = load_digits()
    df = pd.DataFrame(digits.data.astype("int64"), columns=[f"p{i}" for i in range(64)])
    df["label"] = digits.target.astype("int64")
    data_dir = HERE / "data"
    data_dir.mkdir(exist_ok=True)
    df.to_csv(data_dir / "digits.csv", index=False)
    write_reference_stats(df, data_dir / "reference_stats.json", source="sklearn.datasets.load_digits")
    print(f"wrote {len(df)} images to {data_dir / 'digits.csv'} and reference_stats.json")


if __name__ == "__main__":
    main()
