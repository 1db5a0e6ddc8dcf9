/* CImageCodecs: libpng + libjpeg-turbo behind setjmp-safe C functions. */
