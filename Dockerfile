FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
RUN pip install --no-cache-dir . && useradd --system --uid 10001 llmconfig

USER llmconfig
# Loopback by default: `docker run --network host` serves the host without tokens. To serve
# other containers, listen on 0.0.0.0:50061 with --tokens-file and --tls-cert/--tls-key (the
# server refuses to expose keys without them unless --insecure).
ENV STIGMER_LLMCONFIG_LISTEN=127.0.0.1:50061
EXPOSE 50061
# Docker sends SIGTERM; the server drains (health NOT_SERVING) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["llmconfig-server"]
