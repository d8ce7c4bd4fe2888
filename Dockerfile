# MicroLearn: one image for every role, chosen by the command.
#
#   docker build -t microlearn:local .
#   docker run --rm microlearn:local serve                 # gRPC services (all five)
#   docker run --rm microlearn:local serve --service trainer
#   docker run --rm microlearn:local worker                # arq worker
#   docker run --rm microlearn:local gateway               # REST gateway (lands in a later issue)
#
# Configuration comes only from MICROLEARN_* environment variables (microlearn_grpc/config.py);
# docker-compose.yml shows the multi-host shape. No HEALTHCHECK here on purpose: the right probe
# depends on the role (gRPC health for `serve`, none for `worker`), so compose sets it per service.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# build: install the package and its dependencies into a self-contained virtualenv.
# A compiler is only here, for dependencies that ship no wheel for the target platform.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# --- torch hook (not needed yet; enable when the torch estimators land) ----------------------
# TORCH selects the build: "none" (default), "cpu", or a CUDA wheel index tag such as "cu128"
# for the image the `worker-gpu` service runs (docker compose build --build-arg TORCH=cu128).
# CPU builds must pin torch==2.13.0.
# ARG TORCH=none
# RUN if [ "$TORCH" = "cpu" ]; then \
#         pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; \
#     elif [ "$TORCH" != "none" ]; then \
#         pip install torch==2.13.0 --index-url "https://download.pytorch.org/whl/$TORCH"; \
#     fi
# ---------------------------------------------------------------------------------------------

WORKDIR /src
# Only what `pip install .` needs (see [tool.setuptools.packages.find] in pyproject.toml);
# README.md is the project's `readme`, so the build reads it.
COPY pyproject.toml README.md ./
COPY microlearn_grpc ./microlearn_grpc
COPY workers ./workers
COPY gateway ./gateway
COPY clients ./clients
RUN pip install . \
 && microlearn --help >/dev/null

# ---------------------------------------------------------------------------------------------
# runtime: slim base + the virtualenv, running as an unprivileged user.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="microlearn" \
      org.opencontainers.image.description="MicroLearn AutoML platform: gRPC services, workers and gateway" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MICROLEARN_DATA_DIR=/var/lib/microlearn

RUN groupadd --system --gid 10001 microlearn \
 && useradd --system --uid 10001 --gid microlearn --home-dir /home/microlearn --create-home \
            --shell /usr/sbin/nologin microlearn \
 && install -d -o microlearn -g microlearn -m 0750 /var/lib/microlearn

COPY --from=build /opt/venv /opt/venv

USER microlearn:microlearn
WORKDIR /home/microlearn

# 50051 gRPC, 8080 REST gateway, 9100 Prometheus metrics (planned).
EXPOSE 50051 8080 9100

ENTRYPOINT ["microlearn"]
CMD ["--help"]
