# A minimal image: the service on an external Redis (JWKS_REDIS_URL), or on the
# embedded Valkey server with a volume for /data. deploy/ gets the full set-up later.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JWKS_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /data jwks \
 && mkdir -p /data && chown jwks /data

USER jwks
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz')" || exit 1
ENTRYPOINT ["jwks-service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
