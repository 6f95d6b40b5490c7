# eventyard's container image.
#
#   docker build -t eventyard .
#   docker run --rm -p 4010:4010 -v eventyard-data:/data eventyard
#
# The image runs `eventyard serve` as an unprivileged user, keeps the store in the /data
# volume and reports healthy once /readyz answers 200. Any other eventyard command runs
# in it too: `docker run --rm eventyard buses list --url http://host:4010`.
# tests/test_packaging.py runs the ENTRYPOINT + CMD and the HEALTHCHECK below as plain
# commands against the installed wheel, so keep them in JSON (exec) form.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the wheel, installed with its runtime dependencies into a venv ----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# the venv gets no pip of its own: the image's pip installs into it from outside
RUN pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv --without-pip /opt/eventyard \
    && pip --python /opt/eventyard/bin/python install /dist/eventyard-*.whl

# -- runtime: the venv on a clean base, run as a non-root user ---------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="eventyard" \
      org.opencontainers.image.description="A self-hosted event router that speaks the Amazon EventBridge API" \
      org.opencontainers.image.licenses="Apache-2.0"
# EVENTYARD_DATA_DIR: `eventyard accounts` / `keys` run in the container (docker exec, or
# docker run on the volume) act on the store that serve uses
ENV PATH=/opt/eventyard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EVENTYARD_DATA_DIR=/data
# a fixed numeric id, so that runAsNonRoot checks and volume ownership are predictable
RUN groupadd --system --gid 10001 eventyard \
    && useradd --system --uid 10001 --gid eventyard --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin eventyard \
    && mkdir /data \
    && chown eventyard:eventyard /data
COPY --from=build /opt/eventyard /opt/eventyard
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 4010
# python is in every image of this kind (curl and wget are not); urlopen raises, and so
# exits 1, unless /readyz answers 2xx. The port follows EVENTYARD_PORT, as serve does.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('EVENTYARD_PORT', '4010'), timeout=2)"]
ENTRYPOINT ["eventyard"]
CMD ["serve", "--host", "0.0.0.0", "--data-dir", "/data"]
