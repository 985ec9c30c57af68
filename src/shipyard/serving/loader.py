"""Load a bundle as a Servable, whatever its contract: the manifest's ``flavor`` says which.

``"pyfunc"``: the MLflow model itself (no entry script); ``"azureml"``: the bundle's score.py with
init()/run(). Bundles written before flavors existed have no ``flavor`` and are Azure ML bundles.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.manifest import BundleError, read_manifest
from shipyard.serving.servable import Servable

AZUREML = "azureml"
PYFUNC = "pyfunc"
FLAVORS = (AZUREML, PYFUNC)


def bundle_flavor(bundle_dir: str | Path) -> str:
    """The flavor of a bundle: its manifest's ``flavor``, ``azureml`` when the manifest has none."""
    path = Path(bundle_dir)
    flavor = read_manifest(path).get("flavor") or AZUREML
    if flavor not in FLAVORS:
        raise BundleError(
            f"{path / 'manifest.json'}: unknown flavor {flavor!r}; expected one of {', '.join(FLAVORS)}"
        )
    return str(flavor)


def load_servable(bundle_dir: str | Path) -> Servable:
    """Load the bundle in ``bundle_dir``: a PyfuncModel or an initialised ScoringScript."""
    if bundle_flavor(bundle_dir) == PYFUNC:
        # Imported here: it pulls in MLflow, which Azure ML bundles never need.
        from shipyard.serving.mlflow.pyfunc import PyfuncModel

        return PyfuncModel.load(bundle_dir)
    return ScoringScript.load(bundle_dir)
