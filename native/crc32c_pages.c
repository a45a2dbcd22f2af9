/*
 * crc32c_pages: CRC32C (Castagnoli) of every 4 KiB page of a buffer in one N-API call.
 *
 * Convention: the kernel's crc32c_le(seed, buf) -- the bare reflected register update with
 * polynomial 0x82F63B78, no inversion on the way in or out. The SSE4.2 crc32 instruction is
 * exactly that update, so raw(seed, page) is a plain loop of _mm_crc32_u64 starting from seed.
 * (The "standard" CRC32C is ~raw(~0, buf).)
 *
 * Why batched: one native call per 4 KiB page from JS adds a JS->C transition and a subarray
 * view per page; one call per batch pays that once.
 * Why 3 pages interleaved: crc32q has a latency of 3 cycles but a throughput of 1 per cycle, and a
 * single CRC stream is a serial dependency chain (each step needs the previous register). Three
 * independent pages per loop iteration keep the unit busy: about 3x the single-stream speed.
 *
 * Exports:
 *   sse42: boolean                        -- true when the CPU has SSE4.2 (else pages/raw throw)
 *   pages(seed, buf: Uint8Array, out: Uint32Array, outOff): void
 *                                         -- out[outOff + i] = raw(seed, page i); buf.length % 4096 == 0
 *   raw(seed, buf: Uint8Array): number    -- raw(seed, buf) for any length (one stream)
 * Buffers may sit at any byteOffset: all loads go through memcpy (compiled to unaligned movs).
 * Built for anything but x86-64 with GCC/Clang, the module still loads, exports sse42 = false, and the
 * JS side falls back to another backend.
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#define PAGE 4096

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_CRC_INSN 1

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* raw crc32c_le(seed, p[0..len)), one stream. */
__attribute__((target("sse4.2"))) static uint32_t crc_raw(uint32_t seed, const uint8_t *p, size_t len) {
  uint64_t c = seed;
  for (; len >= 8; p += 8, len -= 8) c = _mm_crc32_u64(c, load64(p));
  uint32_t c32 = (uint32_t)c;
  for (; len > 0; p++, len--) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

/* out[i] = raw(seed, page i) for n pages; three pages per iteration, the rest one by one. */
__attribute__((target("sse4.2"))) static void crc_pages(uint32_t seed, const uint8_t *b, size_t n, uint32_t *out) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint8_t *p = b + i * PAGE, *q = p + PAGE, *r = q + PAGE;
    uint64_t x = seed, y = seed, z = seed;
    for (size_t k = 0; k < PAGE; k += 8) {
      x = _mm_crc32_u64(x, load64(p + k));
      y = _mm_crc32_u64(y, load64(q + k));
      z = _mm_crc32_u64(z, load64(r + k));
    }
    out[i] = (uint32_t)x;
    out[i + 1] = (uint32_t)y;
    out[i + 2] = (uint32_t)z;
  }
  for (; i < n; i++) out[i] = crc_raw(seed, b + i * PAGE, PAGE);
}
#endif

static int have_sse42 = 0;

/* Throws and returns NULL on failure, so callers can just `return NULL`. */
static void *typed_array(napi_env env, napi_value v, napi_typedarray_type want, size_t *len, const char *what) {
  bool is;
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok || type != want) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  /* data already points at the first element (byteOffset applied); NULL only when empty. */
  static uint8_t empty;
  return data ? data : &empty;
}

static int get_seed(napi_env env, napi_value v, uint32_t *seed) {
  /* ToUint32 semantics: any number, taken modulo 2^32 (negative values from ~x work). */
  if (napi_get_value_uint32(env, v, seed) != napi_ok) {
    napi_throw_type_error(env, NULL, "seed must be a number");
    return 0;
  }
  return 1;
}

static napi_value js_pages(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint32_t seed;
  size_t blen, olen;
  double off;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "pages(seed, buf, out, outOff): 4 arguments expected");
    return NULL;
  }
  if (!get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!buf) return NULL;
  uint32_t *out = typed_array(env, argv[2], napi_uint32_array, &olen, "out must be a Uint32Array");
  if (!out) return NULL;
  if (napi_get_value_double(env, argv[3], &off) != napi_ok) {
    napi_throw_type_error(env, NULL, "outOff must be a number");
    return NULL;
  }
  if (blen % PAGE != 0) {
    napi_throw_range_error(env, NULL, "buf length is not a multiple of 4096");
    return NULL;
  }
  size_t n = blen / PAGE;
  /* off in [0, olen] first (also rejects NaN), so the cast is defined; then integral and room for n. */
  if (!(off >= 0 && off <= (double)olen) || off != (double)(size_t)off || n > olen - (size_t)off) {
    napi_throw_range_error(env, NULL, "out has no room for the checksums at outOff");
    return NULL;
  }
#ifdef HAVE_CRC_INSN
  if (have_sse42) {
    crc_pages(seed, buf, n, out + (size_t)off);
    return NULL;
  }
#endif
  napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
  return NULL;
}

static napi_value js_raw(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  uint32_t seed;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "raw(seed, buf): 2 arguments expected");
    return NULL;
  }
  if (!get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &len, "buf must be a Uint8Array");
  if (!buf) return NULL;
#ifdef HAVE_CRC_INSN
  if (have_sse42) {
    if (napi_create_uint32(env, crc_raw(seed, buf, len), &result) != napi_ok) return NULL;
    return result;
  }
#endif
  (void)result;
  napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
#ifdef HAVE_CRC_INSN
  __builtin_cpu_init();
  have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
  napi_value fpages, fraw, flag;
  if (napi_create_function(env, "pages", NAPI_AUTO_LENGTH, js_pages, NULL, &fpages) != napi_ok ||
      napi_create_function(env, "raw", NAPI_AUTO_LENGTH, js_raw, NULL, &fraw) != napi_ok ||
      napi_get_boolean(env, have_sse42, &flag) != napi_ok ||
      napi_set_named_property(env, exports, "pages", fpages) != napi_ok ||
      napi_set_named_property(env, exports, "raw", fraw) != napi_ok ||
      napi_set_named_property(env, exports, "sse42", flag) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
