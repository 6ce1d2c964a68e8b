# One image for the four services; SERVICE selects which one runs (intake, verify, route, notify).
# Every dependency comes from requirements.lock (pinned, hash-checked; `make lock` regenerates
# it), then the project itself without dependencies. It runs as an unprivileged user (uid 10001)
# and writes only to /tmp (prometheus_client's multiprocess files when INTAKE_HTTP_WORKERS > 1).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY tools ./tools
COPY config ./config
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin cityhelp
USER 10001:10001
ENV SERVICE=intake
EXPOSE 8080 8081 8082 8083
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-m", "tools.healthcheck"]
CMD ["sh", "-c", "exec python -m services.${SERVICE}"]
