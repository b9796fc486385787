# llmconfig-server. `make image` builds it, `make image-test` builds and runs it.
#
# PYTHON_IMAGE: any Debian-like image with Python >= 3.11 and the venv module. The default is
# the official image; where no registry can be reached, deploy/image.sh makes one from Debian
# packages and passes it here.
ARG PYTHON_IMAGE=python:3.11-slim

# Stage 1: build the wheel, so the image runs an installed package, not a source tree.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-cache-dir --disable-pip-version-check --quiet \
        --no-deps --wheel-dir /wheels .

# Stage 2: the server extra from that wheel, in a venv (Debian's own Python refuses pip
# installs outside one), owned by root and run by an unprivileged user. pip and setuptools
# leave the venv afterwards: nothing installs at run time.
FROM ${PYTHON_IMAGE}
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/llmconfig \
    && /opt/llmconfig/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
        "$(ls /wheels/llmconfig-*.whl)[server]" \
    && /opt/llmconfig/bin/python -m pip uninstall --yes --quiet pip setuptools \
    && rm -rf /wheels \
    && useradd --uid 10001 --user-group --create-home --home-dir /home/llmconfig llmconfig

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENV PATH=/opt/llmconfig/bin:$PATH \
    HOME=/home/llmconfig \
    PYTHONUNBUFFERED=1
# Loopback by default: a TCP listener beyond loopback needs tokens and TLS (or --insecure), so
# the image starts as it is only with `docker run --network host`. docs/deploy.md shows the
# 0.0.0.0 setup with --tokens-file, --tls-cert and --tls-key, and a key file the image's user reads.
ENV STIGMER_LLMCONFIG_LISTEN=127.0.0.1:50061
EXPOSE 50061
# Docker and Kubernetes send SIGTERM; the server drains (health NOT_SERVING) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["llmconfig-server"]
