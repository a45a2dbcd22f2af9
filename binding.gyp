{
  "targets": [
    {
      "target_name": "crc32c_pages",
      "sources": ["native/crc32c_pages.c"],
      "cflags": ["-O3", "-std=c11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
