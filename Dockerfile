# jwks-service on an external Redis or Valkey (JWKS_REDIS_URL). Configuration comes only
# from the environment at run time: no key, KEK or password is baked into the image.
# deploy/README.md is the operator's guide (Compose and Kubernetes).
#
#   docker build -t jwks-service:0.1.0 .
#   docker run --rm -p 8000:8000 -e JWKS_REDIS_URL=... -e JWKS_KEK=... jwks-service:0.1.0
#
# The base is pinned to an exact Python release; pin its digest too (FROM ...@sha256:...)
# where builds must be reproducible.

# --- builder: the service and its dependencies, installed into a venv --------------------
FROM python:3.12.12-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src
# Every dependency has a binary wheel for this platform: the builder needs no compiler.
COPY pyproject.toml README.md ./
COPY service ./service
# Not editable: the venv holds its own copy of the package, compiled to .pyc by pip, so
# the final stage needs nothing from /src and a read-only root filesystem costs nothing.
RUN /opt/venv/bin/pip install .

# --- final: the venv and a non-root user, nothing else ------------------------------------
FROM python:3.12.12-slim-bookworm

# JWKS_EMBEDDED_STORE=refuse: without JWKS_REDIS_URL the start fails with one line, rather
# than running a store inside the container that is lost with it. To try the image on
# its own: -e JWKS_EMBEDDED_STORE=allow -v jwks-data:/data.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    JWKS_DATA_DIR=/data \
    JWKS_EMBEDDED_STORE=refuse

# A numeric uid and gid, so that Kubernetes' runAsNonRoot can check them.
RUN groupadd --system --gid 10001 jwks \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin jwks \
 && mkdir /data && chown 10001:10001 /data && chmod 0700 /data

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
EXPOSE 8000
# /readyz (not /healthz): 503 while this process cannot serve. Python, because the slim
# base has no curl; urlopen raises on a 503, and the exit status is then 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
ENTRYPOINT ["jwks-service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
