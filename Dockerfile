# The omnitrail image (used by docker-compose.yml): `omnitrail worker`, `omnitrail serve` and the CLI, against Apache
# Kafka and a ClickHouse server. Only the core package is installed (`pip install .`): the local engines (noida-db,
# chdb) are the `local` extra, for machines without Docker; here `omnitrail stack up` or a chdb:// store URL fail
# with a message naming `pip install 'omnitrail[local]'`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMNITRAIL_STATE_DIR=/var/lib/omnitrail

WORKDIR /src
# Only what the package needs (.dockerignore keeps .env, .venv, local state and caches out of the context).
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY services/ services/
COPY consumers/ consumers/
COPY projections/ projections/
# The state and credentials directories exist in the image, owned by the runtime user, so that an empty named
# volume mounted on them starts with that owner (Docker copies the image directory's ownership into it).
RUN pip install . \
    && useradd --system --create-home --home-dir /home/omnitrail omnitrail \
    && mkdir -p /var/lib/omnitrail /var/lib/omnitrail-credentials \
    && chown omnitrail /var/lib/omnitrail /var/lib/omnitrail-credentials \
    && chmod 700 /var/lib/omnitrail-credentials

USER omnitrail
WORKDIR /home/omnitrail
VOLUME ["/var/lib/omnitrail"]
# The HTTP service (`omnitrail serve` with OMNITRAIL_API_HOST=0.0.0.0; it then requires tokens).
EXPOSE 8765
CMD ["omnitrail", "worker"]
