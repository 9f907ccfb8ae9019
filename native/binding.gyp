{
  "targets": [
    {
      "target_name": "natd_native",
      "sources": ["natd_native.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
