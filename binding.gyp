{
  "targets": [
    {
      "target_name": "tsguard_native",
      "sources": [
        "native/addon.cc",
        "native/aead.cc",
        "native/common.cc",
        "native/crypto_pool.cc",
        "native/endpoint.cc",
        "native/flow_queue.cc",
        "native/hscrypto.cc",
        "native/noise_steps.cc",
        "native/offload.cc",
        "native/tun.cc",
        "native/udp_recv.cc",
        "native/udp_send.cc",
        "native/udp_socket.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++1y", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags_cc!": ["-O3"],
          "cflags": ["-O2"]
        }
      }
    }
  ]
}
