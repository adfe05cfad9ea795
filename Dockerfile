# labelhub: a small image running the daemon as a non-root user.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 labelhub
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY labelhub ./labelhub
RUN pip install --no-cache-dir -c requirements.lock .

USER labelhub
ENV LABELHUB_HOST=0.0.0.0 \
    LABELHUB_PORT=8000 \
    LABELHUB_DATA_DIR=/home/labelhub/data \
    LABELHUB_LOG_FORMAT=json
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]

CMD ["labelhub", "serve"]
