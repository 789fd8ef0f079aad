"""Self tests of the installed ROCm wheels (unittest, standard library only).

``rocm-sdk test`` runs them with a PASS/FAIL/SKIP report and optional JUnit XML; each module
also runs under ``python -m unittest rocm_sdk.tests.<module>``. Importing a module has no side
effects: what a test needs is looked up when it runs.
"""

MODULES = (
    "rocm_sdk.tests.base_test",
    "rocm_sdk.tests.runtime_test",
    "rocm_sdk.tests.devel_test",
)
