# syntax=docker/dockerfile:1
# PostgreSQL 15 with pgBackRest, so that WAL is archived into the repository the loomworks container shares.
FROM postgres:15-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbackrest \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/pgbackrest /var/log/pgbackrest /var/spool/pgbackrest \
    && chown postgres:postgres /var/lib/pgbackrest /var/log/pgbackrest /var/spool/pgbackrest
COPY infrastructure/docker/pgbackrest.conf /etc/pgbackrest/pgbackrest.conf
