# The ume search app: `ume serve` (UI + HTTP API), `ume index`, `ume search` in one image.
#   docker build -t ume-search .
#   docker run --rm -p 127.0.0.1:7860:7860 -v ~/Pictures:/media:ro ume-search
# docker-compose.yml runs it next to a Qdrant server; see docs/large-collections.md.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/models \
    UME_DATA_DIR=/data \
    UME_REFERENCE_MODEL=/opt/ume/models/ume-r1-tiny-world

WORKDIR /opt/ume
# Dependencies first, so editing the code does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir model indexer app \
    && touch model/__init__.py indexer/__init__.py app/__init__.py \
    && pip install . \
    && pip uninstall -y ume-search
COPY model ./model
COPY indexer ./indexer
COPY app ./app
COPY examples ./examples
# The reference model `ume demo` runs without a GPU or offline (3.5 MB).
COPY models ./models
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 ume \
    && mkdir -p /data /models /media \
    && chown ume:ume /data /models

USER ume
VOLUME ["/data", "/models"]
EXPOSE 7860
ENTRYPOINT ["ume"]
# Inside a container the UI must listen beyond localhost; publish the port on 127.0.0.1 (or set
# UME_AUTH) on the host. The Index tab may add folders under /media only.
CMD ["serve", "--host", "0.0.0.0", "--port", "7860", "--index-under", "/media"]
