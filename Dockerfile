# polaris-watchdog container image.
#   docker build -t polaris-watchdog .
#   docker run --read-only --tmpfs /tmp --env-file watchdog.env -v watchdog-data:/data \
#     -v "$PWD/rules.toml:/config/rules.toml:ro" -p 8080:8080 polaris-watchdog
# Secrets come from the environment at run time; none is baked into the image.
# The root file system may be read-only: the bot writes only to /data (the state volume)
# and /tmp (SQLite's temporary files), so mount a volume or tmpfs on each.

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
# The user is created for tools that look names up (ps, id); the image refers to it by
# number only, because the kubelet can verify runAsNonRoot only for a numeric USER.
RUN groupadd --system --gid 10001 watchdog \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin watchdog \
 && mkdir -p /data /config \
 && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/healthcheck.py /opt/watchdog/healthcheck.py
# PYTHONDONTWRITEBYTECODE: the venv is compiled at install time; never try to write .pyc
# files into a read-only root file system at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WATCHDOG_STATE=/data/watchdog.db \
    WATCHDOG_RULES=/config/rules.toml \
    WATCHDOG_LISTEN=0.0.0.0:8080 \
    WATCHDOG_LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Probes the address in WATCHDOG_LISTEN (a wildcard host means loopback), so changing the
# port at run time does not make the container unhealthy.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "/opt/watchdog/healthcheck.py", "/healthz"]
# The bot drains on SIGTERM and exits 0 within 10 s (Docker's default stop timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["polaris-watchdog"]
CMD ["run"]
