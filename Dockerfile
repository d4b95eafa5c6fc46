# syntax=docker/dockerfile:1
# The Nexus hub's image: one image, five entry points (api, worker, start, migrate, athena).
#   docker build -t nexus .
#   docker run --rm nexus migrate        # then: api, worker [--queues …], start, athena [--role=…]
# The build stage runs scripts/build-production-tree.sh, the same script
# test/integration/image-tree.test.ts runs and starts the processes from.

FROM node:20-bookworm-slim AS build
WORKDIR /src
# The dependencies first, so a change to the sources does not reinstall them.
COPY package.json package-lock.json ./
# SCARF_ANALYTICS: a dependency's install script would otherwise report the install to its vendor.
RUN SCARF_ANALYTICS=false npm ci --no-audit --no-fund
COPY . .
RUN scripts/build-production-tree.sh /out

FROM node:20-bookworm-slim
# The tree belongs to root and is read-only to the process's user: the container may run with a
# read-only root filesystem, since the hub writes nothing to disk (logs go to stdout).
COPY --from=build /out /app
WORKDIR /app
ENV NODE_ENV=production
# The guide's podSecurityContext (runAsUser 500, runAsGroup 500, fsGroup 500, runAsNonRoot): a
# numeric user, so the kubelet can check runAsNonRoot.
USER 500:500
# API, API metrics, AI connector, AI connector metrics.
EXPOSE 4000 4004 4084 4085
ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["start"]
