# Stylist as a container. Models are not baked in: mount them at /models (read-only).
#   docker build -t stylist .
#   docker run -p 8080:8080 -v $PWD/../shared/models:/models:ro -v stylist-data:/data stylist
# Build for CPUs without AVX2 with: docker build --build-arg STYLIST_PORTABLE=1 -t stylist .
ARG SWIFT_IMAGE=swift:6.3-bookworm

FROM ${SWIFT_IMAGE} AS build
ARG STYLIST_PORTABLE=0
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
        libpng-dev libjpeg62-turbo-dev libssl-dev zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN STYLIST_PORTABLE=${STYLIST_PORTABLE} swift build -c release --product stylist --static-swift-stdlib \
    && mkdir -p /out && cp "$(swift build -c release --show-bin-path)/stylist" /out/ \
    && cp -R "$(swift build -c release --show-bin-path)/Stylist_StylistService.resources" /out/

FROM debian:bookworm-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
        libpng16-16 libjpeg62-turbo libssl3 zlib1g ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data stylist && mkdir -p /data && chown stylist /data
# The resources bundle (openapi.yaml) must sit next to the binary.
COPY --from=build /out/ /usr/local/bin/
COPY config/stylist.json /etc/stylist/stylist.json
ENV STYLIST_CONFIG=/etc/stylist/stylist.json \
    STYLIST_MODELS=/models \
    STYLIST_DATA_DIR=/data \
    STYLIST_HOST=0.0.0.0
USER stylist
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/stylist", "serve"]
