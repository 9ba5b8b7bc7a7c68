"""model-api: the iris classifier and the pi workload over HTTP (seed API, KServe V1, Open Inference Protocol V2)."""

__version__ = "0.1.0"
