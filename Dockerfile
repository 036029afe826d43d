# syntax=docker/dockerfile:1
# One image for all Cirrus processes; the command picks which (default: the API):
#   node dist/api/server.js | node dist/scheduler/main.js | node dist/compute-agent/main.js
#   node dist/common/db/migrate-cli.js   (migrations only, then exit)
# See docker-compose.yml for how they are wired together.

FROM node:20-bookworm-slim AS build
# libvirt-dev, python3, make and g++ compile the optional @unraid/libvirt addon
# (node-pre-gyp falls back to node-gyp when no prebuilt binary fits).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvirt-dev python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# node:20 bundles npm 10, which ignores package.json#allowScripts and runs every
# install script; npm 11 (as on the dev machines) runs only the allowed ones, the
# libvirt addon's among them. This stage is thrown away, so a global npm is fine here.
RUN npm install -g npm@11.19.1
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
# --omit=dev keeps optional dependencies, so the built addon stays.
RUN npm run build \
 && npm prune --omit=dev

FROM node:20-bookworm-slim
# Run time only: the libvirt client library (the daemon stays on the host), qemu-img
# (the agent makes qcow2 overlays), genisoimage (for config-drive ISOs; nothing calls
# it yet), and CA certificates for TLS to Postgres or Redis.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvirt0 qemu-utils genisoimage ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# UV_THREADPOOL_SIZE: every libvirt call holds a libuv thread until libvirtd answers;
# with the default 4, a few slow calls would stall file and DNS work too.
# CIRRUS_STATE_DIR: the default (.cirrus under the working directory) is not writable
# here; images and instances default to its images/ and instances/.
ENV NODE_ENV=production \
    UV_THREADPOOL_SIZE=16 \
    CIRRUS_STATE_DIR=/var/lib/cirrus
WORKDIR /app
# package.json is needed at run time: its "type": "module" makes dist/*.js ES modules.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /var/lib/cirrus/images /var/lib/cirrus/instances \
 && chown -R node:node /var/lib/cirrus
# The image's own non-root user. The compute agent is the exception: its compose
# service runs as root to reach the host's libvirt socket (see docker-compose.yml).
USER node
EXPOSE 8774
CMD ["node", "dist/api/server.js"]
