# The omnitrail worker image (used by docker-compose.yml). Builds from the source tree: `pip install .`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMNITRAIL_STATE_DIR=/var/lib/omnitrail

WORKDIR /src
# Only what the package needs: not .venv, local state or tests. README.md* tolerates its absence.
COPY pyproject.toml README.md* ./
COPY schemas/ schemas/
COPY services/ services/
COPY consumers/ consumers/
COPY projections/ projections/
RUN pip install . \
    && useradd --system --create-home --home-dir /home/omnitrail omnitrail \
    && mkdir -p /var/lib/omnitrail && chown omnitrail /var/lib/omnitrail

USER omnitrail
WORKDIR /home/omnitrail
VOLUME ["/var/lib/omnitrail"]
# The read API (OMNITRAIL_API_HOST must be 0.0.0.0 to reach it from outside the container).
EXPOSE 8765
CMD ["omnitrail", "worker"]
