# ChainLens image: the wheel built from this tree (a normal, non-editable install), run as an
# unprivileged user. One image for every process: `chainlens serve` (default), `chainlens
# worker`, `chainlens migrate` (docker-compose.yml and deploy/k8s/ pick the command).

# --- build: the wheel, nothing else ---
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# --- run: the wheel and its locked dependencies; no source tree ---
FROM python:3.11-slim
RUN groupadd --system --gid 10001 chainlens \
    && useradd --system --uid 10001 --gid chainlens --home-dir /var/lib/chainlens \
       --no-create-home --shell /usr/sbin/nologin chainlens \
    && mkdir -p /var/lib/chainlens && chown chainlens:chainlens /var/lib/chainlens
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir -c /tmp/requirements.lock /tmp/dist/chainlens-*.whl \
    && rm -rf /tmp/dist /tmp/requirements.lock
# Production refuses placeholder secrets. Without SECRET_KEY, the key generated on first start
# lives in CHAINLENS_DATA_DIR: a volume, so sessions survive a rebuilt container (several
# replicas must share one SECRET_KEY instead).
ENV ENVIRONMENT=production
ENV CHAINLENS_DATA_DIR=/var/lib/chainlens
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
VOLUME /var/lib/chainlens
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/chainlens
EXPOSE 8000
# curl is not in the slim image: Python asks /api/v1/health (503, or no answer, fails).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["chainlens", "serve", "--host", "0.0.0.0"]
