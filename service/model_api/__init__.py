"""model-api: any ONNX model (the iris classifier by default) and a pi workload over HTTP.

APIs: the seed API, KServe V1 and the Open Inference Protocol (V2); operations routes for probes and metrics.
"""

__version__ = "0.1.0"
