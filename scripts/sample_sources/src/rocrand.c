#include <hip/hip_runtime.h>
#include <stddef.h>

int rocrand_get_version(int *version) {
  if (version == NULL) return 1;
  if (hipGetVersion() < 70000000) return 2;
  *version = 100100;
  return 0;
}
