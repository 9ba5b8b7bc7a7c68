# syntax=docker/dockerfile:1
# model-api service image: `docker build -t model-api .` then
#   docker run --read-only --tmpfs /tmp -p 8080:8080 model-api
#
# Base: a precise patch + Debian release tag, shared by both stages (the runtime venv's python is a symlink
# into the base image, so builder and runtime must be the same image). Trixie is Debian's current stable
# release. A digest pin (python:…@sha256:…) is stricter still, but a digest cannot be looked up without
# registry access where this file was written; add it when you build (`docker buildx imagetools inspect`).
ARG PYTHON_IMAGE=python:3.12.15-slim-trixie

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# Honoured by `model-api train` for a reproducible artifact when the build sets it.
ARG SOURCE_DATE_EPOCH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service/ service/

# The image's venv: the service and its runtime closure only, every version pinned by the constraints file.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c service/constraints.txt '.[batch]'

# A throwaway venv with the training extras (scikit-learn, skl2onnx, onnx, scipy…): it writes the model
# into the image venv's package (the service's default MODEL_PATH) and is never copied to the runtime stage,
# so no training-only package reaches the image.
RUN python -m venv /opt/train \
    && /opt/train/bin/pip install --no-cache-dir -c service/constraints.txt '.[train]'
# The output path is asked of the installed package itself, so it is exactly where the service looks by default.
RUN out="$(/opt/venv/bin/python -c 'from model_api.settings import DEFAULT_MODEL_PATH; print(DEFAULT_MODEL_PATH)')" \
    && /opt/train/bin/model-api train --out "$out"

# The root filesystem is read-only at run time, so Python can never cache bytecode there: compile it now.
# unchecked-hash .pyc files stay valid whatever mtimes COPY gives the sources.
RUN /opt/venv/bin/python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /opt/venv


FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="model-api" \
      org.opencontainers.image.description="Iris classifier and pi workload over HTTP: seed API, KServe V1, Open Inference Protocol V2" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# The official image ships its standard library without .pyc files; compiled once here, a start on a
# read-only root filesystem does not recompile every imported module (process start to ready <= 1 s).
RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -x '/(idlelib|tkinter|turtledemo|ensurepip|site-packages)/' /usr/local/lib/python3.12

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080

# Kubernetes ignores HEALTHCHECK (the chart's probes call /readyz and /healthz); plain `docker run` and
# compose `depends_on: service_healthy` use it. Readiness, on the port the service itself resolved from
# its settings (MODEL_API_PORT / PORT), with Python alone: the slim image has no curl. -I keeps the
# working directory off sys.path.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-I", "-c", "import urllib.request; from model_api.settings import Settings; urllib.request.urlopen(f'http://127.0.0.1:{Settings.from_env().port}/readyz', timeout=2)"]

ENTRYPOINT ["model-api", "serve"]
