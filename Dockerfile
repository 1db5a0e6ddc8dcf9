# Stylist as a container, with the two bundled MIT models (models/) inside: no mounts needed.
#   docker build -t stylist .
#   docker run -p 8080:8080 stylist                                   # data in an anonymous volume
#   docker run -p 8080:8080 -v stylist-data:/data stylist             # data kept in a named volume
#   docker run -p 8080:8080 -v stylist-data:/data -v "$PWD/../shared/models:/models:ro" stylist
# The last form adds the models of a mounted directory to the bundled ones (see "Models" below).
# CPUs without AVX2: docker build --build-arg STYLIST_PORTABLE=1 -t stylist .
# Other bases (CI builds from Debian images made with debootstrap and mounts the toolchain at
# /opt/swift): --build-arg SWIFT_IMAGE=... --build-arg RUNTIME_IMAGE=... ; see .ci/container.
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
ARG STYLIST_PORTABLE=0
# The official swift image has the toolchain in /usr/bin and no /opt/swift, so this is harmless
# there; a bare Debian base with the toolchain mounted at /opt/swift (CI) finds it here.
ENV PATH=/opt/swift/usr/bin:$PATH
# DL3008 (pin apt versions): the base image fixes the Debian release; the -dev packages follow
# its security updates, and pinned versions vanish from the mirror when a fix lands.
# hadolint ignore=DL3008
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends libpng-dev libjpeg62-turbo-dev libssl-dev zlib1g-dev libdeflate-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first (their own layer: source edits do not re-resolve them).
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# The manifest declares the test targets, so their directories must exist; they are not built.
COPY Tests ./Tests
# --product stylist: only the executable's targets (no tests). The debug info is stripped (the
# symbols stay, for the runtime's backtraces).
RUN STYLIST_PORTABLE=${STYLIST_PORTABLE} swift build -c release --product stylist --static-swift-stdlib \
    && bin="$(swift build -c release --show-bin-path)" \
    && mkdir -p /out \
    && cp "$bin/stylist" /out/ \
    && strip --strip-debug /out/stylist \
    && cp -R "$bin/Stylist_StylistService.resources" /out/

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# DL3008: as above, the runtime libraries follow the base release's security updates.
# hadolint ignore=DL3008
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends libpng16-16 libjpeg62-turbo libssl3 zlib1g libdeflate0 libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 stylist \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin stylist \
    && mkdir -p /data /models \
    && chown 10001:10001 /data
# The resources bundle (openapi.yaml) must sit next to the binary.
COPY --from=build /out/ /usr/local/bin/
# Models: the bundled ones live in /usr/local/share/stylist/models, which the binary finds by
# itself (`../share/stylist/models` beside its bin/ is one of its bundled-model places), so the
# image runs with no mounts. STYLIST_MODELS=/models names an extra directory: the catalog takes
# the UNION of every existing directory (the configured one first: it wins a name), so
#   - nothing mounted: /models is the empty directory made above and adds nothing; the bundled
#     microast (the default model) and adain-vgg19-cd16x are served;
#   - a directory mounted at /models: its models are added, and a file with a bundled model's
#     name replaces that model.
# A configured directory must exist (the server refuses to start otherwise), hence the mkdir.
# Were the search ever "first directory only", this would hide the bundled models behind an
# empty /models: .ci/container runs the image with nothing mounted and a microast job, so it
# would fail loudly rather than ship that.
COPY models/microast.safetensors models/adain-vgg19-cd16x.safetensors models/README.md /usr/local/share/stylist/models/
COPY config/stylist.json /etc/stylist/stylist.json
ENV STYLIST_CONFIG=/etc/stylist/stylist.json \
    STYLIST_MODELS=/models \
    STYLIST_DATA_DIR=/data \
    STYLIST_HOST=0.0.0.0 \
    STYLIST_PORT=8080
# Numeric, so runtimes that check runAsNonRoot (Kubernetes) can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# The server exits 0 on SIGTERM after finishing (or re-queueing) the running job; give it more
# than shutdown_grace_seconds (20): docker stop -t 30.
STOPSIGNAL SIGTERM
# No curl in the slim image: bash's /dev/tcp speaks the one request /healthz needs.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/stylist", "serve"]
