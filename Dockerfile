# The gateway image: slim, non-root, serving with `manage.py serve` (uvicorn, uvloop, httptools).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gateway_project gateway_project
COPY apps apps
# Install the dependencies pinned by constraints.txt; the code itself runs from /app.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt . \
 && /opt/venv/bin/pip uninstall -y llm-gateway

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_VAR_DIR=/app/var
RUN useradd --create-home --uid 10001 gateway
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=gateway:gateway manage.py pyproject.toml ./
COPY --chown=gateway:gateway gateway_project gateway_project
COPY --chown=gateway:gateway apps apps
COPY --chown=gateway:gateway templates templates
COPY --chown=gateway:gateway static static
RUN mkdir -p var \
 && DEBUG=1 python manage.py collectstatic --noinput --verbosity 0 \
 && chown -R gateway:gateway var
USER gateway
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/health/liveliness', timeout=4)"
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "4000"]
