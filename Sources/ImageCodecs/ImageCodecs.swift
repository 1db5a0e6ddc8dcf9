/// ImageCodecs: PNG/JPEG decoding and encoding to RGB float planes.
