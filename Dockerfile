FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
RUN pip install --no-cache-dir . && useradd --system --uid 10001 llmconfig

USER llmconfig
# Inside a container the service must listen beyond loopback to be reachable.
ENV STIGMER_LLMCONFIG_LISTEN=0.0.0.0:50061
EXPOSE 50061
# Docker sends SIGTERM; the server drains (health NOT_SERVING) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["llmconfig-server"]
