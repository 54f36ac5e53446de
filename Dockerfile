# The project with its PostgreSQL extra: one image for the MLflow tracking server and the
# sweep workers of docker-compose.yml. The default torch wheel on Linux x86_64 is the CUDA build,
# which GPU workers need (a CPU-only worker can use the same image).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
WORKDIR /app
RUN useradd --create-home --uid 1000 onecycle

COPY pyproject.toml README.md ./
COPY schedulers ./schedulers
COPY storage ./storage
COPY sweeps ./sweeps
RUN pip install "torch>=2.3" && pip install ".[postgres]"

COPY examples ./examples
USER onecycle
ENTRYPOINT []
CMD ["onecycle", "--help"]
