# One image for the four services; SERVICE selects which one runs (intake, verify, route, notify).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY config ./config
RUN pip install --no-cache-dir .
ENV SERVICE=intake
CMD ["sh", "-c", "exec python -m services.${SERVICE}"]
