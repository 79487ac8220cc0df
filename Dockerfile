# polaris-watchdog container image.
#   docker build -t polaris-watchdog .
#   docker run --env-file watchdog.env -v watchdog-data:/data \
#     -v "$PWD/rules.toml:/config/rules.toml:ro" -p 8080:8080 polaris-watchdog
# Secrets come from the environment at run time; none is baked into the image.

# ---- build: install the package and its runtime dependencies into a venv --------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY watchdog ./watchdog
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

# ---- runtime: the venv only, no build or test tools -------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 watchdog \
 && useradd --system --uid 10001 --gid watchdog --home-dir /data --shell /usr/sbin/nologin watchdog \
 && mkdir -p /data /config \
 && chown watchdog:watchdog /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WATCHDOG_STATE=/data/watchdog.db \
    WATCHDOG_RULES=/config/rules.toml \
    WATCHDOG_LISTEN=0.0.0.0:8080 \
    WATCHDOG_LOG_FORMAT=json
USER watchdog
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# The bot drains on SIGTERM and exits 0 within 10 s (Docker's default stop timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["polaris-watchdog"]
CMD ["run"]
