#include <hip/hip_runtime.h>
#include <stdio.h>

int main(void) {
  int failures = 0, version = 0, count = -1;
  if (hipRuntimeGetVersion(&version) != hipSuccess || version != HIP_VERSION) failures++;
  printf("[ %s ] hipRuntimeGetVersion\n", failures ? "FAILED" : "    OK");
  int before = failures;
  if (hipGetDeviceCount(&count) != hipSuccess || count < 1) failures++;
  printf("[ %s ] hipGetDeviceCount\n", failures > before ? "FAILED" : "    OK");
  printf("2 tests, %d failed\n", failures);
  return failures != 0;
}
