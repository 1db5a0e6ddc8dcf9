/* Deflate for filtered PNG rows: dynamic-Huffman blocks of literals and byte runs, no LZ77 search.
 *
 * Why not zlib: on the filtered residuals of a stylized picture, long matches are rare, so the
 * size comes almost entirely from the Huffman code of the byte histogram; zlib's Z_RLE still pays
 * for its general machinery (a symbol buffer, per-symbol tallies, block-splitting heuristics).
 * Here each block of input is read twice while it is still in cache: once to count the symbols,
 * finding the runs and recording them, once to write the codes of the recorded runs and of the
 * literals between them through a 64-bit bit buffer. The only matches are runs of the previous
 * byte (distance 1), which is how flat areas (all-zero residuals) collapse.
 *
 * Every block is dynamic Huffman (BTYPE 2), or stored when that would be smaller (noise). Every
 * code is complete (at least two used symbols, lengths satisfying Kraft with equality), which any
 * inflater accepts; the distance code is always the two 1-bit codes 0 and 1, of which only 0
 * (distance 1) is used. */
#include "internal.h"

#include <stdlib.h>

#define SC_DEFLATE_BLOCK_BYTES (64U << 10) /* input bytes per block: statistics follow the picture */
/* Runs shorter than this are literals. At most 7: the check reads one 64-bit word. */
#define SC_DEFLATE_MIN_RUN 6
_Static_assert(SC_DEFLATE_MIN_RUN >= 3 && SC_DEFLATE_MIN_RUN <= 7, "deflate matches are at least 3 bytes; the run check reads one word");
#define SC_DEFLATE_MAX_RUN 258
#define SC_DEFLATE_LITLEN_SYMBOLS 286
#define SC_DEFLATE_CODELEN_SYMBOLS 19
#define SC_DEFLATE_END_OF_BLOCK 256
/* Runs a block can hold: each is at least SC_DEFLATE_MIN_RUN bytes long and none starts at byte 0. */
#define SC_DEFLATE_MAX_RUNS (SC_DEFLATE_BLOCK_BYTES / SC_DEFLATE_MIN_RUN)
_Static_assert(SC_DEFLATE_BLOCK_BYTES <= 65536, "a run's start in its block fits 16 bits");

static const uint16_t sc_length_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                            35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t sc_length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                            3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t sc_codelen_order[SC_DEFLATE_CODELEN_SYMBOLS] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                                                     11, 4, 12, 3, 13, 2, 14, 1, 15};

/* Index into sc_length_base of a run length in [3, 258]. */
static inline unsigned sc_length_slot(unsigned length) {
    unsigned slot = 0;
    while (slot < 28 && sc_length_base[slot + 1] <= length) slot++;
    return slot;
}

static inline uint64_t sc_load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void sc_store64le(uint8_t *p, uint64_t v) {
    if (!sc_host_is_little_endian()) v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

/* --- bit output ------------------------------------------------------------------------------ */

/* Adds `count` bits (count <= 56 - pending bits) above the pending ones. */
static inline void sc_put_bits(sc_deflate_writer *w, uint64_t value, unsigned count) {
    w->bits |= value << w->bit_count;
    w->bit_count += count;
}

/* Writes the whole pending bytes (8 bytes are stored: the output has that much slack). At most
 * 63 bits may be pending. */
static inline void sc_flush_bits(sc_deflate_writer *w) {
    sc_store64le(w->out, w->bits);
    w->out += w->bit_count >> 3;
    w->bits >>= w->bit_count & ~7U; /* bit_count < 64 */
    w->bit_count &= 7;
}

/* Pads with zero bits to the next byte boundary and writes everything pending. */
static void sc_align(sc_deflate_writer *w) {
    w->bit_count = (w->bit_count + 7) & ~7U;
    sc_flush_bits(w);
}

/* --- Huffman code construction --------------------------------------------------------------- */

typedef struct {
    uint32_t key; /* frequency, then (in place) tree links, then code length */
    uint16_t symbol;
} sc_symbol_freq;

static int sc_by_frequency(const void *a, const void *b) {
    const sc_symbol_freq *x = (const sc_symbol_freq *)a, *y = (const sc_symbol_freq *)b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->symbol < y->symbol ? -1 : (x->symbol > y->symbol);
}

/* Moffat and Katajainen's in-place minimum-redundancy code: `a` sorted by ascending frequency
 * (n >= 2) in, each entry's optimal code length out. */
static void sc_minimum_redundancy(sc_symbol_freq *a, int n) {
    int root = 0, leaf = 2, next;
    a[0].key += a[1].key;
    for (next = 1; next < n - 1; next++) {
        if (leaf >= n || a[root].key < a[leaf].key) {
            a[next].key = a[root].key;
            a[root++].key = (uint32_t)next;
        } else {
            a[next].key = a[leaf++].key;
        }
        if (leaf >= n || (root < next && a[root].key < a[leaf].key)) {
            a[next].key += a[root].key;
            a[root++].key = (uint32_t)next;
        } else {
            a[next].key += a[leaf++].key;
        }
    }
    a[n - 2].key = 0;
    for (next = n - 3; next >= 0; next--) a[next].key = a[a[next].key].key + 1;
    int available = 1, used = 0, depth = 0;
    root = n - 2;
    next = n - 1;
    while (available > 0) {
        while (root >= 0 && (int)a[root].key == depth) {
            used++;
            root--;
        }
        while (available > used) {
            a[next--].key = (uint32_t)depth;
            available--;
        }
        available = 2 * used;
        depth++;
        used = 0;
    }
}

/* Code lengths (at most `limit` bits) for `n` symbols of frequencies `freq`, and their canonical
 * codes bit-reversed for LSB-first output. Symbols of frequency 0 get no code, except that a code
 * always has at least two symbols (a lone one gets a partner), so it is complete. */
static void sc_build_code(const uint32_t *freq, int n, unsigned limit, uint8_t *lengths, uint16_t *codes) {
    sc_symbol_freq sorted[SC_DEFLATE_LITLEN_SYMBOLS];
    int used = 0;
    for (int s = 0; s < n; s++) {
        lengths[s] = 0;
        if (freq[s] > 0) sorted[used++] = (sc_symbol_freq){freq[s], (uint16_t)s};
    }
    for (int s = 0; used < 2; s++) { /* a partner (or two) of frequency zero */
        if (freq[s] == 0) sorted[used++] = (sc_symbol_freq){0, (uint16_t)s};
    }
    qsort(sorted, (size_t)used, sizeof sorted[0], sc_by_frequency);
    sc_minimum_redundancy(sorted, used);

    /* Length limiting: every length over the limit becomes the limit, then codes are lengthened
     * one at a time (a leaf at the limit removed, one shorter leaf split) until Kraft holds. */
    unsigned count[33] = {0};
    for (int i = 0; i < used; i++) count[sorted[i].key < 32 ? sorted[i].key : 32]++;
    for (unsigned l = limit + 1; l <= 32; l++) {
        count[limit] += count[l];
        count[l] = 0;
    }
    uint64_t kraft = 0;
    for (unsigned l = 1; l <= limit; l++) kraft += (uint64_t)count[l] << (limit - l);
    while (kraft > (1ULL << limit)) {
        count[limit]--;
        for (unsigned l = limit - 1; l > 0; l--) {
            if (count[l]) {
                count[l]--;
                count[l + 1] += 2;
                break;
            }
        }
        kraft--;
    }
    /* The most frequent symbols (the end of `sorted`) take the shortest lengths. */
    int j = used;
    for (unsigned l = 1; l <= limit; l++) {
        for (unsigned k = count[l]; k > 0; k--) lengths[sorted[--j].symbol] = (uint8_t)l;
    }

    /* Canonical codes, bit-reversed. */
    uint16_t next_code[16] = {0};
    unsigned per_length[16] = {0};
    for (int s = 0; s < n; s++) per_length[lengths[s]]++;
    per_length[0] = 0;
    uint16_t code = 0;
    for (unsigned l = 1; l <= 15; l++) {
        code = (uint16_t)((code + per_length[l - 1]) << 1);
        next_code[l] = code;
    }
    for (int s = 0; s < n; s++) {
        const unsigned l = lengths[s];
        codes[s] = 0;
        if (l == 0) continue;
        unsigned c = next_code[l]++, reversed = 0;
        for (unsigned b = 0; b < l; b++) reversed |= ((c >> b) & 1U) << (l - 1 - b);
        codes[s] = (uint16_t)reversed;
    }
}

/* --- tokens: literals and runs of the previous byte --------------------------------------------- */

/* Length of the run of bytes equal to in[i - 1] starting at i, if at least SC_DEFLATE_MIN_RUN
 * (and at most SC_DEFLATE_MAX_RUN); otherwise 0. Needs i >= 1. */
static inline unsigned sc_run_at(const uint8_t *in, size_t n, size_t i) {
    if (n - i < 8) return 0; /* the last bytes of a block are literals */
    const uint64_t repeated = 0x0101010101010101ULL * in[i - 1];
    uint64_t diff = sc_load64(in + i) ^ repeated;
    if (!sc_host_is_little_endian()) diff = __builtin_bswap64(diff);
    if ((diff & ((1ULL << (8 * SC_DEFLATE_MIN_RUN)) - 1)) != 0) return 0;
    size_t length = 0;
    const size_t max = n - i < SC_DEFLATE_MAX_RUN ? n - i : SC_DEFLATE_MAX_RUN;
    while (length + 8 <= max) {
        diff = sc_load64(in + i + length) ^ repeated;
        if (!sc_host_is_little_endian()) diff = __builtin_bswap64(diff);
        if (diff != 0) return (unsigned)(length + ((unsigned)__builtin_ctzll(diff) >> 3));
        length += 8;
    }
    while (length < max && in[i + length] == in[i - 1]) length++;
    return (unsigned)length;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bit k (k < 16) set when a run starts at i + k, as sc_run_at sees it: in[i+k .. i+k+MIN_RUN-1]
 * all equal in[i+k-1]. Needs i >= 1 and i + 32 <= n. Most of a textured picture has no run, so
 * 16 literals at a time are told apart from runs with a few vector instructions. */
static inline uint32_t sc_run_starts16(const uint8_t *in, size_t i) {
#if defined(__SSE2__)
    const __m128i lo = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(in + i)), _mm_loadu_si128((const __m128i *)(in + i - 1)));
    const __m128i hi = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(in + i + 16)), _mm_loadu_si128((const __m128i *)(in + i + 15)));
    const uint32_t same = (uint32_t)_mm_movemask_epi8(lo) | (uint32_t)_mm_movemask_epi8(hi) << 16;
#else
    uint32_t same = 0;
    for (unsigned k = 0; k < 32; k++) same |= (uint32_t)(in[i + k] == in[i + k - 1]) << k;
#endif
    uint32_t starts = same;
    for (unsigned k = 1; k < SC_DEFLATE_MIN_RUN; k++) starts &= same >> k;
    return starts & 0xffff;
}

/* A run of the previous byte as found by the counting pass, which the writing pass replays. */
typedef struct {
    uint16_t start; /* in the block */
    uint8_t slot;   /* of its length (symbol 257 + slot) */
    uint8_t extra;  /* length - sc_length_base[slot] */
} sc_run;

typedef struct {
    uint32_t litlen[SC_DEFLATE_LITLEN_SYMBOLS];
    uint64_t extra_bits; /* of the run lengths */
    size_t runs;
} sc_block_stats;

/* Counts the block's symbols and records its runs, in order, in `runs` (SC_DEFLATE_MAX_RUNS). */
static void sc_count_symbols(const uint8_t *in, size_t n, sc_block_stats *st, sc_run *runs) {
    memset(st, 0, sizeof *st);
    /* Four tables for literals, so that equal neighbouring bytes do not wait on each other. */
    uint32_t lit[4][256];
    memset(lit, 0, sizeof lit);
    lit[0][in[0]]++;
    size_t i = 1;
    while (i < n) {
        unsigned run = 0;
        if (i + 32 <= n) {
            const uint32_t starts = sc_run_starts16(in, i);
            if (!starts) {
                const uint8_t *p = in + i;
                for (unsigned k = 0; k < 16; k += 4) {
                    lit[0][p[k]]++;
                    lit[1][p[k + 1]]++;
                    lit[2][p[k + 2]]++;
                    lit[3][p[k + 3]]++;
                }
                i += 16;
                continue;
            }
            const unsigned literals = (unsigned)__builtin_ctz(starts);
            for (unsigned k = 0; k < literals; k++) lit[k & 3][in[i + k]]++;
            i += literals;
            run = sc_run_at(in, n, i);
        } else {
            run = sc_run_at(in, n, i);
            if (!run) {
                lit[0][in[i++]]++;
                continue;
            }
        }
        const unsigned slot = sc_length_slot(run);
        st->litlen[257 + slot]++;
        st->extra_bits += sc_length_extra[slot];
        runs[st->runs++] = (sc_run){(uint16_t)i, (uint8_t)slot, (uint8_t)(run - sc_length_base[slot])};
        i += run;
    }
    for (int s = 0; s < 256; s++) st->litlen[s] = lit[0][s] + lit[1][s] + lit[2][s] + lit[3][s];
    st->litlen[SC_DEFLATE_END_OF_BLOCK] = 1;
}

/* --- blocks ---------------------------------------------------------------------------------- */

static void sc_write_stored(sc_deflate_writer *w, const uint8_t *in, size_t n, int final) {
    do {
        const size_t piece = n < 65535 ? n : 65535;
        const int last = piece == n;
        sc_put_bits(w, (uint64_t)(final && last), 3); /* BFINAL, BTYPE 00 */
        sc_align(w);
        w->out[0] = (uint8_t)piece;
        w->out[1] = (uint8_t)(piece >> 8);
        w->out[2] = (uint8_t)~piece;
        w->out[3] = (uint8_t)(~piece >> 8);
        if (piece > 0) memcpy(w->out + 4, in, piece);
        w->out += 4 + piece;
        in += piece;
        n -= piece;
    } while (n > 0);
}

/* The code-length sequence (litlen lengths then distance lengths, as one sequence) as symbols
 * 0-18 with their extra bits: `ops` gets (symbol | extra << 8) per step; returns the count. */
static size_t sc_codelen_ops(const uint8_t *lengths, size_t n, uint16_t *ops) {
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        const uint8_t l = lengths[i];
        size_t run = 1;
        while (i + run < n && lengths[i + run] == l) run++;
        size_t left = run;
        if (l == 0) {
            while (left >= 11) {
                const size_t k = left < 138 ? left : 138;
                ops[count++] = (uint16_t)(18 | (k - 11) << 8);
                left -= k;
            }
            if (left >= 3) {
                ops[count++] = (uint16_t)(17 | (left - 3) << 8);
                left = 0;
            }
        } else {
            ops[count++] = l;
            left--;
            while (left >= 3) {
                const size_t k = left < 6 ? left : 6;
                ops[count++] = (uint16_t)(16 | (k - 3) << 8);
                left -= k;
            }
        }
        while (left > 0) {
            ops[count++] = l;
            left--;
        }
        i += run;
    }
    return count;
}

static const uint8_t sc_codelen_extra[SC_DEFLATE_CODELEN_SYMBOLS] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                     0, 0, 0, 0, 0, 0, 2, 3, 7};

static void sc_write_block(sc_deflate_writer *w, const uint8_t *in, size_t n, int final) {
    sc_block_stats st;
    sc_run runs[SC_DEFLATE_MAX_RUNS];
    sc_count_symbols(in, n, &st, runs);
    uint8_t lengths[SC_DEFLATE_LITLEN_SYMBOLS + 2];
    uint16_t codes[SC_DEFLATE_LITLEN_SYMBOLS];
    sc_build_code(st.litlen, SC_DEFLATE_LITLEN_SYMBOLS, 15, lengths, codes);
    size_t nlit = SC_DEFLATE_LITLEN_SYMBOLS;
    while (nlit > 257 && lengths[nlit - 1] == 0) nlit--;
    lengths[nlit] = 1; /* the distance code: 0 (distance 1) and an unused partner, one bit each */
    lengths[nlit + 1] = 1;

    uint16_t ops[SC_DEFLATE_LITLEN_SYMBOLS + 2];
    const size_t op_count = sc_codelen_ops(lengths, nlit + 2, ops);
    uint32_t cl_freq[SC_DEFLATE_CODELEN_SYMBOLS] = {0};
    for (size_t k = 0; k < op_count; k++) cl_freq[ops[k] & 0xff]++;
    uint8_t cl_lengths[SC_DEFLATE_CODELEN_SYMBOLS];
    uint16_t cl_codes[SC_DEFLATE_CODELEN_SYMBOLS];
    sc_build_code(cl_freq, SC_DEFLATE_CODELEN_SYMBOLS, 7, cl_lengths, cl_codes);
    unsigned ncl = SC_DEFLATE_CODELEN_SYMBOLS;
    while (ncl > 4 && cl_lengths[sc_codelen_order[ncl - 1]] == 0) ncl--;

    /* Sizes in bits: this block as Huffman, and as stored blocks (at most a byte of padding each). */
    uint64_t huffman = 3 + 5 + 5 + 4 + 3 * (uint64_t)ncl;
    for (size_t k = 0; k < op_count; k++) huffman += cl_lengths[ops[k] & 0xff] + sc_codelen_extra[ops[k] & 0xff];
    for (size_t s = 0; s < nlit; s++) huffman += (uint64_t)st.litlen[s] * lengths[s];
    huffman += st.extra_bits + st.runs; /* plus one bit of distance code per run */
    const uint64_t stored = 8 * (uint64_t)n + (3 + 7 + 32) * ((uint64_t)n / 65535 + 1);
    if (huffman >= stored) {
        sc_write_stored(w, in, n, final);
        return;
    }

    sc_put_bits(w, (uint64_t)(final ? 1 : 0) | 2U << 1, 3);
    sc_put_bits(w, nlit - 257, 5);
    sc_put_bits(w, 2 - 1, 5);
    sc_put_bits(w, ncl - 4, 4);
    sc_flush_bits(w);
    for (unsigned k = 0; k < ncl; k++) {
        sc_put_bits(w, cl_lengths[sc_codelen_order[k]], 3);
        if (k % 8 == 7) sc_flush_bits(w);
    }
    sc_flush_bits(w);
    for (size_t k = 0; k < op_count; k++) {
        const unsigned sym = ops[k] & 0xff;
        sc_put_bits(w, cl_codes[sym], cl_lengths[sym]);
        sc_put_bits(w, (uint64_t)(ops[k] >> 8), sc_codelen_extra[sym]);
        sc_flush_bits(w);
    }

    /* The data: the runs recorded while counting, and the literals before, between and after
     * them. Codes and lengths in one table entry; at most three literals (45 bits) between
     * flushes. The writer is copied to a local, whose fields then stay in registers (the output
     * bytes could alias the caller's writer). */
    sc_deflate_writer local = *w, *const caller = w;
    w = &local;
    uint32_t table[SC_DEFLATE_LITLEN_SYMBOLS];
    for (size_t s = 0; s < SC_DEFLATE_LITLEN_SYMBOLS; s++) table[s] = codes[s] | (uint32_t)lengths[s] << 16;
#define SC_PUT_LITERAL(byte)                                                                         \
    do {                                                                                             \
        const uint32_t e = table[(byte)];                                                            \
        w->bits |= (uint64_t)(e & 0xffff) << w->bit_count;                                           \
        w->bit_count += e >> 16;                                                                     \
    } while (0)
    size_t i = 0;
    for (size_t r = 0;; r++) {
        const size_t literals_end = r < st.runs ? runs[r].start : n;
        for (; i + 3 <= literals_end; i += 3) {
            sc_flush_bits(w);
            SC_PUT_LITERAL(in[i]);
            SC_PUT_LITERAL(in[i + 1]);
            SC_PUT_LITERAL(in[i + 2]);
        }
        sc_flush_bits(w);
        for (; i < literals_end; i++) SC_PUT_LITERAL(in[i]);
        if (r == st.runs) break;
        const sc_run run = runs[r];
        sc_flush_bits(w);
        sc_put_bits(w, codes[257 + run.slot], lengths[257 + run.slot]);
        sc_put_bits(w, run.extra, sc_length_extra[run.slot]);
        sc_put_bits(w, 0, 1); /* distance code 0: distance 1 */
        i += sc_length_base[run.slot] + (size_t)run.extra;
    }
#undef SC_PUT_LITERAL
    sc_flush_bits(w);
    sc_put_bits(w, codes[SC_DEFLATE_END_OF_BLOCK], lengths[SC_DEFLATE_END_OF_BLOCK]);
    sc_flush_bits(w);
    *caller = local;
}

/* --- public (to the PNG encoder) ----------------------------------------------------------- */

size_t sc_deflate_bound(size_t n) {
    const size_t blocks = n / SC_DEFLATE_BLOCK_BYTES + 1;
    const size_t stored_pieces = n / 65535 + blocks;
    const size_t overhead = 6 * stored_pieces + blocks + 16;
    return n > SIZE_MAX - overhead ? SIZE_MAX : n + overhead;
}

void sc_deflate_write(sc_deflate_writer *w, const uint8_t *in, size_t n, int final) {
    if (n == 0) {
        if (final) sc_write_stored(w, in, 0, 1);
        return;
    }
    while (n > 0) {
        const size_t block = n < SC_DEFLATE_BLOCK_BYTES ? n : SC_DEFLATE_BLOCK_BYTES;
        sc_write_block(w, in, block, final && block == n);
        in += block;
        n -= block;
    }
}

void sc_deflate_sync_flush(sc_deflate_writer *w) {
    sc_write_stored(w, NULL, 0, 0);
}

void sc_deflate_end(sc_deflate_writer *w) {
    sc_align(w);
}
