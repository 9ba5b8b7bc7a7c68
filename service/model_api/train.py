"""Train the iris classifier and export it as an ONNX artifact with its metadata.

Training needs scikit-learn, skl2onnx and onnx (the `train` extra). Serving never imports this module
(a test holds it to that): the service starts with onnxruntime and numpy only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from model_api import __version__
from model_api.package import INPUT_NAME, atomic_write

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CLASS_NAMES = ("Iris setosa", "Iris versicolor", "Iris virginica")
SEED = 20240501
MODEL_NAME = "iris"


def train(out: Path, *, name: str = MODEL_NAME, version: str = __version__) -> dict[str, str]:
    """Fit a logistic regression on the bundled iris data, write the ONNX model to `out`; return metadata."""
    import numpy as np
    import onnx
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_iris()
    features = data.data.astype(np.float32)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED))
    classifier.fit(features, data.target)
    accuracy = float(classifier.score(features, data.target))

    # zipmap off: outputs are plain tensors (label int64 [N], probabilities float32 [N,3]), which the
    # runtime hands straight to the V2 response without converting Python dicts.
    model = to_onnx(
        classifier,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURES)]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(classifier.steps[-1][1]): {"zipmap": False}},
    )
    metadata = {
        "name": name,
        "version": version,
        "features": json.dumps(list(FEATURES)),
        "class_names": json.dumps(list(CLASS_NAMES)),
        "training_accuracy": f"{accuracy:.6f}",
        "libraries": json.dumps(
            {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__}
        ),
        # SOURCE_DATE_EPOCH pins this for byte-for-byte reproducible builds; the weights are seeded anyway.
        "trained_at": _build_time(),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "model-api"
    model.doc_string = "Iris species classifier (standardised logistic regression)"
    onnx.checker.check_model(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, model.SerializeToString())  # a server starting concurrently never reads half a file
    return metadata


def _build_time() -> str:
    """SOURCE_DATE_EPOCH (reproducible builds convention) when set, else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=0).isoformat()
