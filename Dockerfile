# One image for the Kingbus node (kingbus-node, kingbusctl) and the operator (kopf run -m
# kingbus_operator.handlers).
#
# No base image can be pulled where this project is built, so the base is a root filesystem
# made offline and imported, not pulled:
#
#   mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
#       bookworm - | docker import - kingbus-base:bookworm
#   docker build --build-arg BASE=kingbus-base:bookworm -t kingbus:0.1.0 .
#
# (bookworm's python3 is 3.11, the version the project targets.)  With registry access,
# BASE=python:3.11-slim-bookworm works the same.  Wheels come from the pip index or, offline,
# from a wheelhouse: `pip download -d wheels .[operator]` then `--build-arg PIP_ARGS="--no-index
# --find-links=/src/wheels"`.
ARG BASE=kingbus-base:bookworm

FROM ${BASE} AS build
ARG PIP_ARGS=""
COPY pyproject.toml README.md /src/
COPY node /src/node
COPY operator /src/operator
COPY wheels* /src/wheels/
RUN python3 -m venv /opt/kingbus \
 && /opt/kingbus/bin/pip install --no-cache-dir ${PIP_ARGS} "/src[operator]"

FROM ${BASE}
COPY --from=build /opt/kingbus /opt/kingbus
# Non-root (the operator chart runs as 65532 with a read-only root filesystem); the node's
# data lives on the mounted volume at /var/lib/kingbus.
# The user needs a name: kopf names the operator's peering identity after it (getpass.getuser(),
# which fails for a uid missing from /etc/passwd, and the operator would crash at start).
RUN echo 'kingbus:x:65532:65532:Kingbus:/var/lib/kingbus:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kingbus:x:65532:' >> /etc/group \
 && mkdir -p /var/lib/kingbus && chown 65532:65532 /var/lib/kingbus
ENV PATH=/opt/kingbus/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 3306 7100 9595
# The operator's StatefulSet runs /bin/sh /etc/kingbus/config/start.sh (from its ConfigMap),
# which execs kingbus-node; the operator's Deployment runs kopf.  No default is baked in.
ENTRYPOINT []
CMD ["kingbus-node", "--help"]
