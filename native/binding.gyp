# Node-API addon `rift_onednn`: the native kernels of rift-bn's 'onednn' TF.js backend.
# Built by scripts/build-native.mjs at `npm install`, which finds oneDNN and passes its
# directories in RIFT_DNNL_INCLUDE / RIFT_DNNL_LIB (empty = the compiler's default paths).
{
  "variables": {
    "dnnl_include%": "<!(node -p \"process.env.RIFT_DNNL_INCLUDE || ''\")",
    "dnnl_lib%": "<!(node -p \"process.env.RIFT_DNNL_LIB || ''\")",
    "openmp%": "<!(node -p \"process.env.RIFT_OPENMP === '0' ? 0 : 1\")"
  },
  "targets": [
    {
      "target_name": "rift_onednn",
      "sources": ["src/addon.cc", "src/dnn.cc", "src/loops.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14", "-O2", "-O0"],
      # -fno-trapping-math lets GCC turn the selects of step/ReLU-gradient loops into branch-free
      # vector code (results are unchanged; only FP exception flags, which nothing reads, differ).
      # -ffp-contract=off: fused kernels round each multiply and add as the separate TF.js ops do,
      # also when a build adds -march flags that make FMA available.
      "cflags_cc": ["-std=c++17", "-O3", "-fno-trapping-math", "-ffp-contract=off", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldnnl"],
      "conditions": [
        ["dnnl_include != ''", { "include_dirs": ["<(dnnl_include)"] }],
        ["dnnl_lib != ''", { "libraries": ["-L<(dnnl_lib)", "-Wl,-rpath,<(dnnl_lib)"] }],
        ["openmp == 1 and OS != 'mac'", {
          "cflags_cc": ["-fopenmp"],
          "ldflags": ["-fopenmp"]
        }],
        ["OS == 'mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-O3"]
          }
        }]
      ]
    }
  ]
}
