/*
 * crc32c_pages owns what r5ctl computes in C: CRC32C of every 4 KiB page of a buffer in one call. A
 * pure function of its buffers: no files, no threads, no on-disk format, no policy. It has a
 * JavaScript fallback (src/engine/checksum.ts).
 *
 * CRC convention: the kernel's crc32c_le(seed, buf), the bare reflected register update with
 * polynomial 0x82F63B78 and no inversion in or out -- exactly the SSE4.2 crc32 instruction. (The
 * "standard" CRC32C is ~raw(~0, buf).) Batched because a JS->C call and a subarray view per 4 KiB
 * page cost more than the page's CRC; three pages interleaved because crc32q has a latency of 3
 * cycles and a throughput of 1, and one stream is a serial chain.
 *
 * Exports (buffers may sit at any byteOffset; arguments are checked before anything is done):
 *   sse42: boolean -- the CPU has SSE4.2; without it (or off x86-64) pages and raw throw
 *   pages(seed, buf: Uint8Array, out: Uint32Array, outOff) -- out[outOff + i] = raw(seed, page i)
 *   raw(seed, buf: Uint8Array): number -- raw(seed, buf), any length
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

/* Throw a kind (error, type_error, range_error) of JS error and return NULL from the calling function. */
#define REFUSE(kind, msg)                 \
  do {                                    \
    napi_throw_##kind(env, NULL, (msg));  \
    return NULL;                          \
  } while (0)

/* The typed array's data, or NULL after throwing a TypeError (`what`) when v is not one of type `want`. */
static void *typed_array(napi_env env, napi_value v, napi_typedarray_type want, size_t *len, const char *what) {
  bool is;
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok || type != want) REFUSE(type_error, what);
  /* data already points at the first element (byteOffset applied); NULL only when empty. */
  static uint8_t empty;
  return data ? data : &empty;
}

static int get_seed(napi_env env, napi_value v, uint32_t *seed) {
  /* ToUint32 semantics: any number, taken modulo 2^32 (negative values from ~x work). */
  if (napi_get_value_uint32(env, v, seed) == napi_ok) return 1;
  napi_throw_type_error(env, NULL, "seed must be a number");
  return 0;
}

/* The call's first n arguments; 0 after a TypeError (`usage`) when fewer came. */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc >= n) return 1;
  napi_throw_type_error(env, NULL, usage);
  return 0;
}

/* pages(seed, buf, out, outOff): every argument is checked before anything is written. */
static napi_value js_pages(napi_env env, napi_callback_info info) {
  size_t blen, olen;
  napi_value argv[4];
  uint32_t seed;
  double off;
  if (!get_args(env, info, 4, argv, "pages(seed, buf, out, outOff): 4 arguments expected") || !get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!buf) return NULL;
  uint32_t *out = typed_array(env, argv[2], napi_uint32_array, &olen, "out must be a Uint32Array");
  if (!out) return NULL;
  if (napi_get_value_double(env, argv[3], &off) != napi_ok) REFUSE(type_error, "outOff must be a number");
  if (blen % PAGE != 0) REFUSE(range_error, "buf length is not a multiple of 4096");
  size_t n = blen / PAGE;
  /* off in [0, olen] first (also rejects NaN), so the cast is defined; then integral and room for n. */
  if (!(off >= 0 && off <= (double)olen) || off != (double)(size_t)off || n > olen - (size_t)off)
    REFUSE(range_error, "out has no room for the checksums at outOff");
#ifdef HAVE_CRC_INSN
  if (have_sse42) {
    crc_pages(seed, buf, n, out + (size_t)off);
    return NULL;
  }
#endif
  REFUSE(error, "crc32c_pages: no SSE4.2 on this CPU");
}

static napi_value js_raw(napi_env env, napi_callback_info info) {
  size_t len;
  napi_value argv[2], result;
  uint32_t seed;
  if (!get_args(env, info, 2, argv, "raw(seed, buf): 2 arguments expected") || !get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &len, "buf must be a Uint8Array");
  if (!buf) return NULL;
#ifdef HAVE_CRC_INSN
  if (have_sse42) return napi_create_uint32(env, crc_raw(seed, buf, len), &result) == napi_ok ? result : NULL;
#endif
  (void)result;
  REFUSE(error, "crc32c_pages: no SSE4.2 on this CPU");
}

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value f;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f) == napi_ok && napi_set_named_property(env, exports, name, f) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
#ifdef HAVE_CRC_INSN
  __builtin_cpu_init();
  have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
  napi_value flag;
  if (!export_fn(env, exports, "pages", js_pages) || !export_fn(env, exports, "raw", js_raw) ||
      napi_get_boolean(env, have_sse42, &flag) != napi_ok || napi_set_named_property(env, exports, "sse42", flag) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
