# PostgreSQL from Debian's package on the services' base image (deploy/compose.debian-stores.yml).
# The same contract as the official image for what compose uses: POSTGRES_USER, POSTGRES_DB and
# POSTGRES_PASSWORD make the cluster on first start, data in /var/lib/postgresql/data.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
# No cluster from the package's postinst: the entrypoint makes one in the volume.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(ls -d /usr/lib/postgresql/*/bin)" /usr/local/lib/postgresql-bin \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/local/lib/postgresql-bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
CMD ["postgres-entrypoint"]
